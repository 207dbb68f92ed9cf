"""
Unit tests of components.core.settings: substitution, the lookup order and
the typed getters of the one Settings view.
"""

from twisted.trial.unittest import SynchronousTestCase

from components.core.settings import Setting, Settings, SettingsError, node_dir, substitute


def view(**extra):
    """Settings of ``extra`` alone (an empty environment)."""
    return Settings(extra, environ={}, node_directory="/node")


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
        self.assertEqual(view(x="").int("x", 7), 7)
        self.assertEqual(view(x="9").int("x", 7), 9)
        with self.assertRaises(SettingsError) as caught:
            view(x="nine").int("x", 7)
        self.assertIn("'x'", str(caught.exception))
        self.assertRaises(SettingsError, view(x="0").int, "x", 7, minimum=1)
        self.assertTrue(view(e="on").bool("e", False))
        self.assertFalse(view(e="").bool("e", False))
        self.assertRaises(SettingsError, view(e="maybe").bool, "e", False)

    def test_node_dir_and_database_url(self):
        """--cbdir wins; database URLs default to SQLite files there."""
        self.assertEqual(node_dir(["crossbar", "--cbdir", "/srv/node"], {}), "/srv/node")
        self.assertEqual(node_dir(["x", "--cbdir=/srv/n2"], {}), "/srv/n2")
        self.assertEqual(node_dir(["x"], {"CROSSBAR_DIR": "/srv/n3"}), "/srv/n3")
        self.assertEqual(Settings({}, {}, "/srv/node").database_url("client"), "sqlite:////srv/node/client.db")
        self.assertEqual(Settings({}, {"MASTER_DATABASE_URL": "postgresql://h/db"}, "/x").database_url("master"),
                         "postgresql://h/db")


class SettingsViewTests(SynchronousTestCase):
    """One lookup order and typed getters for every component, resource and command line."""

    def test_extra_then_environment_then_default(self):
        """A non-empty extra value wins; an empty one (an unset ${VAR}) falls back to the environment."""
        settings = Settings({"A": "from-extra", "B": "${UNSET}", "C": ""}, environ={"A": "env", "B": "env-b"},
                            node_directory="/node")
        self.assertEqual(settings.text("A"), "from-extra")
        self.assertEqual(settings.text("B"), "env-b")
        self.assertEqual(settings.text("C", "dflt"), "dflt")
        self.assertEqual(settings.text("D"), "")

    def test_each_setting_is_read_once(self):
        """A value read once is remembered: a later change of the environment does not change it mid-start."""
        environ = {"X": "1"}
        settings = Settings({}, environ=environ, node_directory="/node")
        self.assertEqual(settings.int("X", 0), 1)
        environ["X"] = "2"
        self.assertEqual(settings.int("X", 0), 1)

    def test_floats_and_durations(self):
        """Durations take plain seconds or a unit; bounds and garbage name the setting."""
        self.assertEqual(view(f="2.5").float("f", 1.0), 2.5)
        self.assertEqual(view(d="").duration("d", 3.0), 3.0)
        self.assertEqual([view(d=text).duration("d", 0) for text in ("90", "1.5", "500ms", "30s", "5m", "2h", "1d")],
                         [90.0, 1.5, 0.5, 30.0, 300.0, 7200.0, 86400.0])
        with self.assertRaises(SettingsError) as caught:
            view(d="soon").duration("d", 1)
        self.assertIn("'d'", str(caught.exception))
        self.assertRaises(SettingsError, view(d="10ms").duration, "d", 1, minimum=0.05)
        self.assertRaises(SettingsError, view(f="2").float, "f", 1, maximum=1.5)

    def test_urls(self):
        """A URL setting needs an allowed scheme and a host; unset gives the default."""
        self.assertEqual(view(u="https://h.example/x").url("u"), "https://h.example/x")
        self.assertEqual(view(u="").url("u", "http://d"), "http://d")
        self.assertRaises(SettingsError, view(u="h.example/x").url, "u")
        self.assertRaises(SettingsError, view(u="ftp://h/x").url, "u")

    def test_url_errors_hide_a_password(self):
        """A refused URL is shown without the password in its user part (declared and legacy reads)."""
        declared = Setting("ODATA_URL", "url", "a source")
        with self.assertRaises(SettingsError) as caught:
            Settings({}, {"ODATA_URL": "ftp://me:pa55word@h.example/x"}).get(declared)
        with self.assertRaises(SettingsError) as legacy:
            view(u="ftp://me:pa55word@h.example/x").url("u")
        for error in (caught.exception, legacy.exception):
            self.assertNotIn("pa55word", str(error))
            self.assertIn("ftp://me:***@h.example/x", str(error))

    def test_node_directory_from_extra(self):
        """``node_dir`` in extra (the test and dev configs set it) is the node directory for file defaults."""
        settings = Settings({"node_dir": "/srv/here"}, environ={})
        self.assertEqual(settings.node_directory, "/srv/here")
        self.assertEqual(settings.database_url("master"), "sqlite:////srv/here/master.db")
