"""
The settings registry: every setting declared once with a doc line and a
default within its bounds, a bad value of every kind refused with an error
naming the setting, docs/settings.md generated from it and current, and
``reactive-hub check`` naming every problem of an environment at once.
"""

import io
import os
import re

from twisted.trial.unittest import SynchronousTestCase

from components.core.settings import (
    BOOL, CHOICE, DATABASE_URL, DURATION, FILE, FILES, FLOAT, INT, KINDS, LIST, TEXT, URL, Settings, SettingsError)
from components.node import setting_catalog, setting_check

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_NUMBERS = (INT, FLOAT, DURATION)

# values no setting of the kind accepts (TEXT and LIST only when the declaration parses or bounds the text)
BAD_VALUES = {INT: ["1.5", "many"], FLOAT: ["fast"], DURATION: ["fast", "5 minutes"], BOOL: ["maybe"],
              URL: ["ftp://example.org/x", "not a url"], DATABASE_URL: ["mysql://user@host/db", "sqlite:///"],
              FILE: ["/nonexistent/setting-check.pem"], FILES: ["/nonexistent/a.pem,/nonexistent/b.pem"],
              CHOICE: ["nonesuch"], TEXT: ["!", "bad value!", "ftp://x/y"], LIST: ["ftp://x/y"]}


def bad_value(setting):
    """A value ``setting`` refuses, or None when its kind accepts any text."""
    if setting.min_length:
        return "x"
    for value in BAD_VALUES[setting.kind]:
        try:
            Settings({setting.name: value}, environ={}, node_directory="/tmp").get(setting)
        except SettingsError:
            return value
    return None


class RegistryTests(SynchronousTestCase):
    """Every declared setting."""

    def test_names_unique(self):
        """No name is declared twice."""
        names = [setting.name for setting in setting_catalog.all_settings()]
        self.assertEqual(sorted(set(names)), sorted(names))
        self.assertEqual(len(names), len(setting_catalog.by_name()))

    def test_every_setting_documented(self):
        """Every setting has one line of doc, a kind, and at least one role."""
        for setting in setting_catalog.all_settings():
            self.assertTrue(setting.doc.strip(), setting.name)
            self.assertNotIn("\n", setting.doc, setting.name)
            self.assertIn(setting.kind, KINDS)
            self.assertTrue(setting.roles, setting.name)

    def test_defaults_within_bounds(self):
        """Every default is a valid value: within the bounds, one of the choices, read without error when unset."""
        for setting in setting_catalog.all_settings():
            settings = Settings({}, environ={}, node_directory="/tmp/node")
            value = settings.get(setting)
            if setting.kind in _NUMBERS:
                if setting.minimum is not None:
                    self.assertGreaterEqual(value, setting.minimum, setting.name)
                if setting.maximum is not None:
                    self.assertLessEqual(value, setting.maximum, setting.name)
            if setting.kind == CHOICE:
                self.assertIn(value, setting.choices, setting.name)

    def test_numeric_defaults_read_back(self):
        """A numeric default given as text is read as the same value (the declaration and the docs agree)."""
        for setting in setting_catalog.all_settings():
            if setting.kind in _NUMBERS:
                read = Settings({setting.name: str(setting.default)}, environ={}).get(setting)
                self.assertEqual(read, setting.default, setting.name)

    def test_bad_value_of_every_kind_names_the_setting(self):
        """A bad value of every setting that can have one raises SettingsError naming it; every kind is covered."""
        kinds = set()
        for setting in setting_catalog.all_settings():
            value = bad_value(setting)
            if value is None:
                self.assertIn(setting.kind, (TEXT, LIST), "{} accepts anything".format(setting.name))
                continue
            error = self.assertRaises(SettingsError, Settings({setting.name: value}, environ={}).get, setting)
            self.assertIn(setting.name, str(error))
            if setting.secret:
                self.assertNotIn(repr(value), str(error))
            kinds.add(setting.kind)
        self.assertEqual(set(KINDS), kinds)

    def test_every_declaration_module_collected(self):
        """Every ``<folder>_settings.py`` under components/ is in the catalog, named after its folder."""
        found = set()
        for folder, _dirs, files in os.walk(os.path.join(REPO, "components")):
            for name in files:
                if name.endswith("_settings.py"):
                    relative = os.path.relpath(os.path.join(folder, name), REPO)[:-3]
                    found.add(relative.replace(os.sep, "."))
        collected = {module for _folder, module, _title in setting_catalog.MODULES}
        self.assertEqual(collected, found)
        for folder, module, _title in setting_catalog.MODULES:
            self.assertEqual(module, "components.{0}.{0}_settings".format(folder))


# the node configs' own defaults that differ from the declared ones on purpose (each is in the setting's docs)
CONFIG_OVERRIDES = {("config.json", "SERIAL_URL"), ("config.json", "ODATA_URL"),
                    ("config.json", "MQTT_PORT"), ("config.json", "MQTT_INTERFACE"),
                    ("master.json", "E2E_ENCRYPTION"), ("client.json", "E2E_ENCRYPTION"),
                    ("client.json", "REVOCATION_DATABASE")}


class ConfigDefaultTests(SynchronousTestCase):
    """The shipped node configs' ``${VAR:-default}`` values."""

    def test_config_defaults_are_the_declared_ones(self):
        """A default a node config restates is the declared default (so changing a declaration changes the node),
        except the listed per-config ones."""
        found = []
        for config in ("config.json", "master.json", "client.json"):
            with open(os.path.join(REPO, ".crossbar", config)) as handle:
                text = handle.read()
            for name, default in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}", text)):
                setting = setting_catalog.by_name()[name]
                settings = Settings({}, environ={}, node_directory="/node")
                declared = Settings({}, environ={}, node_directory="/node").get(setting)
                if setting.read(default, settings) != declared and (config, name) not in CONFIG_OVERRIDES:
                    found.append("{}: ${{{}:-{}}} but the declared default is {!r}".format(
                        config, name, default, declared))
        self.assertEqual([], found)


class DocsTests(SynchronousTestCase):
    """docs/settings.md."""

    def test_committed_page_current(self):
        """docs/settings.md is what the catalog generates (regenerate with python -m components.node.setting_catalog --markdown > docs/settings.md)."""
        with open(os.path.join(REPO, "docs", "settings.md")) as handle:
            committed = handle.read()
        self.assertEqual(setting_catalog.markdown(), committed,
                         "docs/settings.md is stale: run .venv/bin/python -m components.node.setting_catalog "
                         "--markdown > docs/settings.md")

    def test_page_lists_every_setting(self):
        """Every declared name has its row; the CLI prints the page."""
        out = io.StringIO()
        self.assertEqual(0, setting_catalog.main(["--markdown"], out=out))
        for name in setting_catalog.by_name():
            self.assertIn("| `{}` |".format(name), out.getvalue())


SECRET = "s" * 40  # a JWT_SECRET of valid length


class CheckTests(SynchronousTestCase):
    """components.node.setting_check (``reactive-hub check``)."""

    def check(self, environ, *argv):
        out = io.StringIO()
        code = setting_check.main(list(argv), environ=environ, out=out)
        return code, out.getvalue().splitlines()

    def test_shipped_configs_pass(self):
        """The dev config passes on an empty environment, the production configs given a JWT key: exit 0, one line."""
        for config, environ in (("config.json", {}), ("master.json", {"JWT_SECRET": SECRET}),
                                ("client.json", {"JWT_SECRET": SECRET})):
            code, lines = self.check(environ, "--config", os.path.join(REPO, ".crossbar", config))
            self.assertEqual((0, 1), (code, len(lines)), lines)
            self.assertTrue(lines[0].startswith("settings ok"))

    def test_production_without_jwt_key(self):
        """A production config, or HUB_ENV=production, without a JWT key: one line naming what to set, 78."""
        for environ, config in (({}, "master.json"), ({}, "client.json"), ({"HUB_ENV": "production"}, "config.json")):
            code, lines = self.check(environ, "--config", os.path.join(REPO, ".crossbar", config))
            self.assertEqual((setting_check.EX_CONFIG, 2), (code, len(lines)), lines)
            self.assertIn("the JWT key is not configured on this production node", lines[0])
            self.assertIn("fix: set JWT_SECRET", lines[0])
        code, lines = self.check({"HUB_ENV": "development"}, "--config", os.path.join(REPO, ".crossbar", "master.json"))
        self.assertEqual(0, code, lines)  # HUB_ENV=development overrides a production config on purpose

    def test_every_problem_at_once(self):
        """Several bad values give one line each, naming the setting and a fix, and exit 78."""
        environ = {"JWT_SECRET": "tooshort", "CLOCK_INTERVAL": "fast", "DATABASE_URL": "mysql://u:pw@h/x",
                   "COUNTER_BATCH": "0", "HUB_FAST_SEND": "maybe"}
        code, lines = self.check(environ, "--config", os.path.join(REPO, ".crossbar", "config.json"))
        self.assertEqual(setting_check.EX_CONFIG, code)
        self.assertEqual(len(environ) + 1, len(lines), lines)
        for name in environ:
            line = [line for line in lines if "'{}'".format(name) in line]
            self.assertEqual(1, len(line), (name, lines))
            self.assertIn("fix: set {}".format(name), line[0])
        self.assertNotIn("tooshort", "\n".join(lines))
        self.assertNotIn("pw", "\n".join(lines))

    def test_config_default_checked(self):
        """A bad ``${VAR:-default}`` or value in a node config's extra is a problem as well."""
        path = self.mktemp()
        with open(path, "w") as handle:
            handle.write('{"workers": [{"components": [{"extra": {"SERIAL_BAUD": "${SERIAL_BAUD:-fast}",'
                         ' "MONITOR_DATABASE": "elsewhere"}}]}]}')
        code, lines = self.check({}, "--config", path)
        self.assertEqual(setting_check.EX_CONFIG, code)
        self.assertEqual(3, len(lines), lines)
        self.assertIn("SERIAL_BAUD", lines[1])
        self.assertIn("MONITOR_DATABASE", lines[0])

    def test_typos_named(self):
        """An undeclared name that looks like ours (environment or config) is named, with the likely meant one."""
        path = self.mktemp()
        with open(path, "w") as handle:
            handle.write('{"workers": [{"components": [{"extra": {"COUNTER_BACTH": "${COUNTER_BACTH}"}}]}]}')
        code, lines = self.check({"JWT_SECRT": "x" * 40, "HOME": "/root", "AWS_ACCESS_KEY_ID": "a"}, "--config", path)
        self.assertEqual(setting_check.EX_CONFIG, code)
        text = "\n".join(lines)
        self.assertIn("JWT_SECRT: set in the environment but no setting of the hub (did you mean JWT_SECRET?)", text)
        self.assertIn("did you mean COUNTER_BATCH?", text)
        self.assertNotIn("HOME", text)
        self.assertNotIn("AWS_ACCESS_KEY_ID", text)
        self.assertNotIn("x" * 40, text)

    def test_unknown_names_only_warned_about_on_request(self):
        """``--unknown-names warning`` (what start asks for): a typo is a warning line, exit 0; a bad value still 78."""
        code, lines = self.check({"JWT_SECRT": "x" * 40, "HUB_FOO": "1"}, "--cbdir", os.path.join(REPO, ".crossbar"),
                                 "--unknown-names", "warning")
        self.assertEqual(0, code)
        self.assertEqual(sorted(line.split(":")[0] for line in lines[:-1]), ["warning", "warning"])
        self.assertIn("did you mean JWT_SECRET?", lines[0] + lines[1])
        code, lines = self.check({"HUB_FOO": "1", "CLOCK_INTERVAL": "fast"}, "--cbdir", os.path.join(REPO, ".crossbar"),
                                 "--unknown-names", "warning")
        self.assertEqual(setting_check.EX_CONFIG, code)
        self.assertTrue(any(line.startswith("setting 'CLOCK_INTERVAL'") for line in lines), lines)

    def test_config_in_node_directory(self):
        """``--cbdir`` (as ``reactive-hub check`` passes it) finds ``--config`` there, config.json by default."""
        cbdir = os.path.join(REPO, ".crossbar")
        code, lines = self.check({"JWT_SECRET": SECRET}, "--cbdir", cbdir, "--config", "master.json")
        self.assertEqual(0, code)
        self.assertIn(os.path.join(cbdir, "master.json"), lines[-1])
        code, lines = self.check({"CROSSBAR_DIR": cbdir})
        self.assertIn(os.path.join(cbdir, "config.json"), lines[-1])

    def test_unreadable_config(self):
        """A config that cannot be read is one line and exit 78."""
        code, lines = self.check({}, "--config", "/nonexistent/config.json")
        self.assertEqual((setting_check.EX_CONFIG, 1), (code, len(lines)))
        self.assertIn("--config /nonexistent/config.json", lines[0])
