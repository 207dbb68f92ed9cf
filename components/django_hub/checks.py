"""
``manage.py check`` (and every ``runserver``/``migrate``) tells what would
make the token view fail: unusable JWT settings, ``E2E_ENCRYPTION`` on, a
``HUB_DATABASE`` alias that is missing or not SQLite/PostgreSQL.
"""

from django.core import checks
from django.db import connections

from components.core.settings import SettingsError
from components.django_hub import APP_LABEL
from components.django_hub.conf import hub_settings
from components.django_hub.hub_cursor import UnsupportedDatabase, dialect_of


def check_hub_settings(app_configs=None, **kwargs):
    try:
        config = hub_settings()
    except (SettingsError, OSError, ValueError) as exc:
        return [checks.Error("the hub's JWT settings cannot be used: {}".format(exc),
                             hint="set HUB['JWT_SECRET'] (32+ bytes) or JWT_PUBLIC_KEY_FILE and"
                                  " JWT_PRIVATE_KEY_FILE, the same as the hub node's",
                             id=APP_LABEL + ".E001")]
    found = []
    if config.e2e:
        found.append(checks.Error(
            "E2E_ENCRYPTION is on: the login-once token view does not hand out end-to-end keys",
            hint="let browsers get tokens from the hub's /auth/token, or set HUB['E2E_ENCRYPTION'] = 'off'",
            id=APP_LABEL + ".E002"))
    if config.database not in connections.settings:
        found.append(checks.Error("HUB_DATABASE {!r} is not in DATABASES".format(config.database),
                                  id=APP_LABEL + ".E003"))
    else:
        try:
            dialect_of(config.database)
        except UnsupportedDatabase as exc:
            found.append(checks.Error(str(exc), id=APP_LABEL + ".E004"))
    return found


def register():
    checks.register(check_hub_settings, "reactive_hub")
