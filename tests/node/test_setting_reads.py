"""
Settings are read through their declarations only: the source of
``components/`` (read with ``ast``, nothing imported) holds no read of a
setting by its name with a default restated (``settings.int("NAME", 5)``),
no ``settings.get("NAME")``, no environment read of a declared or undeclared
setting by name, and no declaration outside a ``<folder>_settings.py``.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

from components.node import setting_catalog
from tests.test_layout import python_files

MECHANISM = os.path.join("components", "core", "settings.py")
# the typed getters of the old style, and the special readers they had
OLD_READS = {"text", "int", "float", "bool", "duration", "url", "raw", "database_url", "trusted_proxies",
             "forwarded_header"}
# environment variables read by name that are Crossbar's, not settings of the hub
NOT_OURS = {"CROSSBAR_DIR"}


def _settings_like(node):
    """True for an expression that is a settings view: ``settings``, ``self.settings``, ``Settings(...)``."""
    if isinstance(node, ast.Call):
        node = node.func
    text = ast.unparse(node)
    last = text.rsplit(".", 1)[-1]
    return last in ("settings", "Settings") or last.endswith("_settings_view")


def _literal(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _environ_like(node):
    text = ast.unparse(node)
    return text == "environ" or text.endswith(".environ")


def problems(path, source, declared):
    """The lines of ``source`` that read a setting around the registry, as text."""
    found = []
    tree = ast.parse(source)
    declaring = os.path.basename(path).endswith("_settings.py")
    for node in ast.walk(tree):
        where = "{}:{}".format(path, getattr(node, "lineno", "?"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver, attr = node.func.value, node.func.attr
            if attr in OLD_READS and _settings_like(receiver):
                found.append("{}: {} reads a setting by name (use settings.get(DECLARATION))".format(
                    where, ast.unparse(node)[:80]))
            elif attr == "get" and _settings_like(receiver) and node.args and _literal(node.args[0]):
                found.append("{}: {} reads a setting by name".format(where, ast.unparse(node)[:80]))
            elif attr == "get" and _environ_like(receiver) and node.args and _literal(node.args[0]):
                name = _literal(node.args[0])
                if name not in NOT_OURS:
                    found.append("{}: environment read of {} by name{}".format(
                        where, name, "" if name in declared else " (no declared setting)"))
            elif attr == "getenv" and node.args and _literal(node.args[0]) not in NOT_OURS | {None}:
                found.append("{}: environment read of {} by name".format(where, _literal(node.args[0])))
        elif isinstance(node, ast.Subscript) and _environ_like(node.value) and _literal(node.slice):
            if _literal(node.slice) not in NOT_OURS:
                found.append("{}: environment read of {} by name".format(where, _literal(node.slice)))
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).rsplit(".", 1)[-1] == "Setting"
              and not declaring):
            found.append("{}: a setting declared outside a <folder>_settings.py".format(where))
    return found


class SettingReadTests(SynchronousTestCase):
    """Every read goes through a declaration."""

    def test_no_read_around_the_registry(self):
        """No module of components/ reads a setting by name, restates a default, or declares one elsewhere."""
        declared = set(setting_catalog.by_name())
        found = []
        for path, source in sorted(python_files("components").items()):
            if path != MECHANISM:
                found.extend(problems(path, source, declared))
        self.assertEqual([], found)

    def test_scan_catches_the_old_style(self):
        """The scan flags each way around the registry (so the test above can fail)."""
        declared = {"COUNTER_BATCH"}
        source = "\n".join([
            'x = settings.int("COUNTER_BATCH", 200, minimum=1)',
            'y = self.settings.text("JWT_ISSUER", "reactive")',
            'z = Settings().bool("HISTORY", True)',
            'w = settings.get("COUNTER_BATCH")',
            'v = os.environ.get("COUNTER_BATCH")',
            'u = environ["JWT_SECRET"]',
            't = Setting("NEW", "int", "doc")',
            'fine = settings.get(counter_settings.COUNTER_BATCH)',
            'also_fine = environ.get(name)',
        ])
        found = problems(os.path.join("components", "counter", "component.py"), source, declared)
        self.assertEqual([1, 2, 3, 4, 5, 6, 7], [int(line.split(":")[1]) for line in found])
        self.assertEqual([], problems(os.path.join("components", "counter", "counter_settings.py"),
                                      't = Setting("NEW", "int", "doc")', declared))
