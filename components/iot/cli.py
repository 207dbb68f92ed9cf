"""
The device registry from the command line (``reactive-hub device``;
``python -m components.iot device`` is the same):

    reactive-hub device add NAME [--out [FILE]] [--json]   # the key and secret, shown once
    reactive-hub device list [--json]
    reactive-hub device revoke NAME
    reactive-hub device rotate NAME [--out [FILE]] [--json]  # a new key and secret; the old key is refused
    reactive-hub device simulate --value 42 [--device NAME]  # post as the device would (the simulator)

``--out`` writes the credentials to a file readable by you only (mode 0600),
by default ``<node dir>/secrets/devices/NAME.env`` (git-ignored), and prints
where; the simulator finds them there. Prefer it to redirecting the output
(``> NAME.env`` leaves the secret wherever the shell was, world-readable
under the usual umask). ``--json`` prints ``{"name", "key", "secret"}``
(with ``--out``: ``{"name", "key", "file"}``), ``list --json`` a list of
``{"name", "key", "state", "created", "rotated", "revoked", "last_seen",
"readings"}``.

Works on the client database (``DATABASE_URL``, else ``<node dir>/client.db``)
with the key-encryption key of the hub (``E2E_KEK`` / ``E2E_KEK_FILE``, else
the node's dev file ``<node dir>/secrets/e2e_kek``); the node directory is
``--cbdir``, else ``CROSSBAR_DIR``, else ``./.crossbar``.

Exit codes: 0 done, 1 refused (a bad, reserved or taken name, a revoked
device) or the ``--out`` file not written (the credentials are printed
instead), 2 usage, 3 no such device, 4 unavailable (database down, KEK
unusable), 78 the KEK not set on a production node (``HUB_ENV=production``, or
a node directory with a production config and no ``config.json``): a command
never makes a development key there. Errors go to stderr as ``error: <message>``, with ``--json`` as
``{"error": <URI>, "message": <text>}``.
"""

import argparse
import datetime
import json
import os
import sys

from components.core import errors
from components.core.secretfiles import write_private
from components.core.settings import Settings
from components.iot import credentials_file

PROG = "python -m components.iot"

EXIT_REFUSED = 1
EXIT_FAILED = 1  # done, but the --out file could not be written (the credentials were printed instead)
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
_EXITS = {errors.INVALID_ARGUMENT: EXIT_REFUSED, errors.NOT_FOUND: EXIT_NOT_FOUND}
_LIST_COLUMNS = ("name", "state", "created", "last_seen", "readings", "key")


def iso(ms):
    """Epoch milliseconds as ``2026-12-01T12:00:00Z`` (None stays None)."""
    if ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def shown(item):
    """A listed device for people and scripts: times as ISO 8601 UTC."""
    return {"name": item["name"], "key": item["key"], "state": item["state"], "created": iso(item["created_ms"]),
            "rotated": iso(item["rotated_ms"]), "revoked": iso(item["revoked_ms"]),
            "last_seen": iso(item["last_seen_ms"]), "readings": item["readings"]}


def text_table(columns, items):
    """``items`` (dicts) as aligned text columns under a header line (None shown as ``-``)."""
    rows = [tuple(columns)] + [tuple("-" if item[column] is None else str(item[column]) for column in columns)
                               for item in items]
    widths = [max(len(row[index]) for row in rows) for index in range(len(columns))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n"
                   for row in rows)


def table(devices):
    return text_table(_LIST_COLUMNS, [shown(item) for item in devices])


def parser(prog=PROG):
    node = argparse.ArgumentParser(add_help=False)
    node.add_argument("--cbdir", default=argparse.SUPPRESS,
                      help="node directory (default CROSSBAR_DIR or ./.crossbar)")
    top = argparse.ArgumentParser(prog=prog, description=__doc__, parents=[node],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = top.add_subparsers(dest="group", required=True)
    device = groups.add_parser("device", help="registered devices: add, list, revoke, rotate; simulate one",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = device.add_subparsers(dest="command", required=True)
    for name, text in (("add", "register a device; print its key and secret once (or write them: --out)"),
                       ("list", "every device (revoked ones too)"),
                       ("revoke", "refuse a device from now on (it stays listed)"),
                       ("rotate", "new key and secret for a device; the old key is refused"),
                       ("simulate", "post signed readings as the device would (see simulate --help)")):
        if name == "simulate":
            commands.add_parser(name, help=text, add_help=False)  # its own parser: components.iot.device_simulator
            continue
        command = commands.add_parser(name, help=text, description=text, parents=[node])
        if name != "list":
            command.add_argument("name")
        if name in ("add", "rotate"):
            command.add_argument("--out", nargs="?", const="", default=None, metavar="FILE",
                                 help="write the credentials to FILE (mode 0600) instead of printing them; "
                                      "FILE defaults to <node dir>/secrets/devices/NAME.env")
        if name != "revoke":
            command.add_argument("--json", action="store_true", help="print JSON for scripts")
    return top


class NotSaved(Exception):
    """The ``--out`` file could not be written; the credentials were printed instead, so they are not lost."""


def saved(options, node_directory, text, out):
    """
    Write ``text`` (the credentials of ``options.name``) to the ``--out``
    file (mode 0600) and return its path; when that fails, print ``text``
    to ``out`` and raise NotSaved.
    """
    path = options.out or credentials_file.default_path(node_directory, options.name)
    try:
        return write_private(path, text)
    except OSError as error:
        out.write(text)
        raise NotSaved("could not write {} ({}): the credentials are printed above instead".format(
            path, error.strerror or error))


def run(options, registry, out, node_directory="."):
    """Carry out ``options`` on ``registry``; fire when the answer is written to ``out``."""
    as_json = getattr(options, "json", False)
    if options.command in ("add", "rotate"):
        d = getattr(registry, options.command)(options.name)

        def done(credentials):
            key, secret = credentials
            verb = "added" if options.command == "add" else "rotated"
            text = credentials_file.env_text(verb, options.name, key, secret)
            if options.out is not None:
                path = saved(options, node_directory, text, out)
                if as_json:
                    out.write(json.dumps({"name": options.name, "key": key, "file": path}) + "\n")
                else:
                    out.write("device {} {}; its key and secret are in {} (mode 0600)\n"
                              "load them in a shell with: set -a; . {}; set +a\n".format(
                                  options.name, verb, path, path))
            elif as_json:
                out.write(json.dumps({"name": options.name, "key": key, "secret": secret}) + "\n")
            else:
                out.write(text)
        return d.addCallback(done)
    if options.command == "revoke":
        d = registry.revoke(options.name)
        return d.addCallback(lambda changed: out.write("device {} {}\n".format(
            options.name, "revoked" if changed else "was already revoked")))

    def listed(devices):
        if as_json:
            out.write(json.dumps([shown(item) for item in devices], indent=2) + "\n")
        else:
            out.write(table(devices))
    return registry.list().addCallback(listed)


def main(argv=None, out=sys.stdout, err=sys.stderr, environ=None, prog=PROG):
    """The command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["device", "simulate"]:
        from components.iot import device_simulator
        return device_simulator.main(argv[2:], out=out, prog="{} device simulate".format(prog))

    options = parser(prog).parse_args(argv)

    from components.e2e.sealed_registry_command import run_sealed_registry_command
    from components.iot.device_registry import DeviceRegistry

    environ = os.environ if environ is None else environ
    cbdir = getattr(options, "cbdir", None)
    settings = Settings(environ=environ, node_directory=os.path.abspath(cbdir) if cbdir else None)
    return run_sealed_registry_command(settings, getattr(options, "json", False), err, DeviceRegistry,
                                       lambda registry: run(options, registry, out, settings.node_directory),
                                       _EXITS, EXIT_UNAVAILABLE, failures=[(NotSaved, EXIT_FAILED)])
