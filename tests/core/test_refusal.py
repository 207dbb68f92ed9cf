"""
Unit tests of components.core.refusal and of the component base's refusal:
a setting that cannot be used at start is one critical line and exit 78.
"""

from autobahn.wamp.types import CloseDetails, ComponentConfig
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from components.auth.authenticator import Authenticator
from components.clock import clock_settings
from components.core import refusal
from components.core.component import HubComponent
from components.core.settings import KeyConfigError, Settings, SettingsError


class Captured:
    """A stand-in Logger: the formatted lines by level."""

    def __init__(self):
        self.lines = []

    def emit(self, level, format, **kwargs):
        self.lines.append((level, formatEvent(dict(kwargs, log_format=format))))

    def critical(self, format, **kwargs):
        self.emit(LogLevel.critical, format, **kwargs)

    def warn(self, format, **kwargs):
        self.emit(LogLevel.warn, format, **kwargs)

    def failure(self, format, **kwargs):
        self.emit(LogLevel.critical, format + " (with traceback)", **kwargs)


class RefusalLineTests(SynchronousTestCase):
    """What the one line says."""

    def test_setting_line_names_setting_problem_place_and_fix(self):
        """A malformed setting's line: the prefix, the error's words, where it was met and the default fix."""
        try:
            Settings({"CLOCK_INTERVAL": "fast"}, {}).get(clock_settings.CLOCK_INTERVAL)
        except SettingsError as error:
            line = refusal.settings_line(error, "ClockComponent")
        self.assertEqual(line, "reactive hub refuses to start: setting 'CLOCK_INTERVAL' must be a duration such as "
                               "30, 30s, 5m or 500ms, got 'fast' (in ClockComponent): " + refusal.DEFAULT_FIX)
        self.assertNotIn("\n", line)

    def test_control_characters_stay_escaped(self):
        """A value's newline or terminal escape cannot forge a second log line or recolour the terminal."""
        line = refusal.settings_line(SettingsError("setting 'X': cannot track a\n2026 [Controller] ok\x1b[2K"))
        self.assertNotIn("\n", line)
        self.assertNotIn("\x1b", line)
        self.assertIn("a\\n2026 [Controller] ok\\x1b[2K", line)

    def test_error_with_its_own_fix(self):
        """An error that carries ``fix`` says that instead of the default."""
        error = KeyConfigError("JWT_SECRET is not set")
        error.fix = "set JWT_SECRET"
        self.assertTrue(refusal.settings_line(error).endswith("JWT_SECRET is not set: set JWT_SECRET"))

    def test_refuse_logs_one_critical_line_and_exits_78(self):
        log, exits = Captured(), []
        refusal.refuse("the line", log, exits.append)
        self.assertEqual((log.lines, exits), ([(LogLevel.critical, "the line")], [78]))

    def test_refusing_factory(self):
        """A factory raising SettingsError refuses with its line; other results and errors pass through."""
        log, exits = Captured(), []

        def WebThing(extra=None):
            if extra == "bad":
                raise SettingsError("setting 'X' must be on or off, got 'bad'")
            if extra == "bug":
                raise KeyError("bug")
            return "resource"

        built = refusal.refusing(WebThing, log, exits.append)
        self.assertEqual((built("good"), exits), ("resource", []))
        self.assertRaises(KeyError, built, "bug")
        self.assertRaises(SettingsError, built, "bad")  # only when exit returns (a test's stand-in)
        self.assertEqual(exits, [78])
        self.assertIn("setting 'X' must be on or off, got 'bad' (in WebThing)", log.lines[0][1])


class Starting(HubComponent):
    """A component whose start raises what it is given."""

    problem = None
    failed = False

    def start(self):
        if self.problem is not None:
            raise self.problem

    def on_start_failed(self):
        self.failed = True

    def leave(self, *args, **kwargs):
        self.left_with = args


def starting(problem):
    component = Starting(ComponentConfig("reactive", {}), environ={})
    component.problem = problem
    component.log = Captured()
    component.exits = []
    component.process_exit = component.exits.append
    return component


class ComponentRefusalTests(SynchronousTestCase):
    """HubComponent.onJoin: SettingsError refuses the process, other errors leave the session."""

    def test_settings_error_refuses_with_one_line(self):
        component = starting(SettingsError("setting 'COUNTER_RATE' must be a number, got 'x'"))
        self.successResultOf(component.onJoin(None))
        self.assertEqual(component.exits, [refusal.REFUSED])
        self.assertEqual(len(component.log.lines), 1)
        self.assertIn("setting 'COUNTER_RATE' must be a number, got 'x' (in Starting)", component.log.lines[0][1])
        self.assertFalse(component.failed)

    def test_other_error_leaves_as_before(self):
        component = starting(RuntimeError("boom"))
        self.successResultOf(component.onJoin(None))
        self.assertEqual(component.exits, [])
        self.assertTrue(component.failed)
        self.assertIn("(with traceback)", component.log.lines[0][1])


class AuthenticatorCleanupTests(SynchronousTestCase):
    """Authenticator.onLeave after a start that failed before it set anything up (the _expiries bug)."""

    def test_leave_after_refused_start(self):
        """A JWT_SECRET too short refuses; the session's onLeave then cleans up without an AttributeError."""
        authenticator = Authenticator(ComponentConfig("reactive", {"JWT_SECRET": "tooshort"}), environ={})
        exits = []
        authenticator.process_exit = exits.append
        authenticator.log = Captured()
        self.successResultOf(authenticator.onJoin(None))
        self.assertEqual(exits, [refusal.REFUSED])
        authenticator.onLeave(CloseDetails())
        self.assertTrue(authenticator.left)

    def test_leave_without_start(self):
        """onLeave of an authenticator that never joined."""
        authenticator = Authenticator(ComponentConfig("reactive", {}), environ={})
        authenticator.onLeave(CloseDetails())
        self.assertEqual(authenticator._expiries, {})


class KeyFileRefusalTests(SynchronousTestCase):
    """A JWT key file that is not a PEM key is a KeyConfigError naming the setting (one line), not a traceback."""

    def test_not_pem(self):
        import os
        import tempfile

        from components.auth import tokens
        directory = tempfile.mkdtemp(prefix="hub-keyfile-")
        path = os.path.join(directory, "jwt.pub")
        with open(path, "w") as handle:
            handle.write("not a key")
        for name in ("JWT_PUBLIC_KEY_FILE",):
            error = self.assertRaises(KeyConfigError, tokens.load_keys, Settings({}, {name: path}, directory))
            line = refusal.settings_line(error, "Authenticator")
            self.assertIn("JWT_PUBLIC_KEY_FILE {} cannot be used as a PEM key".format(path), line)
            self.assertNotIn("\n", line)
