"""
Which tables live in which database: ``MASTER`` (the user directory, login
sessions and the user-change outbox) and ``CLIENT`` (what each client
application owns). Each feature defines its own migrations; a new table is
added to one of these lists so ``python -m components.node migrate`` and the
node's start-up create it.
"""

from components.auth import credentials, directory
from components.auth.schemas import MASTER_SCHEMAS
from components.counter import store as counter_store
from components.e2e import keys as e2e_keys
from components.iot import history as iot_history, registry as iot_registry, replays as iot_replays
from components.usersync import outbox as usersync_outbox, replica as usersync_replica

MASTER = MASTER_SCHEMAS + [("usersync_master", usersync_outbox.MIGRATIONS)]

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
