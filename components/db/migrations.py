"""
Versioned, idempotent schema migrations: each component's schema has a
version in ``hub_schema``; ``migrate`` applies the missing steps in one
transaction, serialised across concurrent migrators on PostgreSQL.
"""

from twisted.internet import defer
from twisted.python.failure import Failure

from components.db import advisory_locks
from components.db.schema_step import Migration  # noqa: F401 - read as migrations.Migration too
from components.db.sql_cursor import POSTGRESQL, SQLITE

SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS hub_schema (
    component VARCHAR(100) PRIMARY KEY,
    version INTEGER NOT NULL,
    description VARCHAR(200) NOT NULL
)
"""


def _apply(cursor, component, migrations):
    if cursor.dialect == POSTGRESQL:
        # serialise concurrent migrators (several instances starting at once)
        advisory_locks.lock(cursor, advisory_locks.MIGRATIONS)
    cursor.execute(SCHEMA_TABLE)
    row = cursor.execute("SELECT version FROM hub_schema WHERE component = ?", (component,)).fetchone()
    current = row[0] if row else 0
    applied = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version <= current:
            continue
        steps = migration.sqlite if cursor.dialect == SQLITE else migration.postgresql
        if callable(steps):
            steps(cursor)
        else:
            for statement in steps:
                cursor.execute(statement)
        applied.append(migration.version)
        current = migration.version
        if row is None:
            cursor.execute("INSERT INTO hub_schema (component, version, description) VALUES (?, ?, ?)",
                           (component, current, migration.description))
            row = (current,)
        else:
            cursor.execute("UPDATE hub_schema SET version = ?, description = ? WHERE component = ?",
                           (current, migration.description, component))
    return applied


def migrate(db, component, migrations):
    """
    Bring ``component``'s schema in ``db`` up to its newest migration, in one
    transaction; fire with the list of versions applied (empty when current).
    """
    return db.run(_apply, component, migrations)


class SchemaOnDemand:
    """
    Migrates ``component`` the first time ``ready()`` is asked, and again
    after a failure, so a component whose database is down at start comes up
    anyway and works once the database is back. ``ready()`` fires (with None)
    once the schema is current, or fails like ``migrate``.
    """

    def __init__(self, db, component, migrations):
        self.db = db
        self.component = component
        self.migrations = migrations
        self.done = False
        self._waiting = None

    def ready(self):
        if self.done:
            return defer.succeed(None)
        waiter = defer.Deferred()
        if self._waiting is None:
            self._waiting = [waiter]
            migrate(self.db, self.component, self.migrations).addBoth(self._finished)
        else:
            self._waiting.append(waiter)
        return waiter

    def run(self, interaction, *args):
        """``db.run(interaction, *args)`` once the schema is current (fails like ``ready`` or ``run``)."""
        d = self.ready()
        d.addCallback(lambda _: self.db.run(interaction, *args))
        return d

    def _finished(self, result):
        waiting, self._waiting = self._waiting, None
        failed = isinstance(result, Failure)
        self.done = not failed
        for waiter in waiting:
            if failed:
                waiter.errback(result)
            else:
                waiter.callback(None)


def schema_version(db, component):
    """Fire with the applied schema version of ``component`` (0 if none)."""
    def read(cursor):
        cursor.execute(SCHEMA_TABLE)
        row = cursor.execute("SELECT version FROM hub_schema WHERE component = ?", (component,)).fetchone()
        return row[0] if row else 0
    return db.run(read)


@defer.inlineCallbacks
def migrate_all(db, schemas, log=None):
    """Migrate every ``(component, migrations)`` pair in order; fire with ``{component: [versions]}``."""
    result = {}
    for component, migrations in schemas:
        applied = yield migrate(db, component, migrations)
        result[component] = applied
        if log is not None:
            log.info("schema {component}: {state}", component=component,
                     state="applied {}".format(applied) if applied else "up to date")
    return result
