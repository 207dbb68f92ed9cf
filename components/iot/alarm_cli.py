"""
Alarm rules from the command line (``reactive-hub alarm``):

    reactive-hub alarm add SOURCE --above X [--hysteresis H] [--json]
    reactive-hub alarm add SOURCE --below X [--hysteresis H] [--json]
    reactive-hub alarm add SOURCE --silent-for S [--json]
    reactive-hub alarm list [--json]
    reactive-hub alarm remove RULE [--json]

SOURCE is an IoT source's topic (``iot.serial.reader``, ``iot.odata.value``,
``iot.device.<name>``) or a device name alone. ``above X`` is raised by a
reading above X and cleared at or below X - H; ``below X`` raised below X,
cleared at or above X + H; ``silent-for S`` raised when the source sent no
reading for S seconds, cleared by the next one. Running nodes read the rules
every ``ALARM_RELOAD_INTERVAL`` (2 s). Works on the client database
(``DATABASE_URL``, else ``<node dir>/client.db``; the node directory is
``--cbdir``, else ``CROSSBAR_DIR``, else ``./.crossbar``).

Exit codes: 0 done, 1 refused (a bad source or number), 2 usage, 3 no such
rule, 4 unavailable (the database cannot be used). Errors go to stderr as
``error: <message>``, with ``--json`` as ``{"error": <URI>, "message": <text>}``.
"""

import argparse
import json
import os
import sys
import time

from components.core import errors
from components.core.settings import Settings, SettingsError
from components.iot import DEVICE_PREFIX
from components.iot.device_registry import NAME

PROG = "reactive-hub alarm"
EXIT_REFUSED = 1
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
_EXITS = {errors.INVALID_ARGUMENT: EXIT_REFUSED, errors.NOT_FOUND: EXIT_NOT_FOUND}
_COLUMNS = ("id", "source", "condition", "created")


def source_of(text):
    """A device name alone names its topic; anything else is taken as a topic."""
    return DEVICE_PREFIX + text if NAME.fullmatch(text) else text


def shown(rule):
    """A rule for people and scripts: the creation time as ISO 8601 UTC."""
    from components.iot.cli import iso
    return {"id": rule["id"], "source": rule["source"], "kind": rule["kind"], "threshold": rule["threshold"],
            "hysteresis": rule["hysteresis"], "condition": rule["condition"],
            "created": iso(rule["created_ms"])}


def table(rules):
    from components.iot.cli import text_table
    return text_table(_COLUMNS, [shown(rule) for rule in rules])


def parser(prog=PROG):
    node = argparse.ArgumentParser(add_help=False)
    node.add_argument("--cbdir", default=argparse.SUPPRESS,
                      help="node directory (default CROSSBAR_DIR or ./.crossbar)")
    node.add_argument("--json", action="store_true", help="print JSON for scripts")
    top = argparse.ArgumentParser(prog=prog, description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a rule to a source", parents=[node])
    add.add_argument("source", help="iot.serial.reader, iot.odata.value, iot.device.<name> or a device name")
    kind = add.add_mutually_exclusive_group(required=True)
    kind.add_argument("--above", type=float, metavar="X", help="raised by a reading above X")
    kind.add_argument("--below", type=float, metavar="X", help="raised by a reading below X")
    kind.add_argument("--silent-for", type=float, metavar="S",
                      help="raised after S seconds without a reading")
    add.add_argument("--hysteresis", type=float, default=0.0, metavar="H",
                     help="clear only at X - H (above) or X + H (below); default 0")
    commands.add_parser("list", help="every rule", parents=[node])
    remove = commands.add_parser("remove", help="remove a rule (its raised alarm is cleared)", parents=[node])
    remove.add_argument("rule", type=int, help="the rule's id (see list)")
    return top


def _said(rule, verb, as_json):
    if as_json:
        return json.dumps(shown(rule)) + "\n"
    return "alarm rule {} {}: {} {}\n".format(rule["id"], verb, rule["source"], rule["condition"])


def run(options, store, out):
    """Carry out ``options`` on ``store`` (an AlarmStore); fire when the answer is written to ``out``."""
    if options.command == "add":
        kinds = (("above", options.above), ("below", options.below), ("silent", options.silent_for))
        kind, threshold = next((name, value) for name, value in kinds if value is not None)
        d = store.add(source_of(options.source), kind, threshold, options.hysteresis, int(time.time() * 1000))
        return d.addCallback(lambda rule: out.write(_said(rule, "added", options.json)))
    if options.command == "remove":
        d = store.remove(options.rule)
        return d.addCallback(lambda rule: out.write(_said(rule, "removed", options.json)))
    return store.rules().addCallback(lambda rules: out.write(
        json.dumps([shown(rule) for rule in rules], indent=2) + "\n" if options.json else table(rules)))


def main(argv=None, out=sys.stdout, err=sys.stderr, environ=None, prog=PROG):
    """The command line; returns the exit code."""
    from components.db import db_settings
    from components.db.database import Database, StorageConfigError
    from components.e2e.sealed_registry_command import refusal_writer, run_database_command
    from components.iot.alarm_rules import AlarmStore

    options = parser(prog).parse_args(sys.argv[1:] if argv is None else list(argv))
    cbdir = getattr(options, "cbdir", None)
    settings = Settings(environ=os.environ if environ is None else environ,
                        node_directory=os.path.abspath(cbdir) if cbdir else None)
    try:
        db = Database(settings.get(db_settings.DATABASE_URL))
    except (StorageConfigError, SettingsError) as error:
        return refusal_writer(options.json, err)(errors.UNAVAILABLE, str(error), EXIT_UNAVAILABLE)
    return run_database_command(db, options.json, err, lambda: run(options, AlarmStore(db), out), _EXITS,
                                EXIT_UNAVAILABLE)
