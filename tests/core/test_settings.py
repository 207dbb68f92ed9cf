"""
Unit tests of components.core.settings: substitution, the lookup order and
the kinds a declared Setting reads through the one Settings view.
"""

from twisted.trial.unittest import SynchronousTestCase

from components.core.settings import (
    BOOL, DURATION, FLOAT, INT, TEXT, URL, Setting, Settings, SettingsError, node_dir, substitute)
from components.db import db_settings


def view(**extra):
    """Settings of ``extra`` alone (an empty environment)."""
    return Settings(extra, environ={}, node_directory="/node")


def declared(name, kind, **options):
    """A declaration for the tests (``doc`` filled in)."""
    return Setting(name, kind, "a test setting", **options)


class SubstituteTests(SynchronousTestCase):
    """${VAR} and ${VAR:-default} in extra values."""

    def test_forms(self):
        """Set, unset with default, unset without default, nested, embedded."""
        environ = {"A": "1", "EMPTY": ""}
        extra = {"a": "${A}", "b": "${B:-two}", "c": "${C}", "d": ["x${A}y", {"e": "${EMPTY:-dflt}"}], "n": 5}
        self.assertEqual(substitute(extra, environ),
                         {"a": "1", "b": "two", "c": "", "d": ["x1y", {"e": "dflt"}], "n": 5})

    def test_numbers_and_bools(self):
        """Declared reads give the default for empty values and name the setting when malformed."""
        x, e = declared("x", INT, default=7, minimum=1), declared("e", BOOL, default=False)
        self.assertEqual(view(x="").get(x), 7)
        self.assertEqual(view(x="9").get(x), 9)
        with self.assertRaises(SettingsError) as caught:
            view(x="nine").get(x)
        self.assertIn("'x'", str(caught.exception))
        self.assertRaises(SettingsError, view(x="0").get, x)
        self.assertTrue(view(e="on").get(e))
        self.assertFalse(view(e="").get(e))
        self.assertRaises(SettingsError, view(e="maybe").get, e)

    def test_node_dir_and_database_url(self):
        """--cbdir wins; database URLs default to SQLite files there."""
        self.assertEqual(node_dir(["crossbar", "--cbdir", "/srv/node"], {}), "/srv/node")
        self.assertEqual(node_dir(["x", "--cbdir=/srv/n2"], {}), "/srv/n2")
        self.assertEqual(node_dir(["x"], {"CROSSBAR_DIR": "/srv/n3"}), "/srv/n3")
        self.assertEqual(Settings({}, {}, "/srv/node").get(db_settings.DATABASE_URL), "sqlite:////srv/node/client.db")
        self.assertEqual(db_settings.url_of(Settings({}, {"MASTER_DATABASE_URL": "postgresql://h/db"}, "/x"), "master"),
                         "postgresql://h/db")


class SettingsViewTests(SynchronousTestCase):
    """One lookup order and declared kinds for every component, resource and command line."""

    def test_extra_then_environment_then_default(self):
        """A non-empty extra value wins; an empty one (an unset ${VAR}) falls back to the environment."""
        settings = Settings({"A": "from-extra", "B": "${UNSET}", "C": ""}, environ={"A": "env", "B": "env-b"},
                            node_directory="/node")
        self.assertEqual(settings.get(declared("A", TEXT)), "from-extra")
        self.assertEqual(settings.get(declared("B", TEXT)), "env-b")
        self.assertEqual(settings.get(declared("C", TEXT, default="dflt")), "dflt")
        self.assertEqual(settings.get(declared("D", TEXT)), "")

    def test_each_setting_is_read_once(self):
        """A value read once is remembered: a later change of the environment does not change it mid-start."""
        environ = {"X": "1"}
        settings = Settings({}, environ=environ, node_directory="/node")
        x = declared("X", INT, default=0)
        self.assertEqual(settings.get(x), 1)
        environ["X"] = "2"
        self.assertEqual(settings.get(x), 1)

    def test_floats_and_durations(self):
        """Durations take plain seconds or a unit; bounds and garbage name the setting."""
        f, d = declared("f", FLOAT, default=1.0, maximum=1.5), declared("d", DURATION, default=3.0, minimum=0.05)
        self.assertEqual(view(f="1.25").get(f), 1.25)
        self.assertEqual(view(d="").get(d), 3.0)
        self.assertEqual([view(d=text).get(d) for text in ("90", "1.5", "500ms", "30s", "5m", "2h", "1d")],
                         [90.0, 1.5, 0.5, 30.0, 300.0, 7200.0, 86400.0])
        with self.assertRaises(SettingsError) as caught:
            view(d="soon").get(d)
        self.assertIn("'d'", str(caught.exception))
        self.assertRaises(SettingsError, view(d="10ms").get, d)
        self.assertRaises(SettingsError, view(f="2").get, f)

    def test_urls(self):
        """A URL setting needs an allowed scheme and a host; unset gives the default."""
        u = declared("u", URL, default="http://d")
        self.assertEqual(view(u="https://h.example/x").get(u), "https://h.example/x")
        self.assertEqual(view(u="").get(u), "http://d")
        self.assertRaises(SettingsError, view(u="h.example/x").get, u)
        self.assertRaises(SettingsError, view(u="ftp://h/x").get, u)

    def test_url_errors_hide_a_password(self):
        """A refused URL is shown without the password in its user part."""
        with self.assertRaises(SettingsError) as caught:
            Settings({}, {"ODATA_URL": "ftp://me:pa55word@h.example/x"}).get(declared("ODATA_URL", URL))
        self.assertNotIn("pa55word", str(caught.exception))
        self.assertIn("ftp://me:***@h.example/x", str(caught.exception))

    def test_of_process(self):
        """A worker's settings: its environment and the node directory of its command line, no extra."""
        settings = Settings.of_process(["crossbar", "--cbdir", "/srv/worker"], {"X": "4"})
        self.assertEqual((settings.node_directory, settings.extra), ("/srv/worker", {}))
        self.assertEqual(settings.get(declared("X", INT, default=0)), 4)

    def test_node_directory_from_extra(self):
        """``node_dir`` in extra (the test and dev configs set it) is the node directory for file defaults."""
        settings = Settings({"node_dir": "/srv/here"}, environ={})
        self.assertEqual(settings.node_directory, "/srv/here")
        self.assertEqual(settings.get(db_settings.MASTER_DATABASE_URL), "sqlite:////srv/here/master.db")
