"""
The storage layer across a PostgreSQL restart, on a throwaway cluster this
test owns: unavailable while the server is down, and the very first
transaction after it is back succeeds on a fresh connection.
"""

from twisted.internet import defer
from twisted.trial import unittest

from components.db.database import Database, StorageUnavailable
from components.db.migrations import Migration, SchemaOnDemand, schema_version
from tests.support.pgcluster import PostgresCluster


class PostgresRestartTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_down_then_back(self):
        """A stopped server gives StorageUnavailable; after restart the first query works (no stale connection)."""
        cluster = PostgresCluster()
        self.addCleanup(cluster.destroy)
        yield cluster.start()
        db = Database(cluster.url)
        self.addCleanup(db.close)
        rows = yield db.query("SELECT 1")
        self.assertEqual(rows, [(1,)])

        yield cluster.stop()
        with self.assertRaises(StorageUnavailable):
            yield db.query("SELECT 1")
        with self.assertRaises(StorageUnavailable):
            yield db.query("SELECT 1")
        # adbapi logs the failed rollback of the dead connection; that is expected here
        self.flushLoggedErrors()

        yield cluster.start()
        rows = yield db.query("SELECT 2")
        self.assertEqual(rows, [(2,)])

    @defer.inlineCallbacks
    def test_schema_on_demand_after_late_start(self):
        """SchemaOnDemand fails while the server is down, then migrates once it is up; concurrent askers share it."""
        cluster = PostgresCluster()
        self.addCleanup(cluster.destroy)
        yield cluster.start()
        yield cluster.stop()
        db = Database(cluster.url)
        self.addCleanup(db.close)
        step = Migration(1, "a table", sqlite=[], postgresql=["CREATE TABLE late (id INTEGER PRIMARY KEY)"])
        schema = SchemaOnDemand(db, "late", [step])
        with self.assertRaises(StorageUnavailable):
            yield schema.ready()
        self.assertFalse(schema.done)
        self.flushLoggedErrors()

        yield cluster.start()
        first, second = schema.ready(), schema.ready()
        yield defer.gatherResults([first, second])
        self.assertTrue(schema.done)
        version = yield schema_version(db, "late")
        self.assertEqual(version, 1)
