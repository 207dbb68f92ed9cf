"""
The storage module on real SQLite and real PostgreSQL: transactions,
placeholders, versioned idempotent migrations, concurrent migrators, the
Django-compatible user directory, a clear error when the database is
unreachable, and private SQLite files (0600, with their -wal and -shm).
"""

import json
import os
import stat
import subprocess
import sys
import tempfile

from twisted.internet import defer
from twisted.trial import unittest

from components.node import schema_registry
from components.auth.directory import Directory, DirectoryError
from components.db.database import Database, StorageConfigError, StorageUnavailable, parse_url
from components.db.migrations import Migration, migrate, migrate_all, schema_version
from tests.support.databases import postgres_url, sqlite_url

STEPS = [
    Migration(1, "things", sqlite=["CREATE TABLE thing (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL)"],
              postgresql=["CREATE TABLE thing (id SERIAL PRIMARY KEY, name VARCHAR(20) NOT NULL)"]),
    Migration(2, "thing notes", sqlite=["ALTER TABLE thing ADD COLUMN note VARCHAR(50) DEFAULT '' NOT NULL"],
              postgresql=["ALTER TABLE thing ADD COLUMN note VARCHAR(50) DEFAULT '' NOT NULL"]),
]


class ParseURLTests(unittest.SynchronousTestCase):
    """Database URLs."""

    def test_forms(self):
        """sqlite:/// relative, sqlite://// absolute, postgresql://; others are refused."""
        self.assertEqual(parse_url("sqlite:///rel.db"), ("sqlite", {"path": "rel.db"}))
        self.assertEqual(parse_url("sqlite:////abs/x.db"), ("sqlite", {"path": "/abs/x.db"}))
        self.assertEqual(parse_url("postgresql://u@h/db")[0], "postgresql")
        self.assertRaises(StorageConfigError, parse_url, "mysql://h/db")
        self.assertRaises(StorageConfigError, parse_url, "sqlite:///")


class StorageMixin:
    """Shared tests, run once per dialect."""

    timeout = 180

    def make_db(self):
        if getattr(self, "_url", None) is None:
            self._url = self.url(self)
        db = Database(self._url)
        self.addCleanup(db.close)
        return db

    @defer.inlineCallbacks
    def test_migrations_versioned_and_idempotent(self):
        """Steps apply once in order; running again applies nothing; a new step applies alone."""
        db = self.make_db()
        applied = yield migrate(db, "things", STEPS[:1])
        self.assertEqual(applied, [1])
        applied = yield migrate(db, "things", STEPS)
        self.assertEqual(applied, [2])
        applied = yield migrate(db, "things", STEPS)
        self.assertEqual(applied, [])
        version = yield schema_version(db, "things")
        self.assertEqual(version, 2)
        yield db.execute("INSERT INTO thing (name, note) VALUES (?, ?)", ("a", "100% sure?"))
        rows = yield db.query("SELECT name, note FROM thing WHERE name = ?", ("a",))
        self.assertEqual([tuple(r) for r in rows], [("a", "100% sure?")])

    @defer.inlineCallbacks
    def test_concurrent_migrators(self):
        """Two handles migrating at once apply each step exactly once."""
        first, second = self.make_db(), self.make_db()
        results = yield defer.gatherResults([migrate(first, "things", STEPS), migrate(second, "things", STEPS)])
        self.assertEqual(sorted(results, key=len), [[], [1, 2]])

    @defer.inlineCallbacks
    def test_transaction_rolls_back(self):
        """An exception inside run() undoes every statement of that interaction."""
        db = self.make_db()
        yield migrate(db, "things", STEPS)

        def half_done(cursor):
            cursor.execute("INSERT INTO thing (name) VALUES (?)", ("ghost",))
            raise ValueError("boom")
        with self.assertRaises(ValueError):
            yield db.run(half_done)
        rows = yield db.query("SELECT count(*) FROM thing")
        self.assertEqual(rows[0][0], 0)

    @defer.inlineCallbacks
    def test_directory(self):
        """Users are created in auth_user, authenticate with the right password only, and are unique."""
        db = self.make_db()
        yield migrate_all(db, schema_registry.master())
        yield migrate_all(db, schema_registry.master())
        directory = Directory(db, iterations=1000)
        yield directory.create_user("alice", "correct horse", first_name="Alice", email="a@example.com")
        user = yield directory.authenticate("alice", "correct horse")
        self.assertEqual((user["username"], user["first_name"], user["is_active"]), ("alice", "Alice", True))
        self.assertNotIn("password", user)
        self.assertIsNone((yield directory.authenticate("alice", "wrong")))
        self.assertIsNone((yield directory.authenticate("nobody", "x")))
        with self.assertRaises(DirectoryError):
            yield directory.create_user("alice", "again and again")
        with self.assertRaises(DirectoryError):
            yield directory.create_user("bad name!", "whatever123")
        rows = yield db.query("SELECT password, is_staff, is_superuser, date_joined FROM auth_user")
        self.assertTrue(rows[0][0].startswith("pbkdf2_sha256$1000$"))

    @defer.inlineCallbacks
    def test_django_columns(self):
        """auth_user has exactly Django's columns."""
        db = self.make_db()
        yield migrate_all(db, schema_registry.master())
        if db.dialect == "sqlite":
            rows = yield db.query("SELECT name FROM pragma_table_info('auth_user')")
        else:
            rows = yield db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'auth_user'")
        self.assertEqual(sorted(r[0] for r in rows), sorted([
            "id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email",
            "is_staff", "is_active", "date_joined"]))


class SQLiteStorageTests(StorageMixin, unittest.TestCase):
    url = staticmethod(sqlite_url)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class SQLiteFileModeTests(unittest.TestCase):
    """SQLite files hold password hashes, sessions and wrapped keys: nobody but the owner may read them."""

    timeout = 180

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="hub-db-modes-")
        self.old_umask = os.umask(0o022)  # the usual umask, which gives SQLite's own files 0644
        self.addCleanup(os.umask, self.old_umask)

    @defer.inlineCallbacks
    def test_new_database_and_its_wal_files_are_private(self):
        """A new database file is created 0600 and SQLite's -wal and -shm files follow it."""
        path = os.path.join(self.directory, "fresh.db")
        db = Database("sqlite:///" + path)
        self.addCleanup(db.close)
        self.assertEqual(_mode(path), 0o600)
        yield db.execute("CREATE TABLE secret (value TEXT)")
        yield db.execute("INSERT INTO secret VALUES (?)", ("hash",))
        for name in ("fresh.db", "fresh.db-wal", "fresh.db-shm"):
            self.assertEqual(_mode(os.path.join(self.directory, name)), 0o600, name)

    @defer.inlineCallbacks
    def test_existing_database_is_kept(self):
        """An existing database keeps its data and mode (the operator's choice), with a warning when it is open."""
        path = os.path.join(self.directory, "old.db")
        first = Database("sqlite:///" + path)
        yield first.execute("CREATE TABLE kept (value TEXT)")
        yield first.execute("INSERT INTO kept VALUES ('x')")
        first.close()
        os.chmod(path, 0o644)
        warnings = []
        from twisted.logger import LogLevel, globalLogPublisher

        def observer(event):
            if event.get("log_level") == LogLevel.warn:
                warnings.append(event)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        second = Database("sqlite:///" + path)
        self.addCleanup(second.close)
        rows = yield second.query("SELECT value FROM kept")
        self.assertEqual([tuple(row) for row in rows], [("x",)])
        self.assertEqual(_mode(path), 0o644)
        self.assertTrue(any(event.get("path") == path for event in warnings), warnings)

    def test_uncreatable_file_is_a_config_error(self):
        """A database file that cannot be created is a StorageConfigError naming it, not a later failure."""
        path = os.path.join(self.directory, "x" * 300 + ".db")  # longer than a file name may be
        error = self.assertRaises(StorageConfigError, Database, "sqlite:///" + path)
        self.assertIn(path, str(error))

    @defer.inlineCallbacks
    def test_second_handle_leaves_the_first_ones_locks(self):
        """
        Opening a second handle on a database this process already uses keeps the first handle's locks:
        another process that writes and closes (the last connection, as it believes, checkpoints and
        removes the WAL) does not make the first handle's later commits vanish for everyone else.
        """
        path = os.path.join(self.directory, "shared.db")
        first = Database("sqlite:///" + path)
        self.addCleanup(first.close)
        yield first.execute("CREATE TABLE item (value TEXT)")
        yield first.execute("INSERT INTO item VALUES ('one')")
        second = Database("sqlite:///" + path)
        self.addCleanup(second.close)
        self.assertEqual(self.elsewhere(path, "INSERT INTO item VALUES ('two')"), [])
        yield first.execute("INSERT INTO item VALUES ('three')")
        self.assertEqual(self.elsewhere(path, "SELECT value FROM item ORDER BY rowid"),
                         [["one"], ["two"], ["three"]])

    def elsewhere(self, path, sql):
        """Run ``sql`` in another process with its own connection, closed at the end; its rows."""
        code = ("import json, sqlite3, sys; connection = sqlite3.connect(sys.argv[1], isolation_level=None); "
                "rows = connection.execute(sys.argv[2]).fetchall(); connection.close(); print(json.dumps(rows))")
        result = subprocess.run([sys.executable, "-c", code, path, sql], capture_output=True, text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)


class NodeFileModeTests(unittest.TestCase):
    """The SQLite files a freshly started dev node creates."""

    timeout = 180

    @defer.inlineCallbacks
    def test_fresh_node_files_are_private(self):
        """After a fresh start master.db and client.db, with their -wal and -shm files, are mode 0600."""
        from tests.support.node import RouterNode
        node = RouterNode(name="modes")
        self.addCleanup(node.cleanup)
        yield node.start()
        names = sorted(name for name in os.listdir(node.directory) if ".db" in name)
        self.assertTrue({"master.db", "client.db", "master.db-wal", "client.db-wal"} <= set(names), names)
        for name in names:
            self.assertEqual(_mode(os.path.join(node.directory, name)), 0o600, name)


class PostgreSQLStorageTests(StorageMixin, unittest.TestCase):
    url = staticmethod(postgres_url)

    @defer.inlineCallbacks
    def test_unreachable_is_unavailable(self):
        """A server that does not answer gives StorageUnavailable quickly, not a hang."""
        from tests.support.node import free_port
        db = Database("postgresql://postgres@127.0.0.1:{}/none".format(free_port()))
        self.addCleanup(db.close)
        with self.assertRaises(StorageUnavailable) as caught:
            yield db.query("SELECT 1")
        self.assertIn("postgresql", str(caught.exception))
