"""
Capture on the master: the outbox triggers on ``auth_user`` (SQLite and
PostgreSQL), written to by plain SQL as any application would, and the
relay's row claiming with several relays on PostgreSQL.
"""

import json
import os
import tempfile

import psycopg2
from twisted.internet import defer
from twisted.trial import unittest

from components.db.database import Cursor, Database
from components.db.migrations import migrate_all
from components.auth import credentials, directory
from components.auth import master_tables as auth_schemas
from components.auth.directory import UserTable
from components.ops import health
from components.usersync import master, outbox, snapshot, watchdog
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
        yield migrate_all(db, master.master_schemas(directory.DEFAULT_USER_TABLE))
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

    @defer.inlineCallbacks
    def test_snapshot_keeps_versions_and_a_gap_snapshot_takes_the_next_ones(self):
        """A plain snapshot re-sends each user at its version (1 if it had none); a gap one bumps and deletes vanished names."""
        db = yield self.open()
        yield db.execute(INSERT, (False, "early", "", False, True, "Early"))
        yield self.add(db, "gus", "Gus")
        yield db.run(lambda cursor: cursor.execute("DELETE FROM usersync_outbox"))
        yield db.run(lambda cursor: cursor.execute("DELETE FROM usersync_version WHERE username = 'early'"))
        totals = yield snapshot.run(db, "auth_user", include_staff=False, batch=1)
        self.assertEqual(totals["users"], 2)
        self.assertEqual([event[:3] for event in (yield self.events(db))], [("early", "insert", 1), ("gus", "insert", 1)])
        yield db.run(lambda cursor: cursor.execute("DELETE FROM usersync_outbox"))
        # written while the capture was gone: a rename the triggers never saw
        yield db.run(lambda cursor: [cursor.execute("DROP TRIGGER IF EXISTS {}".format(name))
                                     for name in outbox.TRIGGERS["sqlite"]] if cursor.dialect == "sqlite" else
                     cursor.execute("DROP TRIGGER usersync_capture ON auth_user"))
        yield db.execute("UPDATE auth_user SET username = 'gustav', first_name = 'Gustav' WHERE username = 'gus'")
        yield db.run(outbox.install)
        totals = yield snapshot.run(db, "auth_user", include_staff=False, bump=True)
        self.assertEqual((totals["users"], totals["gone"]), (2, 1))
        self.assertEqual(sorted(event[:3] for event in (yield self.events(db))),
                         [("early", "insert", 2), ("gus", "delete", 2), ("gustav", "insert", 1)])

    @defer.inlineCallbacks
    def test_snapshot_carries_live_logouts(self):
        """A client added later learns the logouts whose tokens may still live; expired ones are not sent."""
        db = yield self.open()
        yield db.run(credentials.revoke_login, "sid-live", "ann", 10 ** 13)
        yield db.run(credentials.revoke_login, "sid-old", "ann", 1)
        yield db.run(lambda cursor: cursor.execute("DELETE FROM usersync_outbox"))
        totals = yield snapshot.run(db, "auth_user", include_staff=False)
        self.assertEqual(totals["logouts"], 1)
        events = yield self.events(db, actions=("logout",))
        self.assertEqual([(event[0], event[3]["sid"]) for event in events], [("ann", "sid-live")])

    @defer.inlineCallbacks
    def test_custom_table_name_is_captured_and_validated(self):
        """AUTH_USER_TABLE names another table: the capture goes there; a name that is no identifier is refused."""
        db = Database(self.url())
        self.addCleanup(db.close)
        yield migrate_all(db, auth_schemas.master_schemas(UserTable("accounts_user", "hub")) + [master.OUTBOX_SCHEMA])
        first = yield db.run(outbox.install, outbox.DEFAULT_FIELDS, False, "accounts_user")
        self.assertTrue(first)
        yield db.execute(INSERT.replace("auth_user", "accounts_user"), (False, "ivy", "", False, True, "Ivy"))
        self.assertEqual([event[:3] for event in (yield self.events(db))], [("ivy", "insert", 1)])
        self.assertIsNone((yield db.run(lambda cursor: directory.columns_of(cursor, "auth_user"))))
        for bad in ("auth_user; DROP TABLE x", "1table", "a.b.c", 'auth"user'):
            self.assertRaises(directory.UserTableError, directory.validate_table, bad)

    @defer.inlineCallbacks
    def test_watchdog_reinstalls_lost_triggers_resyncs_and_reports(self):
        """A dropped and re-created table: named in the state file while missing, then repaired with a gap snapshot."""
        db = yield self.open()
        yield self.add(db, "kim", "Kim")
        state_path = os.path.join(tempfile.mkdtemp(), watchdog.STATE_FILE)
        expected = master.expected_triggers(db.dialect, True)
        repairs = []

        @defer.inlineCallbacks
        def repair():
            yield db.run(master.install, UserTable("auth_user", "hub"), outbox.DEFAULT_FIELDS, False, True)
            totals = yield snapshot.run(db, "auth_user", include_staff=False, bump=True)
            repairs.append(totals)
            return "resynced"
        watch = watchdog.CaptureWatch(db, None, "auth_user", expected, repair, state_path=state_path)
        yield watch.check()
        self.assertEqual((repairs, watchdog.read_state(state_path)), ([], None))
        yield db.run(lambda cursor: cursor.execute("DROP TABLE auth_user"))
        yield watch.check()
        self.assertEqual(watchdog.read_state(state_path)["table_missing"], True)
        body = health.HealthResource(os.path.dirname(state_path), lambda: None).with_capture(
            {"status": "ready", "checks": {}})
        self.assertEqual(body["status"], "not ready")
        self.assertIn("user table auth_user is missing", body["checks"]["capture"]["error"])
        yield db.run(directory.ensure_table, UserTable("auth_user", "hub"))
        yield self.add(db, "lee", "Lee")  # no trigger yet: only the gap snapshot carries it
        yield watch.check()
        self.assertEqual(len(repairs), 1)
        self.assertIsNone(watchdog.read_state(state_path))
        self.assertEqual((yield db.run(watchdog.trigger_state, "auth_user", expected)), [])
        events = [event[:3] for event in (yield self.events(db))]
        self.assertIn(("lee", "insert", 1), events)
        self.assertIn(("kim", "delete", 2), events)


class SQLiteCaptureTests(CaptureMixin, unittest.TestCase):
    def url(self):
        return sqlite_url(self)


class PostgreSQLCaptureTests(CaptureMixin, unittest.TestCase):
    def url(self):
        self._url = postgres_url(self)
        return self._url

    @defer.inlineCallbacks
    def test_truncate_is_a_versioned_delete_of_every_synced_user(self):
        """TRUNCATE: one delete per synced user (staff skipped), their logins end; a re-created user goes higher."""
        db = yield self.open()
        yield self.add(db, "ann", "Ann")
        yield self.add(db, "boss", is_staff=True)
        yield db.execute("INSERT INTO hub_login_session (id_hash, username, created_at, expires_at)"
                         " VALUES ('h', 'ann', 0, 99999999999)")
        yield db.execute("TRUNCATE auth_user")
        yield self.add(db, "ann", "Ann again")
        self.assertEqual([event[:3] for event in (yield self.events(db))],
                         [("ann", "insert", 1), ("ann", "delete", 2), ("ann", "insert", 3)])
        self.assertEqual((yield db.query("SELECT COUNT(*) FROM hub_login_session")), [(0,)])
        credential = yield db.query("SELECT username FROM hub_credential ORDER BY username")
        self.assertEqual(credential, [("ann",), ("boss",)])

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
