"""
``reactive-hub check``: a node's whole environment against the declared
settings. It reads every declared setting the way the node will (the node
config's substituted ``extra`` values, then the environment, then the
default) and names every problem at once, one line each: the setting, the
value's problem and the fix. Names that look like ours but are declared
nowhere (a typo such as ``JWT_SECRT``) are problems too. Exit 78 (EX_CONFIG)
when there is any, 0 otherwise; secret values are never printed.
"""

import argparse
import difflib
import json
import os
import re
import sys

from components.core.settings import (
    BOOL, CHOICE, DATABASE_URL, DURATION, FILE, FILES, FLOAT, INT, URL, Settings, SettingsError)
from components.node import setting_catalog

EX_CONFIG = 78
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*\Z")
# beginnings no other program's variables share: an undeclared name with one of them is ours, misspelt
_OWN_PREFIXES = ("HUB_", "JWT_", "USERSYNC_", "DEVICE_", "ODATA_", "SERIAL_", "COUNTER_", "HISTORY_", "WAMP_",
                 "LOGIN_", "E2E_", "METRICS_", "MONITOR_", "REVOCATION_", "DEMO_", "CLOCK_", "RLINK_", "IOT_",
                 "SESSION_MAX_", "AUTH_USER_")


def expectation(setting):
    """What a valid value of ``setting`` looks like, for the fix hint."""
    span = setting_catalog.bounds(setting)
    kind = {INT: "a whole number", FLOAT: "a number", DURATION: "a duration (30, 30s, 5m, 500ms)",
            BOOL: "on or off", CHOICE: "one of " + ", ".join(setting.choices),
            URL: "a {} URL with a host".format("/".join(setting.schemes)),
            DATABASE_URL: "sqlite:///path/to/file.db or postgresql://user:password@host:5432/name",
            FILE: "the path of a readable file", FILES: "comma-separated paths of readable files"}.get(
                setting.kind, "text" if setting.min_length else "a valid value")
    return kind + (" ({})".format(span) if span and setting.kind != CHOICE else "")


def hint(setting):
    """The fix for a bad value of ``setting``."""
    return "fix: set {} to {}, or unset it for the default ({}); see docs/settings.md".format(
        setting.name, expectation(setting), setting_catalog.shown_default(setting))


def extras_of(config):
    """Every ``extra`` dict in a node config (components and web resources), in document order."""
    found = []

    def walk(item):
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "extra" and isinstance(value, dict):
                    found.append(value)
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)
    walk(config)
    return found


def references_of(config):
    """The ``${VAR}`` names a node config refers to."""
    return set(_REFERENCE.findall(json.dumps(config)))


def suggestion(name, declared):
    """`` (did you mean X?)`` for the closest declared name, or ''."""
    close = difflib.get_close_matches(name, declared, n=1, cutoff=0.8)
    return " (did you mean {}?)".format(close[0]) if close else ""


def looks_like_ours(name, declared):
    """True when ``name`` is no declared setting but has our prefix or is close to a declared name."""
    return name not in declared and (name.startswith(_OWN_PREFIXES) or bool(suggestion(name, declared)))


def problems(environ, config=None, node_directory=None):
    """Every problem of ``environ`` (+ the node ``config``'s extras) as ``[(setting name, line)]``, sorted."""
    declared = setting_catalog.by_name()
    extras = extras_of(config or {})
    views = [Settings({}, environ, node_directory)] + [Settings(extra, environ, node_directory) for extra in extras]
    found = {}
    for name, setting in declared.items():
        for view in views:
            try:
                view.get(setting)
            except SettingsError as error:
                found.setdefault((name, str(error)), "{}; {}".format(error, hint(setting)))
    for name in environ:
        if looks_like_ours(name, declared):
            found[(name, "environ")] = "{}: set in the environment but no setting of the hub{}".format(
                name, suggestion(name, declared))
    for extra in extras:
        for name in extra:
            if _SETTING_NAME.match(name) and name not in declared:
                found[(name, "extra")] = "{}: in the node config's extra but no setting of the hub{}".format(
                    name, suggestion(name, declared))
    for name in references_of(config or {}):
        if name not in declared:
            found[(name, "reference")] = "{}: the node config refers to ${{{}}}, no setting of the hub{}".format(
                name, name, suggestion(name, declared))
    return sorted(found.items())


def config_path(cbdir, config):
    """The node config ``--config`` names: as given when it exists or is absolute, else in ``cbdir`` (as Crossbar does)."""
    if os.path.isabs(config) or os.path.exists(config):
        return config
    return os.path.join(cbdir, config)


def main(argv=None, environ=None, out=None):
    """Check this process's environment and a node config; print one line per problem; 78 when any, else 0."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="reactive-hub check", description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--cbdir", default=environ.get("CROSSBAR_DIR") or ".crossbar",
                        help="the node directory (default: $CROSSBAR_DIR or .crossbar)")
    parser.add_argument("--config", default="config.json",
                        help="the node config whose extra values to check too, in the node directory unless a "
                        "path (config.json: the dev node, master.json, client.json)")
    args, _crossbar_arguments = parser.parse_known_args(argv)
    path = config_path(args.cbdir, args.config)
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        out.write("--config {}: cannot read the node config ({}); fix: name a node config such as "
                  ".crossbar/config.json\n".format(path, error))
        return EX_CONFIG
    found = problems(environ, config, os.path.dirname(os.path.abspath(path)))
    for _key, line in found:
        out.write(line + "\n")
    if found:
        out.write("{} problem(s) in the settings of {}\n".format(len(found), path))
        return EX_CONFIG
    out.write("settings ok: {} declared settings checked against {}\n".format(len(setting_catalog.by_name()), path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
