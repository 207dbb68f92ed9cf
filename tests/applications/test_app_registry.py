"""
The application registry on a real SQLite file: add hands out a key and
secret once, names are checked, private is kept, rotate and revoke take
effect within the cache life, and the stored secret is sealed with the KEK.
"""

import secrets

from twisted.internet import defer, task
from twisted.trial import unittest

from components.applications import app_registry
from components.core import errors
from components.core.settings import KeyConfigError
from components.db.database import Database
from tests.support.databases import sqlite_url

KEK = secrets.token_bytes(32)


class AppRegistryTests(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.db = Database(sqlite_url(self))
        self.addCleanup(self.db.close)
        self.registry = self.make()

    def make(self, kek=KEK):
        return app_registry.AppRegistry(self.db, kek, clock=self.clock.seconds)

    @defer.inlineCallbacks
    def refused(self, d):
        with self.assertRaises(errors.HubError) as raised:
            yield d
        return raised.exception.uri

    @defer.inlineCallbacks
    def test_add_and_lookup(self):
        """add gives a fresh key and secret; lookup(key) finds the name, that secret and the private flag."""
        key, secret = yield self.registry.add("shop")
        other_key, other_secret = yield self.registry.add("payroll", private=True)
        self.assertNotEqual(key, other_key)
        self.assertGreaterEqual(len(secret), 32)
        self.assertNotIn(":", key)
        self.assertEqual((yield self.registry.lookup(key)), app_registry.App("shop", secret, False))
        self.assertEqual((yield self.registry.lookup(other_key)), app_registry.App("payroll", other_secret, True))
        self.assertIsNone((yield self.registry.lookup("ak" + "0" * 24)))
        self.assertIsNone((yield self.registry.lookup("bad key")))
        listed = yield self.registry.list()
        self.assertEqual([(item["name"], item["private"], item["state"]) for item in listed],
                         [("payroll", True, "active"), ("shop", False, "active")])

    @defer.inlineCallbacks
    def test_names(self):
        """Taken and malformed names are invalid_argument (a name is one URI word), nothing is added."""
        yield self.registry.add("dup")
        self.assertEqual((yield self.refused(self.registry.add("dup"))), errors.INVALID_ARGUMENT)
        for name in ("", "a.b", "a b", "Shop", "a-b", "x" * 49, None):
            with self.assertRaises(errors.InvalidArgument):
                yield self.registry.add(name)
        self.assertEqual([item["name"] for item in (yield self.registry.list())], ["dup"])

    @defer.inlineCallbacks
    def test_unknown(self):
        """revoke and rotate of a name never added are not_found."""
        self.assertEqual((yield self.refused(self.registry.revoke("ghost"))), errors.NOT_FOUND)
        self.assertEqual((yield self.refused(self.registry.rotate("ghost"))), errors.NOT_FOUND)

    @defer.inlineCallbacks
    def test_revoke_within_cache_life(self):
        """Another node's revoke is seen here once the cached answer is older than 1 s; rotate then refuses."""
        key, _secret = yield self.registry.add("shop")
        self.assertIsNotNone((yield self.registry.lookup(key)))
        other = self.make()
        self.assertTrue((yield other.revoke("shop")))
        self.assertFalse((yield other.revoke("shop")))
        self.assertIsNotNone((yield self.registry.lookup(key)))  # cached
        self.clock.advance(app_registry.CACHE_SECONDS)
        self.assertIsNone((yield self.registry.lookup(key)))
        self.assertEqual((yield self.refused(other.rotate("shop"))), errors.INVALID_ARGUMENT)
        self.assertEqual([item["state"] for item in (yield other.list())], ["revoked"])

    @defer.inlineCallbacks
    def test_rotate(self):
        """rotate refuses the old key at once on this node and hands out a working new one."""
        key, secret = yield self.registry.add("shop")
        yield self.registry.lookup(key)
        new_key, new_secret = yield self.registry.rotate("shop")
        self.assertNotEqual((key, secret), (new_key, new_secret))
        self.assertIsNone((yield self.registry.lookup(key)))
        self.assertEqual((yield self.registry.lookup(new_key)).secret, new_secret)

    @defer.inlineCallbacks
    def test_secret_sealed(self):
        """The row holds no plain secret; another KEK cannot open it; a sealed secret moved to another
        row does not open."""
        key, secret = yield self.registry.add("shop")
        other_key, _ = yield self.registry.add("blog")
        rows = yield self.db.run(lambda cursor: cursor.execute(
            "SELECT name, wrapped_secret FROM hub_app ORDER BY name").fetchall())
        self.assertFalse(any(secret in row[1] for row in rows))
        with self.assertRaises(KeyConfigError):
            yield self.make(secrets.token_bytes(32)).lookup(key)
        shop = dict(rows)["shop"]
        yield self.db.run(lambda cursor: cursor.execute(
            "UPDATE hub_app SET wrapped_secret = ? WHERE name = 'blog'", (shop,)))
        with self.assertRaises(KeyConfigError):
            yield self.make().lookup(other_key)
