"""
Password prompts (components.core.prompts): no terminal or end of input is
one line and a non-zero code, Ctrl-C is 130, a short or mistyped password
asks again up to three times. The input functions are injected.
"""

import io

from twisted.trial.unittest import SynchronousTestCase

from components.core import exits
from components.core.prompts import PromptFailed, new_password, password_from


def typed(*answers):
    """An ``ask`` that answers ``answers`` in turn (an exception class is raised) and records its prompts."""
    remaining = list(answers)
    asked = []

    def ask(prompt):
        asked.append(prompt)
        answer = remaining.pop(0)
        if isinstance(answer, type) and issubclass(answer, BaseException):
            raise answer()
        return answer
    ask.asked = asked
    return ask


class NewPasswordTests(SynchronousTestCase):
    """new_password with an injected terminal."""

    def setUp(self):
        self.err = io.StringIO()

    def test_typed_twice(self):
        """A long enough password typed the same twice is returned; nothing is written to err."""
        ask = typed("long-password", "long-password")
        self.assertEqual(new_password(ask, lambda: True, self.err), "long-password")
        self.assertEqual(ask.asked, ["Password: ", "Password (again): "])
        self.assertEqual(self.err.getvalue(), "")

    def test_no_terminal(self):
        """Without a terminal nothing is asked: one line naming --password-stdin, exit code 1."""
        ask = typed()
        with self.assertRaises(PromptFailed) as caught:
            new_password(ask, lambda: False, self.err)
        self.assertEqual(caught.exception.code, exits.FAILURE)
        self.assertIn("--password-stdin", str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))
        self.assertEqual(ask.asked, [])

    def test_end_of_input(self):
        """EOF at the prompt (Ctrl-D) is one line and exit code 1, not an EOFError."""
        with self.assertRaises(PromptFailed) as caught:
            new_password(typed(EOFError), lambda: True, self.err)
        self.assertEqual((caught.exception.code, str(caught.exception)),
                         (exits.FAILURE, "input ended before a password was given"))

    def test_ctrl_c(self):
        """Ctrl-C at either prompt ends with 130 and the line 'interrupted', not a KeyboardInterrupt."""
        for answers in ((KeyboardInterrupt,), ("long-password", KeyboardInterrupt)):
            with self.assertRaises(PromptFailed) as caught:
                new_password(typed(*answers), lambda: True, self.err)
            self.assertEqual((caught.exception.code, str(caught.exception)), (exits.INTERRUPTED, "interrupted"))
        self.assertEqual(self.err.getvalue(), "\n\n")  # each prompt's line ended, "interrupted" on a line of its own

    def test_short_password_asks_again(self):
        """A short password says why and asks again; the next good one is taken."""
        ask = typed("short", "long-password", "long-password")
        self.assertEqual(new_password(ask, lambda: True, self.err), "long-password")
        self.assertEqual(ask.asked, ["Password: ", "Password: ", "Password (again): "])
        self.assertEqual(self.err.getvalue(), "password must have at least 8 characters; try again\n")

    def test_mismatch_asks_again(self):
        """A confirmation that differs asks again from the start."""
        ask = typed("long-password", "long-passw0rd", "long-password", "long-password")
        self.assertEqual(new_password(ask, lambda: True, self.err), "long-password")
        self.assertEqual(self.err.getvalue(), "passwords do not match; try again\n")

    def test_three_attempts(self):
        """After three failed attempts it gives up with exit code 1."""
        ask = typed("a", "b", "c", "never asked")
        with self.assertRaises(PromptFailed) as caught:
            new_password(ask, lambda: True, self.err)
        self.assertEqual((caught.exception.code, str(caught.exception)),
                         (exits.FAILURE, "no acceptable password after 3 attempts"))
        self.assertEqual(len(ask.asked), 3)
        self.assertEqual(self.err.getvalue().count("\n"), 3)


class PasswordFromStreamTests(SynchronousTestCase):
    """--password-stdin: the first line, refused when missing or short."""

    def test_first_line(self):
        """The first line without its newline is the password; the rest of the input is not read."""
        self.assertEqual(password_from(io.StringIO("long-password\nrest\n")), "long-password")

    def test_empty_and_short(self):
        """No input and a short line are refused with one line each."""
        for text, message in (("", "no password on standard input"),
                              ("short\n", "password must have at least 8 characters")):
            with self.assertRaises(PromptFailed) as caught:
                password_from(io.StringIO(text))
            self.assertEqual(str(caught.exception), message)
