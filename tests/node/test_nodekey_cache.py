"""
Unit tests of components.node.patches.nodekey_cache.
"""

from crossbar.common import key as crossbar_key
from twisted.trial.unittest import SynchronousTestCase

from components.node.patches import nodekey_cache


class NodeKeyCacheTests(SynchronousTestCase):
    """components.node.patches.nodekey_cache: Crossbar's proxy worker reads the node key once per process, not per session."""

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
