"""
The cursor every interaction gets, over any DB-API cursor: SQL written once
with ``?`` placeholders (PostgreSQL's driver gets ``%s``), and the two
dialects' names. No Twisted: the Django app runs the hub's SQL through it
on Django's own connection.
"""

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


class Cursor:
    """The handle an interaction gets: ``execute`` with ``?`` placeholders, fetch methods, ``dialect``."""

    def __init__(self, transaction, dialect):
        self._transaction = transaction
        self.dialect = dialect

    def execute(self, sql, params=()):
        if self.dialect == POSTGRESQL:
            sql = sql.replace("%", "%%").replace("?", "%s")
        self._transaction.execute(sql, tuple(params))
        return self

    def fetchone(self):
        return self._transaction.fetchone()

    def fetchall(self):
        return self._transaction.fetchall()

    @property
    def rowcount(self):
        return self._transaction.rowcount

    @property
    def connection(self):
        return self._transaction._connection._connection
