"""
Which tables live in which database: :func:`master` (the user directory, login
sessions and the user-change outbox) and :func:`client` (what each client
application owns). Each feature defines its own migrations; a new table is
added to one of these lists so ``python -m components.node migrate`` and the
node's start-up create it.
"""

from components.applications import app_registry
from components.auth import credentials, directory
from components.auth.master_tables import master_schemas
from components.counter import store as counter_store
from components.e2e import keys as e2e_keys
from components.iot import history as iot_history, device_registry as iot_registry, replays as iot_replays
from components.iot import alarm_rules
from components.usersync import outbox as usersync_outbox, replica as usersync_replica


def master(user_table=directory.DEFAULT_USER_TABLE):
    """The master database's schemas for ``user_table`` (``directory.user_table(settings)``)."""
    return master_schemas(user_table) + [("usersync_master", usersync_outbox.MIGRATIONS)]


def client(user_table=directory.DEFAULT_USER_TABLE):
    """A client database's schemas, its copy of the users in ``user_table``."""
    return [
        ("directory", directory.client_migrations(user_table)),
        ("counter", counter_store.MIGRATIONS),
        ("usersync_client", usersync_replica.MIGRATIONS),
        ("e2e_keys", e2e_keys.MIGRATIONS),
        ("credentials", credentials.MIGRATIONS),
        (iot_replays.SCHEMA, iot_replays.MIGRATIONS),
        (iot_registry.SCHEMA, iot_registry.MIGRATIONS),
        (iot_history.SCHEMA, iot_history.MIGRATIONS),
        (app_registry.SCHEMA, app_registry.MIGRATIONS),
        (alarm_rules.SCHEMA, alarm_rules.MIGRATIONS),
    ]


# the client schemas with the default user table (auth_user)
CLIENT = client()
