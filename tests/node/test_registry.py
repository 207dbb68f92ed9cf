"""
components.node.patches.registry: every patch module meets the contract, each
process kind gets its patches, a security patch that cannot install refuses the
process with one line naming it and the library version, a performance patch
falls back to the library's path with one info line.
"""

import os
import sys
import types

from twisted.trial.unittest import SynchronousTestCase

from components.core.settings import SettingsError
from components.node.patches import PatchUnavailable, registry


class Log:
    """Records (level, text) of what the registry logs."""

    def __init__(self):
        self.lines = []

    def _emit(self, level):
        def emit(format, **fields):
            self.lines.append((level, format.format(**fields)))
        return emit

    def __getattr__(self, level):
        if level in ("info", "warn", "error"):
            return self._emit(level)
        raise AttributeError(level)


def patch_module(name, security, workers=("router",), install=lambda: True):
    """A patch module registered in sys.modules under a test name (removed by the caller's cleanup)."""
    module = types.ModuleType("tests.node._patch_" + name)
    module.NAME, module.SECURITY, module.WORKERS = name, security, workers
    module.SUMMARY, module.UPSTREAM = "a test patch", "docs/upstream/{}.patch".format(name)
    module.VERIFIED = {"Twisted": "26.10.0"}
    module.install = install
    sys.modules[module.__name__] = module
    return module


class ContractTests(SynchronousTestCase):
    """The registered modules."""

    def test_every_module_meets_the_contract(self):
        """Each names its kinds among KINDS, a one-line summary, an upstream reference and verified versions."""
        names = set()
        for module in registry.load():
            self.assertIsInstance(module.SECURITY, bool, module.NAME)
            self.assertTrue(module.WORKERS and set(module.WORKERS) <= set(registry.KINDS), module.NAME)
            self.assertNotIn("\n", module.SUMMARY)
            self.assertTrue(module.UPSTREAM.startswith(("https://", "docs/upstream/")), module.NAME)
            self.assertTrue(module.VERIFIED, module.NAME)
            self.assertTrue(callable(module.install), module.NAME)
            names.add(module.NAME)
        self.assertEqual(len(names), len(registry.MODULES), "patch names are unique")

    def test_upstream_reference_exists(self):
        """UPSTREAM is an issue URL or a patch text kept in docs/upstream/ (ready to send)."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for module in registry.load():
            if module.UPSTREAM.startswith("https://"):
                continue
            self.assertTrue(module.UPSTREAM.startswith("docs/upstream/"), module.NAME)
            self.assertTrue(os.path.isfile(os.path.join(root, module.UPSTREAM)), module.UPSTREAM)

    def test_kinds(self):
        """Body limits in router and proxy workers; the node-key cache in proxies only; txaio in component workers."""
        names = {kind: [module.NAME for module in registry.for_kind(kind)] for kind in registry.KINDS}
        self.assertIn("bodylimit", names["router"])
        self.assertIn("bodylimit", names["proxy"])
        self.assertNotIn("bodylimit", names["container"])
        self.assertEqual([kind for kind in registry.KINDS if "nodekey_cache" in names[kind]], ["proxy"])
        self.assertIn("callkwargs", names["container"])
        self.assertNotIn("callkwargs", names["proxy"])
        self.assertRaises(ValueError, registry.for_kind, "guest")

    def test_module_lacking_a_field_is_refused(self):
        module = patch_module("incomplete", False)
        self.addCleanup(sys.modules.pop, module.__name__)
        del module.VERIFIED
        error = self.assertRaises(TypeError, registry.load, (module.__name__,))
        self.assertIn("VERIFIED", str(error))


class InstallTests(SynchronousTestCase):
    """install_for with test patch modules."""

    def modules(self, *modules):
        for module in modules:
            self.addCleanup(sys.modules.pop, module.__name__)
        return tuple(module.__name__ for module in modules)

    def test_installed_and_already(self):
        calls = []
        first = patch_module("first", True, install=lambda: calls.append(1) or "limits x")
        again = patch_module("again", False, install=lambda: False)
        other = patch_module("other", True, workers=("proxy",), install=lambda: 1 / 0)
        log = Log()
        outcome = registry.install_for("router", log, {}, self.modules(first, again, other))
        self.assertEqual(outcome, {"first": "installed", "again": "already"})
        self.assertEqual(log.lines, [("info", "reactive hub: patch first installed: a test patch (limits x)")])

    def test_security_patch_unavailable_refuses(self):
        """One line: the patch, the installed and the verified library versions, what is missing."""
        def missing():
            raise PatchUnavailable("HTTPChannel lacks _transferDecoder")
        module = patch_module("guard", True, install=missing)
        error = self.assertRaises(registry.Refused, registry.install_for, "router", Log(), {}, self.modules(module))
        line = str(error)
        self.assertNotIn("\n", line)
        from importlib import metadata
        for text in ("security patch guard", "Twisted " + metadata.version("Twisted"), "verified on Twisted 26.10.0",
                     "HTTPChannel lacks _transferDecoder", "refuses to start"):
            self.assertIn(text, line)

    def test_malformed_setting_refuses(self):
        def malformed():
            raise SettingsError("HTTP_BODY_LIMIT must be an integer")
        module = patch_module("limits", False, install=malformed)
        error = self.assertRaises(registry.Refused, registry.install_for, "router", Log(), {}, self.modules(module))
        self.assertIn("HTTP_BODY_LIMIT must be an integer", str(error))

    def test_performance_patch_unavailable_falls_back(self):
        def missing():
            raise PatchUnavailable("no send")
        module = patch_module("speed", False, install=missing)
        log = Log()
        outcome = registry.install_for("router", log, {}, self.modules(module))
        self.assertEqual(outcome, {"speed": "library path"})
        self.assertEqual(len(log.lines), 1)
        self.assertEqual(log.lines[0][0], "info")
        self.assertIn("speed not installed", log.lines[0][1])
        self.assertIn("no send", log.lines[0][1])

    def test_unexpected_error(self):
        """A bug in install(): a security patch refuses with the error in its line, another one falls back."""
        def broken():
            raise KeyError("_channel")
        guard = patch_module("guard", True, install=broken)
        error = self.assertRaises(registry.Refused, registry.install_for, "router", Log(), {}, self.modules(guard))
        self.assertIn("install() failed: KeyError", str(error))
        speed = patch_module("speed", False, install=broken)
        log = Log()
        self.assertEqual(registry.install_for("router", log, {}, self.modules(speed)), {"speed": "library path"})
        self.assertEqual([level for level, _ in log.lines], ["warn"])

    def test_switched_off(self):
        """HUB_PATCHES_OFF leaves patches out: a security one with a warning, HUB_FAST_SEND=off names fast_send."""
        calls = []
        guard = patch_module("guard", True, install=lambda: calls.append("guard"))
        fast = patch_module("fast_send", False, install=lambda: calls.append("fast"))
        log = Log()
        outcome = registry.install_for("router", log, {"HUB_PATCHES_OFF": " guard ,x", "HUB_FAST_SEND": "off"},
                                       self.modules(guard, fast))
        self.assertEqual((outcome, calls), ({"guard": "off", "fast_send": "off"}, []))
        self.assertEqual([level for level, _ in log.lines], ["warn", "warn", "info"])
        self.assertIn("names x, which is no patch", log.lines[0][1])

    def test_patch_that_cannot_be_off_refuses(self):
        """A patch with NOT_OFF named in HUB_PATCHES_OFF refuses the worker with one line saying why; not installed."""
        calls = []
        guard = patch_module("guard", True, install=lambda: calls.append("guard"))
        guard.NOT_OFF = "the config needs it"
        error = self.assertRaises(registry.Refused, registry.install_for, "router", Log(),
                                  {"HUB_PATCHES_OFF": "guard"}, self.modules(guard))
        self.assertEqual(str(error), "reactive hub: patch guard cannot be switched off by HUB_PATCHES_OFF: the config "
                                     "needs it; this worker refuses to start")
        self.assertEqual(calls, [])

    def test_listen_interface_cannot_be_off(self):
        """The dev config cannot listen without listen_interface: switching it off is one refusal line."""
        error = self.assertRaises(registry.Refused, registry.install_for, "router", Log(),
                                  {"HUB_PATCHES_OFF": "listen_interface"},
                                  ("components.node.patches.listen_interface",))
        self.assertIn("listen_interface cannot be switched off", str(error))
        self.assertNotIn("\n", str(error))

    def test_malformed_fast_send_setting_refuses(self):
        module = patch_module("fast_send", False)
        error = self.assertRaises(registry.Refused, registry.install_for, "router", Log(), {"HUB_FAST_SEND": "fast"},
                                  self.modules(module))
        self.assertIn("HUB_FAST_SEND", str(error))
