"""
Capture on the master: the outbox triggers on ``auth_user`` (SQLite and
PostgreSQL), written to by plain SQL as any application would, and the
relay's row claiming with several relays on PostgreSQL.
"""

import json

import psycopg2
from twisted.internet import defer
from twisted.trial import unittest

from components.db.database import Cursor, Database
from components.db.migrations import migrate_all
from components.usersync import master, outbox
from tests.support.databases import postgres_url, sqlite_url

INSERT = ("INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email, is_staff,"
          " is_active, date_joined, first_name) VALUES ('x', NULL, ?, ?, '', ?, ?, ?, '2026-01-01', ?)")


class CaptureMixin:
    timeout = 60

    def url(self):
        raise NotImplementedError

    @defer.inlineCallbacks
    def open(self, fields=outbox.DEFAULT_FIELDS, include_staff=False):
        db = Database(self.url())
        self.addCleanup(db.close)
        yield migrate_all(db, master.SCHEMAS)
        yield db.run(outbox.install, fields, include_staff)
        return db

    def add(self, db, username, first_name="F", is_staff=False, email="", is_superuser=False):
        return db.execute(INSERT, (is_superuser, username, email, is_staff, True, first_name))

    @defer.inlineCallbacks
    def events(self, db, actions=("insert", "update", "delete")):
        """The outbox's profile events (revocations have their own tests)."""
        rows = yield db.query("SELECT username, action, version, payload FROM usersync_outbox WHERE action IN ({})"
                              " ORDER BY id".format(", ".join("'{}'".format(action) for action in actions)))
        return [(username, action, version, json.loads(payload))
                for username, action, version, payload in rows]

    @defer.inlineCallbacks
    def test_insert_update_delete_with_per_user_versions(self):
        """Each tracked change is one event with the tracked fields and the next version of that user."""
        db = yield self.open()
        yield self.add(db, "ann", "Ann", email="ann@example.com")
        yield self.add(db, "ben", "Ben")
        yield db.execute("UPDATE auth_user SET first_name = 'Anna' WHERE username = 'ann'")
        yield db.execute("DELETE FROM auth_user WHERE username = 'ann'")
        yield self.add(db, "ann", "Ann again")
        events = yield self.events(db)
        self.assertEqual([event[:3] for event in events], [
            ("ann", "insert", 1), ("ben", "insert", 1), ("ann", "update", 2), ("ann", "delete", 3),
            ("ann", "insert", 4)])
        self.assertEqual(events[2][3], {"username": "ann", "first_name": "Anna", "last_name": "",
                                        "email": "ann@example.com", "is_active": True})

    @defer.inlineCallbacks
    def test_ignored_fields_alone_produce_nothing(self):
        """Updates touching only password, last_login, date_joined or is_superuser produce no event."""
        db = yield self.open()
        yield self.add(db, "cat")
        yield db.execute("UPDATE auth_user SET password = 'new', last_login = '2026-02-02',"
                         " date_joined = '2026-02-02', is_superuser = ? WHERE username = 'cat'", (True,))
        yield db.execute("UPDATE auth_user SET first_name = 'F' WHERE username = 'cat'")  # same value
        events = yield self.events(db)
        self.assertEqual([event[:3] for event in events], [("cat", "insert", 1)])

    @defer.inlineCallbacks
    def test_staff_are_skipped_and_leave_or_enter_the_synced_set(self):
        """Staff produce nothing; becoming staff is a delete, ceasing to be staff an insert."""
        db = yield self.open()
        yield self.add(db, "boss", is_staff=True)
        yield db.execute("UPDATE auth_user SET first_name = 'B' WHERE username = 'boss'")
        yield self.add(db, "dan")
        yield db.execute("UPDATE auth_user SET is_staff = ? WHERE username = 'dan'", (True,))
        yield db.execute("UPDATE auth_user SET first_name = 'Dan' WHERE username = 'dan'")
        yield db.execute("UPDATE auth_user SET is_staff = ? WHERE username = 'dan'", (False,))
        yield db.execute("DELETE FROM auth_user WHERE username = 'boss'")
        events = yield self.events(db)
        self.assertEqual([event[:3] for event in events], [
            ("dan", "insert", 1), ("dan", "delete", 2), ("dan", "insert", 3)])
        self.assertEqual(events[2][3]["first_name"], "Dan")

    @defer.inlineCallbacks
    def test_staff_included_when_configured(self):
        """With staff included, staff users are captured like everyone else."""
        db = yield self.open(include_staff=True)
        yield self.add(db, "boss", is_staff=True)
        events = yield self.events(db)
        self.assertEqual([event[:3] for event in events], [("boss", "insert", 1)])

    @defer.inlineCallbacks
    def test_tracked_fields_are_settable(self):
        """Only the configured fields travel and only their changes count."""
        db = yield self.open(fields=("username", "email", "is_staff"), include_staff=True)
        yield self.add(db, "eve", "Eve", email="eve@example.com")
        yield db.execute("UPDATE auth_user SET first_name = 'Evelyn' WHERE username = 'eve'")
        yield db.execute("UPDATE auth_user SET email = 'evelyn@example.com' WHERE username = 'eve'")
        events = yield self.events(db)
        self.assertEqual([event[:3] for event in events], [("eve", "insert", 1), ("eve", "update", 2)])
        self.assertEqual(events[1][3], {"username": "eve", "email": "evelyn@example.com", "is_staff": False})

    @defer.inlineCallbacks
    def test_rename_is_delete_then_insert_and_install_is_idempotent(self):
        """Installing twice keeps one trigger set; a rename deletes the old name and inserts the new one."""
        db = yield self.open()
        yield db.run(outbox.install)
        yield self.add(db, "fay")
        yield db.execute("UPDATE auth_user SET username = 'faye' WHERE username = 'fay'")
        events = yield self.events(db)
        self.assertEqual(sorted(event[:3] for event in events),
                         [("fay", "delete", 2), ("fay", "insert", 1), ("faye", "insert", 1)])


class SQLiteCaptureTests(CaptureMixin, unittest.TestCase):
    def url(self):
        return sqlite_url(self)


class PostgreSQLCaptureTests(CaptureMixin, unittest.TestCase):
    def url(self):
        self._url = postgres_url(self)
        return self._url

    @defer.inlineCallbacks
    def test_concurrent_relays_claim_disjoint_rows_in_user_order(self):
        """A second relay skips rows another holds, and a user's newer event while the older is held."""
        db = yield self.open()
        yield self.add(db, "gus")
        yield self.add(db, "hal")
        first, second = psycopg2.connect(self._url), psycopg2.connect(self._url)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        held = outbox.claim(Cursor(first.cursor(), "postgresql"), 1)  # holds gus v1, transaction open
        self.assertEqual([(row[1], row[3]) for row in held], [("gus", 1)])
        # a new event for gus (v2) arrives while gus v1 is held by the first relay
        with second, second.cursor() as cursor:
            cursor.execute("UPDATE auth_user SET first_name = 'G2' WHERE username = 'gus'")
        taken = outbox.claim(Cursor(second.cursor(), "postgresql"), 10)
        self.assertEqual([(row[1], row[3]) for row in taken], [("hal", 1)])
        outbox.settle(Cursor(second.cursor(), "postgresql"), [row[0] for row in taken], [], 1)
        second.commit()
        first.rollback()
        again = yield db.run(outbox.claim, 10)
        self.assertEqual([(row[1], row[3]) for row in again], [("gus", 1), ("gus", 2)])
