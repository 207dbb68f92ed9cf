"""
Unit tests of components.node.patches.nodekey_cache.
"""

from crossbar.common import key as crossbar_key
from twisted.trial.unittest import SynchronousTestCase

from components.node.patches import PatchUnavailable, nodekey_cache


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
        from crossbar.worker import proxy
        original = crossbar_key._read_node_key
        self.addCleanup(setattr, crossbar_key, "_read_node_key", original)
        self.addCleanup(setattr, proxy, "_read_node_key", proxy._read_node_key)
        self.assertTrue(nodekey_cache.install())
        self.assertIsNot(crossbar_key._read_node_key, original)
        self.assertTrue(getattr(crossbar_key._read_node_key, nodekey_cache.PATCHED))

    def test_proxy_module_binding_is_patched(self):
        """The reader crossbar.worker.proxy bound by name at import (the one it calls) is the memoised one too."""
        from crossbar.worker import proxy
        self.addCleanup(setattr, crossbar_key, "_read_node_key", crossbar_key._read_node_key)
        self.addCleanup(setattr, proxy, "_read_node_key", proxy._read_node_key)
        self.assertTrue(nodekey_cache.install())
        self.assertIs(proxy._read_node_key, crossbar_key._read_node_key)
        self.assertTrue(getattr(proxy._read_node_key, nodekey_cache.PATCHED))
        self.assertFalse(nodekey_cache.install(), "installed twice")

    def test_release_without_the_reader(self):
        """A Crossbar without _read_node_key: PatchUnavailable (the registry then keeps Crossbar's path)."""
        self.assertRaises(PatchUnavailable, nodekey_cache.install, type("Module", (), {"__name__": "key"}))
