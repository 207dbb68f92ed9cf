"""
Running the hub's commands: :func:`outcome` turns a command's ways of
ending into its exit code (:mod:`components.core.exit_codes`, read here as
``exits.<CODE>`` too), :func:`react` runs a command's Twisted work.
"""

import sys

from components.core.exit_codes import CONFIG, FAILURE, INTERRUPTED, OK, USAGE  # noqa: F401 - exits.<CODE>
from components.core.settings import SettingsError


def setting_problem(error):
    """A setting that cannot be used, in one line: the error, then what to set when it says (its ``fix``)."""
    fix = getattr(error, "fix", None)
    return "{}: {}".format(str(error).rstrip(". "), fix) if fix else str(error)


def outcome(main, argv=None, err=None):
    """
    The exit code of ``main(argv)``, a command's entry point, with its ways
    of ending turned into codes and at most one line on ``err``: a returned
    code or None (0); ``SystemExit`` with a code, or with a message (the
    message, 1); Ctrl-C (``interrupted``, 130); a setting that cannot be used
    (its message, 78). Other exceptions are bugs and keep their traceback.
    """
    err = sys.stderr if err is None else err
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return INTERRUPTED
    except SettingsError as error:
        err.write("error: {}\n".format(setting_problem(error)))
        return CONFIG
    if code is None:
        return OK
    if isinstance(code, int):
        return code
    err.write("error: {}\n".format(code))
    return FAILURE


def react(work, err=None, refusals=None):
    """
    :func:`twisted.internet.task.react` of ``work(reactor)`` (a Deferred),
    ending with SystemExit as it does; but when the reactor stops before
    ``work`` is done (Ctrl-C, SIGTERM), with ``interrupted`` on ``err`` and
    :data:`INTERRUPTED`, where ``react`` alone would exit 0 as if all went
    well; and when ``work`` fails with a SettingsError (78) or an exception
    of a class in ``refusals`` (``{class: exit code}``), with its message as
    one ``error:`` line instead of a traceback.
    """
    from twisted.internet import task

    err = sys.stderr if err is None else err
    codes = dict(refusals or {})
    codes.setdefault(SettingsError, CONFIG)
    finished = []

    def refused(failure):
        kind = failure.check(*codes)
        if kind is None:
            return failure
        err.write("error: {}\n".format(failure.value))
        raise SystemExit(codes[kind])

    def tracked(reactor):
        return work(reactor).addErrback(refused).addBoth(lambda result: finished.append(True) or result)
    try:
        task.react(tracked)
    except SystemExit:
        if not finished:
            err.write("interrupted\n")
            raise SystemExit(INTERRUPTED)
        raise
