"""
Which tables live in which database: :func:`master` (the user directory, login
sessions and the user-change outbox) and ``CLIENT`` (what each client
application owns). Each feature defines its own migrations; a new table is
added to one of these lists so ``python -m components.node migrate`` and the
node's start-up create it.
"""

from components.auth import credentials, directory
from components.auth.master_tables import master_schemas
from components.counter import store as counter_store
from components.e2e import keys as e2e_keys
from components.iot import history as iot_history, device_registry as iot_registry, replays as iot_replays
from components.usersync import outbox as usersync_outbox, replica as usersync_replica


def master(user_table=None):
    """The master database's schemas (for ``user_table``; default: this process's AUTH_USER_TABLE)."""
    return master_schemas(user_table) + [("usersync_master", usersync_outbox.MIGRATIONS)]


CLIENT = [
    ("directory", directory.MIGRATIONS),
    ("counter", counter_store.MIGRATIONS),
    ("usersync_client", usersync_replica.MIGRATIONS),
    ("e2e_keys", e2e_keys.MIGRATIONS),
    ("credentials", credentials.MIGRATIONS),
    (iot_replays.SCHEMA, iot_replays.MIGRATIONS),
    (iot_registry.SCHEMA, iot_registry.MIGRATIONS),
    (iot_history.SCHEMA, iot_history.MIGRATIONS),
]
