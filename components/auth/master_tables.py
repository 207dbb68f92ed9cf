"""
The master-database tables the auth feature works on: the user directory,
the login sessions, the revocation facts and the triggers that keep them.

The user table (``AUTH_USER_TABLE``) and its triggers are not static
migrations: :func:`install_table` ensures the table (creating it only when
the hub owns it, see :func:`components.auth.directory.ensure_table`) and
(re)installs the triggers, idempotently, at every start and whenever a
watcher finds them gone. :func:`master_schemas` adds that step, once per
table name, after the hub's own tables, so ``migrate_all`` on a fresh
database leaves it complete.
"""

from components.auth import credentials, directory, loginsessions
from components.db import advisory_locks
from components.db.database import POSTGRESQL

# the hub's own tables (the old "credential_triggers" schema is superseded by install_table)
HUB_SCHEMAS = [("directory", directory.MASTER_MIGRATIONS), ("login_sessions", loginsessions.MIGRATIONS),
               ("credentials", credentials.MIGRATIONS)]


def install_triggers(cursor, table):
    """(Re)create the triggers of the user ``table``: credential versions (above the version floor), then
    login-session endings."""
    if cursor.dialect == POSTGRESQL:
        # one installer at a time when several processes start together
        advisory_locks.lock(cursor, advisory_locks.MASTER_TRIGGERS)
        statements = credentials.postgresql_triggers(table, credentials.version_floor(cursor))
    else:
        statements = credentials.sqlite_triggers(table, credentials.version_floor(cursor))
    for statement in statements:
        cursor.execute(statement)
    loginsessions.install(cursor, table)


def trigger_names(dialect):
    """The names of the auth triggers on the user table, in ``dialect``."""
    if dialect == POSTGRESQL:
        return ("hub_credential_capture",) + loginsessions.TRIGGERS[POSTGRESQL]
    credential = ("hub_credential_update", "hub_credential_rename", "hub_credential_delete")
    return credential + loginsessions.TRIGGERS["sqlite"]


def install_table(cursor, user_table):
    """
    Ensure ``user_table`` (a :class:`~components.auth.directory.UserTable`)
    and (re)install its triggers; True when the table was created. Fails with
    ``UserTableMissing`` (Django's table not there yet) or ``UserTableError``.
    """
    created = directory.ensure_table(cursor, user_table)
    install_triggers(cursor, user_table.name)
    return created


def master_schemas(user_table=directory.DEFAULT_USER_TABLE):
    """The master database's schemas for ``user_table`` (the process's ``directory.user_table(settings)``)."""
    return HUB_SCHEMAS + [directory.table_schema(user_table, install_triggers)]

