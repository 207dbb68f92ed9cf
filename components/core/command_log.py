"""
The log of a command run by a person (``reactive-hub migrate``, ``sync
migrate``...): what it did (our info lines) on ``out``, warnings and errors on
``err``; Twisted's own info lines (``Main loop terminated.``, HTTP factories
starting and stopping) are not shown.
"""

import sys

from twisted.logger import LogLevel, globalLogBeginner, textFileLogObserver


def command_observer(out, err):
    """An observer writing ``out`` info lines and ``err`` warnings and above, without Twisted's info lines."""
    to_out, to_err = textFileLogObserver(out), textFileLogObserver(err)

    def observe(event):
        level = event.get("log_level", LogLevel.info)
        if level >= LogLevel.warn:
            to_err(event)
        elif not event.get("log_namespace", "").startswith("twisted."):
            to_out(event)
    return observe


def begin_command_log(out=None, err=None):
    """Send the global log to :func:`command_observer` of ``out`` (stdout) and ``err`` (stderr)."""
    observer = command_observer(sys.stdout if out is None else out, sys.stderr if err is None else err)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
