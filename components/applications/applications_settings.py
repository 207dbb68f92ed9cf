"""The settings of applications' ``POST /apps/publish``: body limit, rate per application, TLS."""

from components.core.settings import CLIENT, DEV, FLOAT, INT, Setting

_ROLES = (DEV, CLIENT)

APPS_BODY_LIMIT = Setting("APPS_BODY_LIMIT", INT, "most bytes of a `POST /apps/publish` body", default=65536,
                          minimum=256, maximum=1048576, roles=_ROLES)
APPS_RATE = Setting("APPS_RATE", FLOAT, "publications per second one application may send to `/apps/publish`",
                    default=100.0, minimum=0.01, maximum=100000, roles=_ROLES)
APPS_BURST = Setting("APPS_BURST", FLOAT, "publications one application may send at once above `APPS_RATE`",
                     default=200.0, minimum=1, maximum=1000000, roles=_ROLES)
APPS_MAX_USERS = Setting("APPS_MAX_USERS", INT, "most user names in one publication's `to_users`",
                         default=1000,
                         minimum=1, maximum=100000, roles=_ROLES)

SETTINGS = (APPS_BODY_LIMIT, APPS_RATE, APPS_BURST, APPS_MAX_USERS)
