"""
A master database restored from a real backup (SQLite's backup API;
``pg_dump`` piped into ``psql`` on PostgreSQL) under a client that applied
what came after the backup: ``reactive-hub sync restored`` (components.
usersync.restore) makes the client follow the restored master again, a
deactivation made after the restore included.

The client here applies the master's outbox events in order, as the relay
and queues deliver them, through the client's versioned apply.
"""

import json
import os
import sqlite3
import subprocess
import sys

from twisted.internet import defer, threads
from twisted.trial import unittest

from components.auth import credentials, directory
from components.db.database import Database
from components.db.migrations import migrate_all
from components.usersync import client_side, master, restore, revocation_sync, sequence
from components.usersync.fields import DEFAULT_FIELDS
from components.usersync.messages import Change
from tests.support.databases import postgres_url, sqlite_url
from tests.support.node import REPO

INSERT = ("INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email, is_staff,"
          " is_active, date_joined, first_name) VALUES ('x', NULL, ?, ?, '', '', ?, ?, '2026-01-01', ?)")
TABLE = directory.DEFAULT_USER_TABLE


def _items(rows):
    """The outbox rows ``(id, username, action, version, payload)`` as a client receives them."""
    items = []
    for _, username, action, version, payload in rows:
        data = json.loads(payload)
        if action in ("insert", "update", "delete"):
            items.append(Change(action, int(version), username, data, 0))
        elif action == revocation_sync.CREDENTIAL:
            items.append(revocation_sync.Revocation(action, int(version), username, data, 0))
    return items


class RestoreMixin:
    timeout = 120

    def backup_into(self, source_url):
        """A backup of the master at ``source_url`` restored into a new database: its URL (a Deferred)."""
        raise NotImplementedError

    @defer.inlineCallbacks
    def master(self, url):
        db = Database(url)
        self.addCleanup(db.close)
        yield migrate_all(db, master.master_schemas(TABLE))
        yield db.run(master.install, TABLE, DEFAULT_FIELDS, False, True)
        return db

    @defer.inlineCallbacks
    def client(self):
        db = Database(sqlite_url(self))
        self.addCleanup(db.close)
        yield migrate_all(db, client_side.SCHEMAS)
        return db

    def add(self, db, username, first_name="F"):
        return db.execute(INSERT, (False, username, False, True, first_name))

    @defer.inlineCallbacks
    def deliver(self, master_db, client_db, after=0):
        """Apply the master's outbox events after id ``after`` on the client; fire with the last id."""
        rows = yield master_db.query("SELECT id, username, action, version, payload FROM usersync_outbox"
                                     " WHERE id > ? ORDER BY id", (after,))
        yield client_db.run(revocation_sync.apply, _items(rows), 1000)
        return rows[-1][0] if rows else after

    @defer.inlineCallbacks
    def profile(self, client_db, username):
        from components.usersync import replica
        user, _ = yield client_db.run(replica.profile, username)
        return user

    @defer.inlineCallbacks
    def scenario(self, run_restore):
        """
        alice and bob, then a backup; after it alice is deactivated and
        reactivated, bob deleted, carol created, and the client applies all
        of it. The backup is restored (``run_restore(restored_db)``), then
        alice is deactivated and dave created there.
        """
        first = yield self.master(self.database_url())
        yield self.add(first, "alice")
        yield self.add(first, "bob")
        backup_url = yield self.backup_into(self.database_url_of(first))
        yield first.execute("UPDATE auth_user SET is_active = ? WHERE username = 'alice'", (False,))
        yield first.execute("UPDATE auth_user SET is_active = ? WHERE username = 'alice'", (True,))
        yield first.execute("DELETE FROM auth_user WHERE username = 'bob'")
        yield self.add(first, "carol")
        client = yield self.client()
        yield self.deliver(first, client)
        held = {}
        for name in ("alice", "bob"):
            held[name] = (yield client.run(credentials.version_of, name))[0]
        self.assertTrue((yield self.profile(client, "alice"))["is_active"])
        self.assertIsNone((yield self.profile(client, "bob")))

        restored = yield self.master(backup_url)
        former_epoch = yield restored.run(sequence.epoch)
        yield restored.execute("UPDATE usersync_relay_state SET refused_total = 7, next_seq = 40, high = 39")
        before = yield restored.query("SELECT MAX(id) FROM usersync_outbox")
        totals = yield run_restore(restored)
        yield restored.execute("UPDATE auth_user SET is_active = ? WHERE username = 'alice'", (False,))
        yield self.add(restored, "dave")
        yield self.deliver(restored, client, before[0][0])
        return restored, client, held, former_epoch, totals

    def database_url_of(self, db):
        return db.url

    @defer.inlineCallbacks
    def test_restored_master_is_followed_again(self):
        """After ``restored``: the deactivation reaches the client, bob is back, new names land above it."""
        restored, client, held, former_epoch, totals = yield self.scenario(
            lambda db: restore.restored(db, TABLE, DEFAULT_FIELDS, False))
        floor = totals["floor"]
        self.assertGreaterEqual(floor, restore.STEP)
        self.assertFalse((yield self.profile(client, "alice"))["is_active"])
        self.assertIsNotNone((yield self.profile(client, "bob")))  # the restored master's truth
        # created after the backup, unknown to the restored master: stays (documented)
        self.assertIsNotNone((yield self.profile(client, "carol")))
        versions = dict((yield restored.query("SELECT username, version FROM usersync_version")))
        self.assertEqual(versions["dave"], floor + 1)
        self.assertGreater(versions["alice"], floor + 1)
        self.assertIsNotNone((yield self.profile(client, "dave")))
        # credential versions: above what the client held, so it notes them (older tokens are refused)
        for name in ("alice", "bob"):
            version = (yield restored.run(credentials.version_of, name))[0]
            self.assertGreater(version, floor)
            self.assertEqual((yield client.run(credentials.version_of, name))[0], version)
            self.assertGreater(version, held[name])
        self.assertEqual((yield restored.query("SELECT COUNT(*) FROM hub_login_session"))[0][0], 0)
        # a new epoch at the relay's next start; nothing unsent keeps a number of the old one
        self.assertEqual(totals["former_epoch"], former_epoch)
        self.assertNotEqual(totals["epoch"], former_epoch)
        self.assertEqual((yield restored.run(sequence.epoch)), totals["epoch"])
        self.assertEqual((yield restored.run(sequence.state))[3], 7)  # the refused count is kept
        self.assertEqual((yield restored.query("SELECT COUNT(*) FROM usersync_outbox WHERE sent_ms IS NULL"
                                                " AND seq IS NOT NULL"))[0][0], 0)
        self.assertEqual((totals["users"], totals["gone"]), (2, 0))

    @defer.inlineCallbacks
    def test_a_name_created_again_after_the_restore(self):
        """carol (created after the backup, unknown to the restored master) is created again: her profile
        passes the client's; a token of hers from before the crash stays valid there until it expires."""
        restored, client, _, _, _ = yield self.scenario(
            lambda db: restore.restored(db, TABLE, DEFAULT_FIELDS, False))
        yield self.add(restored, "carol", "Second")
        yield self.deliver(restored, client)
        self.assertEqual((yield self.profile(client, "carol"))["first_name"], "Second")
        # documented: the first carol has no credential version to move; her old token (cv 0) is not revoked
        held, changed_ms = yield client.run(credentials.version_of, "carol")
        self.assertFalse(credentials.is_revoked({"cv": 0, "iat": 1}, held, changed_ms, False))

    @defer.inlineCallbacks
    def test_without_it_the_client_keeps_a_deactivated_user_active(self):
        """The hole the command closes: the restored master reissues versions the client holds."""
        _, client, _, _, _ = yield self.scenario(lambda db: defer.succeed({}))
        self.assertTrue((yield self.profile(client, "alice"))["is_active"])

    @defer.inlineCallbacks
    def test_floor_survives_and_a_second_restore_goes_higher(self):
        """The triggers keep the floor across reinstalls (a node start); a second restore raises it again."""
        db = yield self.master(self.database_url())
        yield self.add(db, "erin")
        first = yield restore.restored(db, TABLE, DEFAULT_FIELDS, False)
        yield db.run(master.install, TABLE, DEFAULT_FIELDS, False, True)
        yield self.add(db, "finn")
        yield db.execute("UPDATE auth_user SET password = 'changed' WHERE username = 'finn'")
        versions = dict((yield db.query("SELECT username, version FROM usersync_version")))
        self.assertEqual(versions["finn"], first["floor"] + 1)
        self.assertEqual((yield db.run(credentials.version_of, "finn"))[0], first["floor"] + 1)
        second = yield restore.restored(db, TABLE, DEFAULT_FIELDS, False)
        self.assertGreaterEqual(second["floor"], first["floor"] + restore.STEP)
        self.assertEqual((yield db.run(credentials.version_floor)), second["floor"])


class SQLiteRestoreTests(RestoreMixin, unittest.TestCase):

    def database_url(self):
        return sqlite_url(self)

    def backup_into(self, source_url):
        target_url = sqlite_url(self)

        def copy():
            source = sqlite3.connect(source_url[len("sqlite:///"):])
            target = sqlite3.connect(target_url[len("sqlite:///"):])
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
            return target_url
        return threads.deferToThread(copy)

    @defer.inlineCallbacks
    def test_command_line(self):
        """``python -m components.usersync restored`` on a master database: one summary line, exit 0."""
        db = yield self.master(self.database_url())
        yield self.add(db, "gail")
        done = yield threads.deferToThread(
            subprocess.run, [sys.executable, "-m", "components.usersync", "restored", "--master-url", db.url],
            cwd=REPO, capture_output=True, text=True, timeout=120,
            env=dict(os.environ, PYTHONPATH=REPO))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("restored master database: versions now start above 4294967", done.stdout)
        self.assertIn("queued 1 user events", done.stdout)
        self.assertGreaterEqual((yield db.run(credentials.version_floor)), restore.STEP)


class PostgreSQLRestoreTests(RestoreMixin, unittest.TestCase):

    def database_url(self):
        return postgres_url(self)

    def backup_into(self, source_url):
        target_url = postgres_url(self)

        def copy():
            dump = subprocess.run(["pg_dump", "--no-owner", "--dbname", source_url], capture_output=True,
                                  timeout=120, check=True)
            subprocess.run(["psql", "--quiet", "--set", "ON_ERROR_STOP=1", "--dbname", target_url],
                           input=dump.stdout, capture_output=True, timeout=120, check=True)
            return target_url
        return threads.deferToThread(copy)
