"""components.core.exits.outcome: how a command's ways of ending become exit codes and at most one line."""

import io

from twisted.trial.unittest import SynchronousTestCase

from components.core import exits
from components.core.settings import SettingsError


def ending(how):
    """A command's main that ends ``how``: returns it, or raises it when it is an exception."""
    def main(argv):
        if isinstance(how, BaseException):
            raise how
        return how
    return main


class OutcomeTests(SynchronousTestCase):
    """Each ending maps to its documented code."""

    def code(self, how):
        err = io.StringIO()
        return exits.outcome(ending(how), [], err=err), err.getvalue()

    def test_returned(self):
        """None is 0, a returned code is kept, nothing is written."""
        self.assertEqual(self.code(None), (0, ""))
        self.assertEqual(self.code(4), (4, ""))

    def test_system_exit(self):
        """SystemExit with a code keeps it (argparse's 2); with a message it is one error line and 1."""
        self.assertEqual(self.code(SystemExit(2)), (2, ""))
        self.assertEqual(self.code(SystemExit(None)), (0, ""))
        self.assertEqual(self.code(SystemExit("passwords do not match")), (1, "error: passwords do not match\n"))

    def test_ctrl_c(self):
        """KeyboardInterrupt is 130 and one line."""
        self.assertEqual(self.code(KeyboardInterrupt()), (130, "interrupted\n"))

    def test_bad_setting(self):
        """A SettingsError is 78 with its message (which names the setting)."""
        self.assertEqual(self.code(SettingsError("JWT_TTL must be an integer")),
                         (78, "error: JWT_TTL must be an integer\n"))

    def test_bug_keeps_its_traceback(self):
        """Any other exception propagates: a bug is not hidden behind a code."""
        self.assertRaises(ZeroDivisionError, exits.outcome, ending(ZeroDivisionError()), [], io.StringIO())
