"""
The application registry from the command line (``reactive-hub app``;
``python -m components.applications app`` is the same):

    reactive-hub app add NAME [--private] [--json]   # the key and secret, shown once
    reactive-hub app list [--json]
    reactive-hub app rotate NAME [--json]            # a new key and secret; the old key is refused
    reactive-hub app revoke NAME

An application publishes on its own topics ``app.<name>.*`` with
``POST /apps/publish`` (HTTP Basic ``key:secret``, see docs/apps.md). A
``--private`` application's events reach users only through ``to_users``.
``--json`` prints ``{"name", "key", "secret"}``; ``list --json`` a list of
``{"name", "private", "key", "state", "created", "rotated", "revoked"}``.

Works on the client database (``DATABASE_URL``, else ``<node dir>/client.db``)
with the hub's key-encryption key (``E2E_KEK`` / ``E2E_KEK_FILE``, else the
node's dev file); the node directory is ``--cbdir``, else ``CROSSBAR_DIR``,
else ``./.crossbar``. Exit codes: 0 done, 1 refused (a bad or taken name, a
revoked application), 2 usage, 3 no such application, 4 unavailable
(database down, KEK unusable), 78 the KEK not set on a production node.
"""

import argparse
import datetime
import json
import os
import sys

from components.core import errors
from components.core.settings import Settings

PROG = "python -m components.applications"
EXIT_REFUSED = 1
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
_EXITS = {errors.INVALID_ARGUMENT: EXIT_REFUSED, errors.NOT_FOUND: EXIT_NOT_FOUND}
_COLUMNS = ("name", "private", "state", "created", "key")


def _utc(ms):
    if ms is None:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def shown(item):
    """A listed application for people and scripts: times as ISO 8601 UTC."""
    return {"name": item["name"], "private": item["private"], "key": item["key"], "state": item["state"],
            "created": _utc(item["created_ms"]), "rotated": _utc(item["rotated_ms"]),
            "revoked": _utc(item["revoked_ms"])}


def parser(prog=PROG):
    node = argparse.ArgumentParser(add_help=False)
    node.add_argument("--cbdir", default=argparse.SUPPRESS,
                      help="node directory (default CROSSBAR_DIR or ./.crossbar)")
    top = argparse.ArgumentParser(prog=prog, description=__doc__, parents=[node],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = top.add_subparsers(dest="group", required=True)
    app = groups.add_parser("app", help="registered applications: add, list, rotate, revoke",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = app.add_subparsers(dest="command", required=True)
    for name, text in (("add", "register an application; print its key and secret once"),
                       ("list", "every application (revoked ones too)"),
                       ("rotate", "new key and secret for an application; the old key is refused"),
                       ("revoke", "refuse an application from now on (it stays listed)")):
        command = commands.add_parser(name, help=text, description=text, parents=[node])
        if name != "list":
            command.add_argument("name")
        if name == "add":
            command.add_argument("--private", action="store_true",
                                 help="its events reach users only through to_users (users cannot subscribe)")
        if name != "revoke":
            command.add_argument("--json", action="store_true", help="print JSON for scripts")
    return top


def run(options, registry, out):
    """Carry out ``options`` on ``registry``; fire when the answer is written to ``out``."""
    as_json = getattr(options, "json", False)
    if options.command in ("add", "rotate"):
        if options.command == "add":
            d = registry.add(options.name, private=options.private)
        else:
            d = registry.rotate(options.name)

        def done(credentials):
            key, secret = credentials
            verb = "added" if options.command == "add" else "rotated"
            if as_json:
                out.write(json.dumps({"name": options.name, "key": key, "secret": secret}) + "\n")
            else:
                out.write("application {} {}; keep the secret, it is not shown again\nAPP_KEY={}\n"
                          "APP_SECRET={}\n".format(options.name, verb, key, secret))
        return d.addCallback(done)
    if options.command == "revoke":
        d = registry.revoke(options.name)
        return d.addCallback(lambda changed: out.write("application {} {}\n".format(
            options.name, "revoked" if changed else "was already revoked")))

    def listed(apps):
        if as_json:
            out.write(json.dumps([shown(item) for item in apps], indent=2) + "\n")
            return
        rows = [_COLUMNS] + [tuple("-" if shown(item)[column] is None else str(shown(item)[column])
                                   for column in _COLUMNS) for item in apps]
        widths = [max(len(row[index]) for row in rows) for index in range(len(_COLUMNS))]
        for row in rows:
            out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")
    return registry.list().addCallback(listed)


def main(argv=None, out=sys.stdout, err=sys.stderr, environ=None, prog=PROG):
    """The command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    options = parser(prog).parse_args(argv)

    from components.applications.app_registry import AppRegistry
    from components.e2e.sealed_registry_command import run_sealed_registry_command

    environ = os.environ if environ is None else environ
    cbdir = getattr(options, "cbdir", None)
    settings = Settings(environ=environ, node_directory=os.path.abspath(cbdir) if cbdir else None)
    return run_sealed_registry_command(settings, getattr(options, "json", False), err, AppRegistry,
                                       lambda registry: run(options, registry, out), _EXITS, EXIT_UNAVAILABLE)
