"""
``reactive-hub COMMAND [options]``: one command line for the hub. Each
command hands its arguments to the function its ``python -m`` form runs
(those forms stay, as aliases), so both parse and behave the same.
"""

import argparse
import collections
import importlib
import sys

from components.cli import devnode
from components.core import exits

PROG = "reactive-hub"

Command = collections.namedtuple("Command", "name summary module prefix")
"""A subcommand: ``module.main(prefix + argv, prog=...)`` runs it (``module`` None: :mod:`devnode`)."""

COMMANDS = (
    Command("start", "migrate the databases, then run the dev node (what `make start` runs)", None, ()),
    Command("check", "validate the settings and the node config; name every problem", None, ()),
    Command("migrate", "create or upgrade every schema of the master and client databases", "components.node.cli",
            ("migrate",)),
    Command("token", "print a signed JWT for a subject and role", "components.auth.cli", ("token",)),
    Command("user", "add a user to the master's user table, set a password", "components.auth.cli", ()),
    Command("keys", "create a production deployment's key material in a directory", "components.auth.keygen", ()),
    Command("device", "registered devices: add, list, rotate, revoke; simulate one", "components.iot.cli",
            ("device",)),
    Command("alarm", "IoT alarm rules: add (above, below, silent for), list, remove",
            "components.iot.alarm_cli", ()),
    Command("app", "registered applications: add, list, rotate, revoke", "components.applications.cli",
            ("app",)),
    Command("demo", "run the dev node's demo sources (Arduino, OData service, device)",
            "components.iot.demo.cli", ()),
    Command("e2e", "rotate end-to-end data keys, open an envelope", "components.auth.e2e_command", ()),
    Command("sync", "user sync: provision AWS, install the capture triggers, resync, run the emulator",
            "components.usersync.cli", ()),
    Command("topology", "write or print the production node configs", "components.node.topology", ()),
)
_LOCAL = {"start": devnode.start, "check": devnode.check}

EPILOG = """\
Run `COMMAND --help` for a command's options. `make start` (or `make install`)
installs the hub into .venv; then run `.venv/bin/reactive-hub ...`, or
`. .venv/bin/activate` once and `reactive-hub ...`.

Exit codes: 0 done, 1 failed, 2 wrong usage, 78 a setting or the installation
cannot be used, 130 interrupted (Ctrl-C); `device`, `app` and `alarm` add 3 (no such
device, application or rule) and 4 (unavailable).
"""


def parser():
    """The top-level parser: used for ``--help`` and the list of commands."""
    top = argparse.ArgumentParser(prog=PROG, description="The reactive hub's command line.", epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        commands.add_parser(command.name, help=command.summary, add_help=False)
    return top


def find(name):
    """The :class:`Command` called ``name``, or None."""
    return next((command for command in COMMANDS if command.name == name), None)


def entry_point(command):
    """``run(argv)`` of ``command``: its module's ``main`` with the command's prefix and program name."""
    prog = PROG if command.prefix else "{} {}".format(PROG, command.name)
    if command.module is None:
        return lambda argv: _LOCAL[command.name](argv, prog)

    def run(argv):
        return importlib.import_module(command.module).main(list(command.prefix) + list(argv), prog=prog)
    return run


def main(argv=None, out=None, err=None):
    """The console script ``reactive-hub``: returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if argv[:1] == ["help"]:
        argv = argv[1:2] + ["--help"] if argv[1:] else ["--help"]
    if not argv or argv[0] in ("-h", "--help"):
        (out if argv else err).write(parser().format_help())
        return exits.OK if argv else exits.USAGE
    command = find(argv[0])
    if command is None:
        err.write(parser().format_usage())
        err.write("{}: error: unknown command {!r} (see {} --help)\n".format(PROG, argv[0], PROG))
        return exits.USAGE
    return exits.outcome(entry_point(command), argv[1:], err=err)
