"""
The device registry on a real SQLite file (and its wrapping of secrets):
add hands out a key and secret once, names are checked, revoke and rotate
take effect within the cache life, the stored secret is wrapped and useless
without the key-encryption key, and usage is counted in batches.
"""

import secrets

from twisted.internet import defer, task
from twisted.trial import unittest

from components.core import errors
from components.core.settings import KeyConfigError
from components.db.database import Database
from components.iot import device_registry
from tests.support.databases import sqlite_url

KEK = secrets.token_bytes(32)


class RegistryTests(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.db = Database(sqlite_url(self))
        self.addCleanup(self.db.close)
        self.registry = self.make()

    def make(self, kek=KEK):
        return device_registry.DeviceRegistry(self.db, kek, clock=self.clock.seconds)

    @defer.inlineCallbacks
    def refused(self, d):
        """The domain error URI ``d`` fails with."""
        with self.assertRaises(errors.HubError) as raised:
            yield d
        return raised.exception.uri

    @defer.inlineCallbacks
    def test_add_and_lookup(self):
        """add gives a fresh key and secret; lookup(key) finds the device's name and that secret."""
        key, secret = yield self.registry.add("nodemcu-1")
        other_key, other_secret = yield self.registry.add("kitchen_2")
        self.assertNotEqual(key, other_key)
        self.assertNotEqual(secret, other_secret)
        self.assertGreaterEqual(len(secret), 32)
        found = yield self.registry.lookup(key)
        self.assertEqual(found, device_registry.Device("nodemcu-1", secret))
        self.assertEqual((yield self.registry.lookup(other_key)).name, "kitchen_2")
        self.assertIsNone((yield self.registry.lookup("dk-unknown")))
        self.assertIsNone((yield self.registry.lookup("bad key&")))
        self.assertTrue((yield self.registry.active("nodemcu-1")))
        self.assertFalse((yield self.registry.active("nobody")))

    @defer.inlineCallbacks
    def test_names_of_keys(self):
        """names_of answers, uncached, the keys that still name an unrevoked device (the MQTT listener's
        sweep): a rotated-away or revoked key is missing at once; malformed keys are ignored."""
        key, _ = yield self.registry.add("mqtt-1")
        other, _ = yield self.registry.add("mqtt-2")
        found = yield self.registry.names_of([key, other, "bad key&", "dk" + "0" * 24])
        self.assertEqual(found, {key: "mqtt-1", other: "mqtt-2"})
        new_key, _ = yield self.registry.rotate("mqtt-1")
        yield self.registry.revoke("mqtt-2")
        found = yield self.registry.names_of([key, other, new_key])
        self.assertEqual(found, {new_key: "mqtt-1"})
        self.assertEqual((yield self.registry.names_of([])), {})

    @defer.inlineCallbacks
    def test_names(self):
        """Duplicate, reserved and malformed names are invalid_argument, and nothing is added."""
        yield self.registry.add("dup")
        self.assertEqual((yield self.refused(self.registry.add("dup"))), errors.INVALID_ARGUMENT)
        for name in ("publish", "reading", "", "a.b", "a b", "x" * 65, "ünï", None, 7):
            with self.assertRaises(errors.InvalidArgument):
                yield self.registry.add(name)
        self.assertEqual([item["name"] for item in (yield self.registry.list())], ["dup"])
        yield self.registry.add("x" * 64)

    @defer.inlineCallbacks
    def test_unknown_device(self):
        """revoke and rotate of a name never added are not_found."""
        self.assertEqual((yield self.refused(self.registry.revoke("ghost"))), errors.NOT_FOUND)
        self.assertEqual((yield self.refused(self.registry.rotate("ghost"))), errors.NOT_FOUND)

    @defer.inlineCallbacks
    def test_revoke_within_cache_life(self):
        """
        A revoke by another registry on the same database (another node) is
        seen here once the cached answer is older than CACHE_SECONDS; the
        revoked device stays listed; revoking again is harmless; rotate refuses it.
        """
        key, _ = yield self.registry.add("gone")
        self.assertIsNotNone((yield self.registry.lookup(key)))
        self.assertTrue((yield self.registry.active("gone")))
        other = self.make()
        self.clock.advance(5)
        self.assertTrue((yield other.revoke("gone")))
        self.assertFalse((yield other.revoke("gone")))
        self.assertIsNone((yield other.lookup(key)))
        self.clock.advance(device_registry.CACHE_SECONDS)
        self.assertIsNone((yield self.registry.lookup(key)))
        self.assertFalse((yield self.registry.active("gone")))
        listed = yield self.registry.list()
        self.assertEqual([(item["name"], item["state"], item["revoked_ms"]) for item in listed],
                         [("gone", device_registry.REVOKED, 1_700_000_005_000)])
        self.assertEqual((yield self.refused(self.registry.rotate("gone"))), errors.INVALID_ARGUMENT)
        self.assertEqual((yield self.refused(self.registry.add("gone"))), errors.INVALID_ARGUMENT)

    @defer.inlineCallbacks
    def test_rotate(self):
        """rotate hands out a new key and secret; the old key is refused, on this node at once."""
        old_key, old_secret = yield self.registry.add("rot")
        self.assertIsNotNone((yield self.registry.lookup(old_key)))
        self.clock.advance(10)
        new_key, new_secret = yield self.registry.rotate("rot")
        self.assertNotEqual((old_key, old_secret), (new_key, new_secret))
        self.assertIsNone((yield self.registry.lookup(old_key)))
        self.assertEqual((yield self.registry.lookup(new_key)), device_registry.Device("rot", new_secret))
        listed = (yield self.registry.list())[0]
        self.assertEqual((listed["key"], listed["rotated_ms"], listed["created_ms"], listed["state"]),
                         (new_key, 1_700_000_010_000, 1_700_000_000_000, device_registry.ACTIVE))

    @defer.inlineCallbacks
    def test_secret_stored_wrapped(self):
        """The database holds no plain secret; another KEK cannot open it; a wrapped secret moved to another
        device's row does not open either."""
        key, secret = yield self.registry.add("vault")
        other_key, _ = yield self.registry.add("other")
        rows = yield self.db.query("SELECT * FROM iot_device")
        dump = repr(rows)
        self.assertNotIn(secret, dump)
        self.assertIn(key, dump)
        with self.assertRaises(KeyConfigError):
            yield self.make(kek=secrets.token_bytes(32)).lookup(key)
        wrapped = (yield self.db.query("SELECT wrapped_secret FROM iot_device WHERE name = 'vault'"))[0][0]
        yield self.db.execute("UPDATE iot_device SET wrapped_secret = ? WHERE name = 'other'", (wrapped,))
        with self.assertRaises(KeyConfigError):
            yield self.make().lookup(other_key)
        self.assertEqual(device_registry.unwrap_secret(KEK, "vault", key, wrapped), secret)

    @defer.inlineCallbacks
    def test_usage_counted_in_batches(self):
        """seen() counts readings and the latest moment; readings submitted together share one transaction."""
        yield self.registry.add("busy")
        yield self.registry.add("idle")
        self.clock.advance(1)
        first = [self.registry.seen("busy") for _ in range(5)]
        self.clock.advance(2)
        first.append(self.registry.seen("busy"))
        yield defer.gatherResults(first)
        self.assertLessEqual(self.registry._usage.batches, 2)
        listed = {item["name"]: item for item in (yield self.registry.list())}
        self.assertEqual((listed["busy"]["readings"], listed["busy"]["last_seen_ms"]), (6, 1_700_000_003_000))
        self.assertEqual((listed["idle"]["readings"], listed["idle"]["last_seen_ms"]), (0, None))

    @defer.inlineCallbacks
    def test_lookups_cached(self):
        """Within the cache life a repeated lookup does not query the database (it answers while the
        database is closed)."""
        key, _ = yield self.registry.add("cached")
        yield self.registry.lookup(key)
        yield self.registry.active("cached")
        self.db.close()
        self.assertEqual((yield self.registry.lookup(key)).name, "cached")
        self.assertTrue((yield self.registry.active("cached")))
