"""
The PostgreSQL advisory lock keys of the hub, in one list so no two jobs
share one by accident (each serialises only its own writers).
``pg_advisory_xact_lock(key)`` holds a key until the transaction ends;
``lock_per_name`` takes one key per name within a namespace (the two-key
form, a key space apart from the single keys).
"""

from components.db.sql_cursor import POSTGRESQL

MIGRATIONS = 724031          # schema migrators starting together
USERSYNC_CAPTURE = 724032    # installers of the user table's capture triggers
MASTER_TRIGGERS = 724033     # installers of the credential triggers
EVENT_HISTORY = 724034       # event-history writers (readers take it shared)
E2E_IDENTITY_KEYS = 724035   # namespace: one user's data keys created or retired


def lock(cursor, key, shared=False):
    """On PostgreSQL, hold ``key`` until the transaction ends (``shared``: among readers); elsewhere nothing."""
    if cursor.dialect == POSTGRESQL:
        cursor.execute("SELECT pg_advisory_xact_lock{}({})".format("_shared" if shared else "", int(key)))


def lock_per_name(cursor, namespace, name):
    """On PostgreSQL, hold the lock of ``name`` within ``namespace`` until the transaction ends."""
    if cursor.dialect == POSTGRESQL:
        cursor.execute("SELECT pg_advisory_xact_lock({}, hashtext(?))".format(int(namespace)), (name,))
