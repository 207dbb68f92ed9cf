"""
The storage layer across a PostgreSQL restart, on a throwaway cluster this
test owns: unavailable while the server is down, and the very first
transaction after it is back succeeds on a fresh connection.
"""

from twisted.internet import defer
from twisted.trial import unittest

from components.storage import Database, StorageUnavailable
from tests.support.pgcluster import PostgresCluster


class PostgresRestartTests(unittest.TestCase):
    timeout = 90

    @defer.inlineCallbacks
    def test_down_then_back(self):
        """A stopped server gives StorageUnavailable; after restart the first query works (no stale connection)."""
        cluster = PostgresCluster()
        self.addCleanup(cluster.destroy)
        yield cluster.start()
        db = Database(cluster.url, pool_size=1)
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
