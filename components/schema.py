"""
Which schemas live in which database: ``MASTER`` (the user directory and
what the master owns) and ``CLIENT`` (what each client application owns).
A component's schema is added here so ``python -m components.storage migrate``
knows it.
"""

from components import counterdb, directory, httpauth
from components.e2e import keys as e2e_keys
from components.usersync import outbox as usersync_outbox, replica as usersync_replica

MASTER = [
    ("directory", directory.MIGRATIONS),
    ("login_sessions", httpauth.MIGRATIONS),
    ("usersync_master", usersync_outbox.MIGRATIONS),
]

CLIENT = [
    ("directory", directory.MIGRATIONS),
    ("counter", counterdb.MIGRATIONS),
    ("usersync_client", usersync_replica.MIGRATIONS),
    ("e2e_keys", e2e_keys.MIGRATIONS),
]
