"""
Asking a person for a new password on the terminal. Without a terminal, or
on end of input, :func:`new_password` refuses with one line instead of a
traceback; Ctrl-C ends it with :data:`~components.core.exits.INTERRUPTED`; a
short password or a mistyped confirmation asks again, up to ``attempts``
times. The input functions are passed in, so tests hand in their own.
"""

import getpass
import sys

from components.core import exits

MINIMUM_LENGTH = 8
ATTEMPTS = 3


class PromptFailed(Exception):
    """No password was obtained; ``str()`` is the one line to show, ``code`` the exit code."""

    def __init__(self, message, code=exits.FAILURE):
        super().__init__(message)
        self.code = code

    def line(self):
        """The line to show: ``interrupted``, or ``error: <why>``."""
        return str(self) if self.code == exits.INTERRUPTED else "error: {}".format(self)


def _checked(password, minimum):
    """None when ``password`` is acceptable, else why not."""
    if len(password) < minimum:
        return "password must have at least {} characters".format(minimum)
    return None


def new_password(ask=getpass.getpass, interactive=None, err=None, minimum=MINIMUM_LENGTH, attempts=ATTEMPTS,
                 alternative="--password-stdin"):
    """
    A new password typed twice: ``ask(prompt)`` reads one line (default
    :func:`getpass.getpass`), ``interactive()`` says whether there is a
    terminal (default: standard input is one), ``err`` takes the retry
    lines. PromptFailed when there is no terminal, the input ends, Ctrl-C
    is pressed or ``attempts`` tries failed.
    """
    interactive = sys.stdin.isatty if interactive is None else interactive
    err = sys.stderr if err is None else err
    if not interactive():
        raise PromptFailed("no terminal to ask for the password: pass {} and give it on standard input".format(
            alternative))
    for attempt in range(1, attempts + 1):
        try:
            password = ask("Password: ")
            problem = _checked(password, minimum)
            if problem is None and ask("Password (again): ") != password:
                problem = "passwords do not match"
        except EOFError:
            err.write("\n")  # ends the prompt's line, so the reason stands on its own
            raise PromptFailed("input ended before a password was given") from None
        except KeyboardInterrupt:
            err.write("\n")
            raise PromptFailed("interrupted", exits.INTERRUPTED) from None
        if problem is None:
            return password
        err.write("{}{}\n".format(problem, "; try again" if attempt < attempts else ""))
    raise PromptFailed("no acceptable password after {} attempts".format(attempts))


def password_from(stream, minimum=MINIMUM_LENGTH):
    """The password on the first line of ``stream`` (``--password-stdin``); PromptFailed when empty or short."""
    line = stream.readline()
    if not line:
        raise PromptFailed("no password on standard input")
    password = line.rstrip("\n")
    problem = _checked(password, minimum)
    if problem is not None:
        raise PromptFailed(problem)
    return password
