"""
Unit tests of components.core.arguments: binding a WAMP call's arguments to
a procedure's parameters with invalid_argument (naming the argument) instead
of Python's TypeError.
"""

from twisted.trial import unittest

from components.core import errors
from components.core.arguments import REQUIRED, bind, integer, no_arguments


class BindTests(unittest.SynchronousTestCase):

    def assertRefused(self, call, field=None):
        with self.assertRaises(errors.InvalidArgument) as caught:
            call()
        self.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT)
        self.assertEqual(caught.exception.kwargs.get("field"), field)
        return caught.exception.message

    def test_positional_keyword_and_defaults(self):
        """Arguments bind by position or keyword, in parameter order; missing optional ones take the default."""
        parameters = {"limit": 1000, "offset": 0}
        self.assertEqual(bind("p", [], {}, parameters), [1000, 0])
        self.assertEqual(bind("p", [5], {"offset": 2}, parameters), [5, 2])
        self.assertEqual(bind("p", (), {"offset": 2, "limit": 1}, parameters), [1, 2])
        self.assertEqual(bind("p", None, None, parameters), [1000, 0])

    def test_required_argument(self):
        """A required parameter missing is refused naming it; given by position or keyword it binds."""
        parameters = {"profile": REQUIRED}
        self.assertIn("master.users.save needs the argument 'profile'",
                      self.assertRefused(lambda: bind("master.users.save", [], {}, parameters), field="profile"))
        self.assertEqual(bind("s", [{"a": 1}], {}, parameters), [{"a": 1}])
        self.assertEqual(bind("s", [], {"profile": None}, parameters), [None])

    def test_too_many_unknown_and_twice(self):
        """Extra positional arguments, unknown keywords and a value given twice are refused."""
        parameters = {"profile": REQUIRED}
        self.assertIn("at most 1 positional argument(s), got 2",
                      self.assertRefused(lambda: bind("s", [{}, {}], {}, parameters)))
        self.assertIn("unknown argument(s): details",
                      self.assertRefused(lambda: bind("s", [{}], {"details": 1}, parameters), field="details"))
        self.assertIn("two values for 'profile'",
                      self.assertRefused(lambda: bind("s", [{}], {"profile": {}}, parameters), field="profile"))

    def test_no_arguments(self):
        """A procedure without parameters refuses any argument, and says so."""
        no_arguments("users.me", [], {})
        self.assertIn("users.me takes no positional argument(s), got 1",
                      self.assertRefused(lambda: no_arguments("users.me", ["bob"], {})))
        self.assertRefused(lambda: no_arguments("users.me", [], {"details": "x"}), field="details")

    def test_long_unknown_names_are_cut(self):
        """An unknown keyword's name is echoed at most 80 characters long."""
        message = self.assertRefused(lambda: no_arguments("p", [], {"k" * 10000: 1}), field="k" * 80)
        self.assertLess(len(message), 200)

    def test_integer(self):
        """An integer in range passes; a bool, float, string, None or one out of range is refused naming it."""
        self.assertEqual(integer("limit", 5, 1, 1000), 5)
        for bad in (True, 5.0, "5", None, 0, 1001, 10 ** 30, [5]):
            self.assertRefused(lambda: integer("limit", bad, 1, 1000), field="limit")
