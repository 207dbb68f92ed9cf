"""
The versioned apply on a client (SQLite and PostgreSQL): duplicates, late
and out-of-order changes are no-ops, and deletes leave tombstones.
"""

from twisted.internet import defer
from twisted.trial import unittest

from components.db.database import Database
from components.db.migrations import migrate_all
from components.usersync import client_side, replica
from components.usersync.messages import Change
from tests.support.databases import OnPostgreSQL, OnSQLite


def change(action, version, first_name="F", username="ivy", **fields):
    user = {"username": username, "first_name": first_name}
    user.update(fields)
    return Change(action, version, username, user, 0)


class ReplicaMixin:
    timeout = 60

    @defer.inlineCallbacks
    def open(self):
        db = Database(self.database_url())
        self.addCleanup(db.close)
        yield migrate_all(db, client_side.SCHEMAS)
        return db

    @defer.inlineCallbacks
    def apply(self, db, *changes):
        applied = yield db.run(replica.apply_changes, list(changes), 1000)
        return [(item.action, item.version) for item in applied]

    @defer.inlineCallbacks
    def test_duplicates_and_older_versions_are_no_ops(self):
        """The same change twice and an older change after a newer one leave the newest state."""
        db = yield self.open()
        self.assertEqual((yield self.apply(db, change("insert", 1, "A"))), [("insert", 1)])
        twice = yield self.apply(db, change("update", 3, "C"), change("update", 3, "C"))
        self.assertEqual(twice, [("update", 3)])
        self.assertEqual((yield self.apply(db, change("update", 2, "B"), change("insert", 1, "A"))), [])
        user, version = yield db.run(replica.profile, "ivy")
        self.assertEqual((user["first_name"], version), ("C", 3))
        self.assertEqual((yield db.run(replica.state_of, "ivy")), (3, False, 2))

    @defer.inlineCallbacks
    def test_out_of_order_batch_ends_at_the_highest_version(self):
        """A batch holding v3, v1, v2 applies in version order and ends at v3's fields."""
        db = yield self.open()
        applied = yield self.apply(db, change("update", 3, "C", email="c@example.com"),
                                   change("insert", 1, "A"), change("update", 2, "B"))
        self.assertEqual(applied, [("insert", 1), ("update", 2), ("update", 3)])
        user, _ = yield db.run(replica.profile, "ivy")
        self.assertEqual((user["first_name"], user["email"]), ("C", "c@example.com"))

    @defer.inlineCallbacks
    def test_delete_leaves_a_tombstone_a_late_update_cannot_pass(self):
        """After a delete (v4) a late update (v3) stays a no-op; a re-create above it (v5) applies."""
        db = yield self.open()
        yield self.apply(db, change("insert", 1), change("delete", 4))
        self.assertEqual((yield self.apply(db, change("update", 3, "zombie"))), [])
        self.assertEqual((yield db.run(replica.profile, "ivy")), (None, 4))
        self.assertEqual((yield db.run(replica.state_of, "ivy")), (4, True, 2))
        self.assertEqual((yield self.apply(db, change("insert", 5, "Back"))), [("insert", 5)])
        user, version = yield db.run(replica.profile, "ivy")
        self.assertEqual((user["first_name"], version), ("Back", 5))

    @defer.inlineCallbacks
    def test_a_delete_first_seen_creates_no_user(self):
        """A delete for an unseen user leaves only a tombstone; the older insert arriving later is ignored."""
        db = yield self.open()
        self.assertEqual((yield self.apply(db, change("delete", 2))), [("delete", 2)])
        self.assertEqual((yield self.apply(db, change("insert", 1))), [])
        self.assertEqual((yield db.run(replica.profile, "ivy")), (None, 2))


class SQLiteReplicaTests(OnSQLite, ReplicaMixin, unittest.TestCase):
    """The replica on SQLite."""


class PostgreSQLReplicaTests(OnPostgreSQL, ReplicaMixin, unittest.TestCase):
    """The replica on PostgreSQL."""
