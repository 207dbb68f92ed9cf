"""
One connection pool per process per database: handles on one URL share a
pool, counted, so closing one handle leaves the others working; the last
closes it; a pool closed by the reactor's shutdown event is rebuilt at its
next use; its size is ``DATABASE_POOL_MAX``.
"""

import os

from twisted.internet import defer
from twisted.trial import unittest

from components.core.settings import SettingsError
from components.db.database import Database, build_pool
from components.db.pools import SharedPools
from tests.support.databases import sqlite_url


class FakePool:
    """A pool that records its closing."""

    def __init__(self, key):
        self.key, self.closed = key, False

    def close(self):
        self.closed = True


class SharedPoolsTests(unittest.SynchronousTestCase):
    """The counting, on fake pools."""

    def setUp(self):
        self.built = []

        def build(key):
            self.built.append(FakePool(key))
            return self.built[-1]
        self.pools = SharedPools(build)

    def test_leases_on_one_key_share_one_pool(self):
        """Two leases on one URL get the same pool, built once; another URL gets its own."""
        first, second, other = self.pools.acquire("a"), self.pools.acquire("a"), self.pools.acquire("b")
        self.assertIs(first.pool, second.pool)
        self.assertIsNot(first.pool, other.pool)
        self.assertEqual([pool.key for pool in self.built], ["a", "b"])
        self.assertEqual(self.pools.leases("a"), 2)

    def test_the_last_release_closes_the_pool(self):
        """Releasing one of two leases keeps the pool open; releasing the last closes it; a new lease builds anew."""
        first, second = self.pools.acquire("a"), self.pools.acquire("a")
        pool = first.pool
        first.release()
        self.assertFalse(pool.closed)
        self.assertIs(second.pool, pool)
        second.release()
        self.assertTrue(pool.closed)
        self.assertEqual(self.pools.leases("a"), 0)
        self.assertIsNot(self.pools.acquire("a").pool, pool)

    def test_release_is_once(self):
        """A second release of one lease does not take the other handle's share; a released lease has no pool."""
        first, second = self.pools.acquire("a"), self.pools.acquire("a")
        first.release()
        first.release()
        self.assertFalse(second.pool.closed)
        self.assertEqual(self.pools.leases("a"), 1)
        self.assertRaises(RuntimeError, lambda: first.pool)

    def test_a_pool_closed_from_outside_is_rebuilt(self):
        """The reactor's shutdown event closed the pool: the next use builds a new one for every lease."""
        first, second = self.pools.acquire("a"), self.pools.acquire("a")
        first.pool.close()
        self.assertFalse(first.pool.closed)
        self.assertIs(first.pool, second.pool)
        self.assertEqual(len(self.built), 2)
        self.assertEqual(self.pools.leases("a"), 2)

    def test_a_failed_build_leases_nothing(self):
        """A URL whose pool cannot be built leaves no count behind."""
        def failing(key):
            raise ValueError("bad url")
        pools = SharedPools(failing)
        self.assertRaises(ValueError, pools.acquire, "x")
        self.assertEqual(pools.leases("x"), 0)


class DatabaseSharingTests(unittest.TestCase):
    """Database handles on a real SQLite file, on a private set of pools."""

    def setUp(self):
        self.pools = SharedPools(build_pool)
        self.url = sqlite_url(self)

    @defer.inlineCallbacks
    def test_closing_one_handle_leaves_the_other_working(self):
        """Two handles, one pool: the first is closed, the second still answers; the last close closes the pool."""
        first, second = Database(self.url, pools=self.pools), Database(self.url, pools=self.pools)
        self.addCleanup(second.close)
        pool = first._lease.pool
        self.assertIs(second._lease.pool, pool)
        yield first.execute("CREATE TABLE item (value TEXT)")
        first.close()
        yield second.execute("INSERT INTO item VALUES ('kept')")
        rows = yield second.query("SELECT value FROM item")
        self.assertEqual([tuple(row) for row in rows], [("kept",)])
        self.assertFalse(pool.closed)
        second.close()
        self.assertTrue(pool.closed)

    @defer.inlineCallbacks
    def test_a_handle_outlives_the_shutdown_event(self):
        """The shutdown event (trial --jobs fires it after each test) closes the pool: the handle still answers."""
        db = Database(self.url, pools=self.pools)
        self.addCleanup(db.close)
        yield db.execute("CREATE TABLE item (value TEXT)")
        old = db._lease.pool
        old.close()  # the shutdown trigger's finalClose, without leaving that trigger registered
        self.assertTrue(old.closed)
        yield db.execute("INSERT INTO item VALUES ('after')")
        rows = yield db.query("SELECT value FROM item")
        self.assertEqual([tuple(row) for row in rows], [("after",)])
        self.assertIsNot(db._lease.pool, old)

    def test_the_pool_size_is_the_setting(self):
        """DATABASE_POOL_MAX sizes a new pool (default 3); a bad value names the setting."""
        self.patch(os, "environ", {name: value for name, value in os.environ.items() if name != "DATABASE_POOL_MAX"})
        pool = build_pool(self.url)
        self.addCleanup(pool.close)
        self.assertEqual(pool.max, 3)
        self.patch(os, "environ", dict(os.environ, DATABASE_POOL_MAX="5"))
        five = build_pool(self.url)
        self.addCleanup(five.close)
        self.assertEqual(five.max, 5)
        self.patch(os, "environ", dict(os.environ, DATABASE_POOL_MAX="0"))
        error = self.assertRaises(SettingsError, build_pool, self.url)
        self.assertIn("DATABASE_POOL_MAX", str(error))
