"""
The device bridge's replay memory in a real database (SQLite and
PostgreSQL): a signature is claimed once across every store on the same
database, forgotten after its window, and the table is pruned.
"""

from twisted.internet import defer, task
from twisted.trial import unittest

from components.db.database import Database
from components.db.migrations import migrate_all
from components.iot import replays
from components.node import schema_registry
from tests.support.databases import OnPostgreSQL, OnSQLite


class ReplayStoreMixin:
    """The behaviour, for a database URL from ``database_url``."""

    timeout = 30

    def setUp(self):
        self.url = self.database_url()
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)

    def database(self):
        db = Database(self.url)
        self.addCleanup(db.close)
        return db

    def store(self, db=None, limit=30):
        return replays.ReplayStore(db or self.database(), limit, clock=self.clock.seconds)

    @defer.inlineCallbacks
    def rows(self, db):
        rows = yield db.query("SELECT signature, expires_ms FROM hub_device_replay ORDER BY signature")
        return [tuple(row) for row in rows]

    @defer.inlineCallbacks
    def test_once_across_stores(self):
        """Two stores (two nodes) on one database: the first claim wins, every repeat on either is refused."""
        first, second = self.store(), self.store()
        self.assertTrue((yield first.claim("sig-a")))
        self.assertFalse((yield second.claim("sig-a")))
        self.assertFalse((yield first.claim("sig-a")))
        self.assertTrue((yield second.claim("sig-b")))
        self.assertFalse((yield first.claim("sig-b")))

    @defer.inlineCallbacks
    def test_concurrent_claims(self):
        """Claims of one signature racing on several stores: exactly one is fresh."""
        stores = [self.store() for _ in range(4)]
        results = yield defer.gatherResults([store.claim("racy") for store in stores for _ in range(3)])
        self.assertEqual(sorted(results), [False] * 11 + [True])

    @defer.inlineCallbacks
    def test_window_and_prune(self):
        """A row lives 2 x limit + SKEW seconds; then the signature is new again and old rows are pruned."""
        db = self.database()
        store = self.store(db, limit=10)
        self.assertTrue((yield store.claim("old")))
        keep = 2 * 10 + replays.SKEW
        self.clock.advance(keep - 1)
        self.assertFalse((yield store.claim("old")))
        self.assertTrue((yield store.claim("new")))
        self.clock.advance(1)
        self.assertTrue((yield store.claim("old")))  # expired: taken over, not a replay
        self.clock.advance(keep - 0.5)
        self.assertTrue((yield store.claim("newest")))  # prunes what expired ("new")
        self.assertEqual([signature for signature, _ in (yield self.rows(db))], ["newest", "old"])

    @defer.inlineCallbacks
    def test_in_client_schema(self):
        """The migrate command's client schemas create the table (the store finds it current)."""
        db = self.database()
        applied = yield migrate_all(db, schema_registry.CLIENT)
        self.assertEqual(applied[replays.SCHEMA], [1])
        self.assertTrue((yield self.store(db).claim("after-migrate")))


class SQLiteReplayStoreTests(OnSQLite, ReplayStoreMixin, unittest.TestCase):
    """The replay store on SQLite."""


class PostgreSQLReplayStoreTests(OnPostgreSQL, ReplayStoreMixin, unittest.TestCase):
    """The replay store on PostgreSQL."""
