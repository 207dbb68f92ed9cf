"""
How a hub process refuses to start: one critical line that names what is
wrong and what to do, then the process exits with ``REFUSED`` (78,
``EX_CONFIG``) at once, so no traceback, no half-started worker and no
cleanup noise follow it. A Crossbar worker that refuses makes its node stop
(the node configs set ``shutdown_on_worker_exit``).

Two causes share it: a setting that cannot be used (a :class:`SettingsError`
while a component starts or a web resource is built: :func:`settings_line`)
and an installation that cannot run the hub safely (a security patch that
cannot apply, :mod:`components.node.boot`).
"""

import functools
import os
import sys

from twisted.logger import Logger

from components.core.settings import SettingsError

REFUSED = 78  # EX_CONFIG: a setting or the installation cannot be used
PREFIX = "reactive hub refuses to start:"
# what to do about a malformed or missing setting, unless its error says it
DEFAULT_FIX = "correct it (environment or the node config's extra) or unset it for its default, then start again"

_log = Logger(namespace="reactive_hub.refusal")


def one_line(text):
    """``text`` with its control characters (a newline, a terminal escape) written as escapes: it stays one line."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def settings_line(error, where=None):
    """The one line for ``error`` (a SettingsError) met in ``where`` (a component or resource name)."""
    message = str(error).rstrip(". ")
    fix = getattr(error, "fix", None) or DEFAULT_FIX
    place = " (in {})".format(where) if where else ""
    return one_line("{} {}{}: {}".format(PREFIX, message, place, fix))


def refuse(line, log=_log, exit=os._exit):
    """Log ``line`` as one critical line, flush the output streams and ``exit(REFUSED)``."""
    log.critical("{line}", line=line)
    for stream in (sys.stdout, sys.stderr, sys.__stderr__):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    exit(REFUSED)


def refusing(build, log=_log, exit=None):
    """
    ``build`` (a web resource factory, or a class's ``__init__``) that
    refuses the process with :func:`settings_line` when it raises a
    SettingsError, instead of handing Crossbar a traceback.
    """
    where = build.__qualname__.split(".<locals>.")[-1].replace(".__init__", "")

    @functools.wraps(build)
    def built(*args, **kwargs):
        try:
            return build(*args, **kwargs)
        except SettingsError as error:
            refuse(settings_line(error, where), log, exit or os._exit)
            raise
    return built
