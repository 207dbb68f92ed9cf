"""
A Deferred-based database handle for SQLite (the default: a file in the node
directory) and PostgreSQL.

Queries are written once with ``?`` placeholders; the PostgreSQL driver gets
``%s``. Work runs in a thread pool, never on the reactor thread. Connection
failures surface as :class:`StorageUnavailable` so callers can fail fast.

Every handle on one URL in a process shares one connection pool
(:mod:`components.db.pools`) of at most ``DATABASE_POOL_MAX`` connections,
read from the process environment when the pool is built; closing a handle
closes the pool only when it was the last one on that URL.

A SQLite file holds password hashes, login sessions and wrapped keys, so it
is created private (mode 0600) before SQLite opens it; SQLite gives its
``-wal`` and ``-shm`` files the database file's mode.
"""

import os
import select
import sqlite3
import time
from urllib.parse import urlparse

from twisted.enterprise import adbapi
from twisted.logger import Logger

from components.core.errors import DATABASE_UNAVAILABLE, Unavailable
from components.core.settings import Settings
from components.db.db_settings import DATABASE_POOL_MAX
from components.db.pools import SharedPools
from components.db.sql_cursor import POSTGRESQL, SQLITE, Cursor

SQLITE_FILE_MODE = 0o600
CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 10000


class StorageUnavailable(Unavailable):
    """
    The database cannot be reached right now (down, locked, unreachable):
    ``reactive.error.unavailable`` with the generic message
    (``errors.DATABASE_UNAVAILABLE``) for callers; the driver's words are
    the ``detail``, which only the log shows (``str()``).
    """

    def __init__(self, detail):
        Unavailable.__init__(self, DATABASE_UNAVAILABLE, detail=detail)


class StorageConfigError(ValueError):
    """The database URL cannot be used."""


def parse_url(url):
    """Return ``(dialect, connect_kwargs)`` for a ``sqlite:///path`` or ``postgresql://`` URL."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute.db
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise StorageConfigError("sqlite URL needs a file path: sqlite:///path/to/file.db")
        return SQLITE, {"path": path}
    if parsed.scheme in ("postgres", "postgresql"):
        return POSTGRESQL, {"dsn": url}
    raise StorageConfigError("unsupported database URL scheme {!r} (use sqlite:/// or postgresql://)".format(
        parsed.scheme))


def create_private_file(path, mode=SQLITE_FILE_MODE):
    """
    Create ``path`` empty with ``mode`` unless it exists (SQLite takes an empty
    file as a new database); return whether an existing file is readable or
    writable by group or others. An existing file is never opened here:
    closing any descriptor of a file drops every POSIX lock this process
    holds on it, SQLite's included.
    """
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, mode))
        return False
    except FileExistsError:
        return bool(os.stat(path).st_mode & 0o077)
    except OSError as exc:
        raise StorageConfigError("cannot create SQLite database {}: {}".format(path, exc.strerror))


def _open_sqlite(connection, attempts=200):
    """Per-connection setup (runs in a pool thread). WAL is persistent; switching to it
    needs a moment without other writers, which the busy handler does not wait for."""
    connection.execute("PRAGMA busy_timeout=10000")
    for attempt in range(attempts):
        try:
            mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")


def _unavailable_errors():
    errors = [sqlite3.OperationalError]
    try:
        import psycopg2
        errors += [psycopg2.OperationalError, psycopg2.InterfaceError]
    except ImportError:  # pragma: no cover - psycopg2 is a hard dependency
        pass
    return tuple(errors)


_UNAVAILABLE = _unavailable_errors()


class _Pool(adbapi.ConnectionPool):
    """An adbapi pool that says when it was closed (by ``close()`` or the reactor's shutdown event)."""

    closed = False

    def finalClose(self):
        self.closed = True
        adbapi.ConnectionPool.finalClose(self)


def build_pool(url, size=None):
    """
    A new pool for ``url`` of at most ``size`` connections (default: the
    process environment's ``DATABASE_POOL_MAX``); a SQLite file is created
    private first.
    """
    size = Settings().get(DATABASE_POOL_MAX) if size is None else size
    dialect, options = parse_url(url)
    if dialect == SQLITE:
        path = options["path"]
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise StorageConfigError("directory for SQLite database does not exist: " + directory)
        if create_private_file(path):
            Database.log.warn("SQLite database {path} is readable by other users; run chmod 600 on it and on "
                              "its -wal and -shm files", path=path)
        return _Pool("sqlite3", path, check_same_thread=False, isolation_level=None, timeout=10,
                     cp_min=1, cp_max=size, cp_openfun=_open_sqlite, cp_noisy=False)

    def open_pg(connection):
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", (STATEMENT_TIMEOUT_MS,))
        connection.commit()
    # keepalives: a connection whose server vanished errors out instead of hanging
    return _Pool("psycopg2", options["dsn"], connect_timeout=CONNECT_TIMEOUT,
                 keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
                 cp_min=1, cp_max=size, cp_reconnect=True, cp_good_sql="SELECT 1",
                 cp_openfun=open_pg, cp_noisy=False)


# this process's pools: one per database URL
PROCESS_POOLS = SharedPools(build_pool)


class Database:
    """
    One database: ``run(interaction)`` runs ``interaction(cursor, *args)`` in a
    transaction and fires with its result; ``query`` and ``execute`` are
    one-statement shortcuts. The connections are the process's pool for
    ``url`` (``pools``: :data:`PROCESS_POOLS`), shared with every other handle on it.
    """

    log = Logger()

    def __init__(self, url, pools=None):
        self.url = url
        self.dialect, _options = parse_url(url)
        self._lease = (PROCESS_POOLS if pools is None else pools).acquire(url)

    def __repr__(self):
        return "<Database {} {}>".format(self.dialect, _redact(self.url))

    def run(self, interaction, *args, **kwargs):
        """Run ``interaction(cursor, *args, **kwargs)`` in one write transaction."""
        def wrapped(transaction):
            if self.dialect == POSTGRESQL:
                _replace_if_dropped(transaction)
            cursor = Cursor(transaction, self.dialect)
            if self.dialect == SQLITE:
                cursor.execute("BEGIN IMMEDIATE")
            return interaction(cursor, *args, **kwargs)
        d = self._lease.pool.runInteraction(wrapped)
        d.addErrback(self._translate)
        return d

    def query(self, sql, params=()):
        """Fire with all rows of one statement."""
        return self.run(lambda cursor: cursor.execute(sql, params).fetchall())

    def execute(self, sql, params=()):
        """Run one statement; fire with the affected row count."""
        return self.run(lambda cursor: cursor.execute(sql, params).rowcount)

    def close(self):
        """Give this handle's share of the pool back (the last handle on the URL closes it); idempotent."""
        self._lease.release()

    def _translate(self, failure):
        if failure.check(*_UNAVAILABLE):
            message = str(failure.value).strip().splitlines()[0] if str(failure.value).strip() else repr(
                failure.value)
            raise StorageUnavailable("{}: {}".format(self.dialect, message))
        return failure


def _replace_if_dropped(transaction):
    """
    Reconnect before a transaction when the pooled PostgreSQL connection was
    dropped by the server while idle (restart, admin termination): an idle
    connection has nothing to read, so a readable socket means the server said
    goodbye. Checked without a round trip, before any statement runs, so the
    first transaction after a database restart succeeds instead of failing on
    a dead connection.
    """
    raw = transaction._connection._connection
    try:
        dropped = bool(raw.closed)
        if not dropped:
            poller = select.poll()
            poller.register(raw.fileno(), select.POLLIN)
            dropped = bool(poller.poll(0))
    except (OSError, ValueError) + _UNAVAILABLE:
        dropped = True
    if dropped:
        connection = transaction._connection
        connection._pool.disconnect(raw)
        connection._connection = None
        connection._connection = connection._pool.connect()  # raises when the server is still down
        transaction.reopen()


def _redact(url):
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(":" + parsed.password + "@", ":***@")
    return url
