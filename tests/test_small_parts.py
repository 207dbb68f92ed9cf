"""
Unit tests of settings substitution, the rate limiter, topic state and the
proxy workers' node-key cache.
"""

from crossbar.common import key as crossbar_key
from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from components import nodekey_cache
from components.ratelimit import RateLimiter
from components.settings import SettingsError, as_bool, as_int, database_url, node_dir, substitute
from components.state import TopicState


class SubstituteTests(SynchronousTestCase):
    """${VAR} and ${VAR:-default} in extra values."""

    def test_forms(self):
        """Set, unset with default, unset without default, nested, embedded."""
        environ = {"A": "1", "EMPTY": ""}
        extra = {"a": "${A}", "b": "${B:-two}", "c": "${C}", "d": ["x${A}y", {"e": "${EMPTY:-dflt}"}], "n": 5}
        self.assertEqual(substitute(extra, environ),
                         {"a": "1", "b": "two", "c": "", "d": ["x1y", {"e": "dflt"}], "n": 5})

    def test_numbers_and_bools(self):
        """Typed reads give defaults for empty values and name the setting when malformed."""
        self.assertEqual(as_int({"x": ""}, "x", 7), 7)
        self.assertEqual(as_int({"x": "9"}, "x", 7), 9)
        with self.assertRaises(SettingsError) as caught:
            as_int({"x": "nine"}, "x", 7)
        self.assertIn("'x'", str(caught.exception))
        self.assertRaises(SettingsError, as_int, {"x": "0"}, "x", 7, minimum=1)
        self.assertTrue(as_bool({"e": "on"}, "e", False))
        self.assertFalse(as_bool({"e": ""}, "e", False))
        self.assertRaises(SettingsError, as_bool, {"e": "maybe"}, "e", False)

    def test_node_dir_and_database_url(self):
        """--cbdir wins; database URLs default to SQLite files there."""
        self.assertEqual(node_dir(["crossbar", "--cbdir", "/srv/node"], {}), "/srv/node")
        self.assertEqual(node_dir(["x", "--cbdir=/srv/n2"], {}), "/srv/n2")
        self.assertEqual(node_dir(["x"], {"CROSSBAR_DIR": "/srv/n3"}), "/srv/n3")
        self.assertEqual(database_url("client", {}, "/srv/node"), "sqlite:////srv/node/client.db")
        self.assertEqual(database_url("master", {"MASTER_DATABASE_URL": "postgresql://h/db"}, "/x"),
                         "postgresql://h/db")


class RateLimiterTests(SynchronousTestCase):
    """Token bucket per key."""

    def test_burst_then_rate(self):
        """burst events pass at once, the next waits 1/rate seconds, keys are independent."""
        clock = task.Clock()
        limiter = RateLimiter(rate=2, burst=3, clock=clock.seconds)
        self.assertEqual([limiter.check("a")[0] for _ in range(3)], [True] * 3)
        allowed, retry = limiter.check("a")
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry, 0.5)
        self.assertTrue(limiter.check("b")[0])
        clock.advance(0.5)
        self.assertTrue(limiter.check("a")[0])
        self.assertFalse(limiter.check("a")[0])

    def test_memory_bounded(self):
        """The number of tracked keys stays under max_keys."""
        clock = task.Clock()
        limiter = RateLimiter(rate=1, burst=1, clock=clock.seconds, max_keys=100)
        for key in range(1000):
            limiter.check(key)
        self.assertLessEqual(len(limiter._buckets), 100)


class TopicStateTests(SynchronousTestCase):
    """The contract's state dict."""

    def test_snapshot(self):
        """No state before the first value; then value, seq, ts and extra keys."""
        clock = task.Clock()
        clock.advance(100)
        state = TopicState(clock.seconds)
        self.assertIsNone(state.snapshot())
        first = state.update(42, stale=False)
        self.assertEqual(first, {"value": 42, "seq": 100000, "ts": 100000, "stale": False})
        second = state.mark(stale=True)
        self.assertEqual((second["value"], second["stale"]), (42, True))
        self.assertGreater(second["seq"], first["seq"])


class NodeKeyCacheTests(SynchronousTestCase):
    """components.nodekey_cache: Crossbar's proxy worker reads the node key once per process, not per session."""

    def fake_module(self):
        calls = []

        class KeyModule:
            @staticmethod
            def _read_node_key(cbdir, privkey_path="key.priv", pubkey_path="key.pub", private=False):
                calls.append((cbdir, private))
                return {"hex": "{}-{}".format(cbdir, private), "qrcode": "..."}
        return KeyModule, calls

    def test_each_key_is_read_once(self):
        """Repeated reads of the same key hit the file once; private and public keys stay apart."""
        module, calls = self.fake_module()
        self.assertTrue(nodekey_cache.install(module))
        for _ in range(100):
            public = module._read_node_key("/node", private=False)
            private = module._read_node_key("/node", private=True)
        self.assertEqual((public["hex"], private["hex"]), ("/node-False", "/node-True"))
        self.assertEqual(calls, [("/node", False), ("/node", True)])
        self.assertFalse(nodekey_cache.install(module), "installed twice")

    def test_crossbar_key_reader_is_patched_in_place(self):
        """Against the installed Crossbar: the reader proxy workers import is the memoised one."""
        original = crossbar_key._read_node_key
        self.addCleanup(setattr, crossbar_key, "_read_node_key", original)
        self.assertTrue(nodekey_cache.install())
        self.assertIsNot(crossbar_key._read_node_key, original)
        self.assertTrue(getattr(crossbar_key._read_node_key, nodekey_cache.PATCHED))

    def test_only_proxy_worker_command_lines_qualify(self):
        """The site hook acts in proxy workers only, never in routers, containers or other programs."""
        proxy = ["python", "-u", "-m", "crossbar.worker.main", "--klass", "crossbar.worker.proxy.ProxyController"]
        router = ["python", "-u", "-m", "crossbar.worker.main", "--klass", "crossbar.worker.router.RouterController"]
        self.assertTrue(nodekey_cache.is_proxy_worker(proxy))
        self.assertFalse(nodekey_cache.is_proxy_worker(router))
        self.assertFalse(nodekey_cache.is_proxy_worker(["python", "-m", "twisted.trial", "tests"]))
        self.assertFalse(nodekey_cache.is_proxy_worker(["python", "-m", "crossbar.worker.main", "--klass"]))
