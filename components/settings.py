"""
Settings for components: environment variables, reached through a component's
``extra`` dict with ``${VAR}`` / ``${VAR:-default}`` substitution, and the node
directory for file-based defaults.
"""

import os
import re
import sys

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


def substitute(value, environ=None):
    """
    Replace ``${VAR}`` and ``${VAR:-default}`` in strings (recursively in
    lists and dicts) with values from ``environ``. An unset variable without a
    default becomes the empty string, so "off when unset" settings work.
    """
    environ = os.environ if environ is None else environ
    if isinstance(value, str):
        def replace(match):
            name, default = match.group(1), match.group(2)
            found = environ.get(name)
            if found is None or found == "":
                return default if default is not None else ""
            return found
        return _REFERENCE.sub(replace, value)
    if isinstance(value, dict):
        return {key: substitute(item, environ) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [substitute(item, environ) for item in value]
    return value


def node_dir(argv=None, environ=None):
    """
    The Crossbar node directory of this process: ``--cbdir`` on the worker's
    command line, else ``CROSSBAR_DIR``, else ``./.crossbar``.
    """
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    for index, arg in enumerate(argv):
        if arg == "--cbdir" and index + 1 < len(argv):
            return os.path.abspath(argv[index + 1])
        if arg.startswith("--cbdir="):
            return os.path.abspath(arg.split("=", 1)[1])
    if environ.get("CROSSBAR_DIR"):
        return os.path.abspath(environ["CROSSBAR_DIR"])
    return os.path.abspath(".crossbar")


def database_url(kind, environ=None, directory=None):
    """
    The URL of the ``client`` (``DATABASE_URL``) or ``master``
    (``MASTER_DATABASE_URL``) database, defaulting to a SQLite file in the
    node directory.
    """
    environ = os.environ if environ is None else environ
    variable = {"client": "DATABASE_URL", "master": "MASTER_DATABASE_URL"}[kind]
    url = environ.get(variable)
    if url:
        return url
    directory = directory or node_dir(environ=environ)
    return "sqlite:///" + os.path.join(directory, kind + ".db")


def as_int(extra, key, default, minimum=None, maximum=None):
    """Read an integer setting from ``extra``; empty means ``default``."""
    return _as_number(int, extra, key, default, minimum, maximum)


def as_float(extra, key, default, minimum=None, maximum=None):
    """Read a float setting from ``extra``; empty means ``default``."""
    return _as_number(float, extra, key, default, minimum, maximum)


def _as_number(kind, extra, key, default, minimum, maximum):
    raw = extra.get(key, "")
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SettingsError("setting {!r} must be a number, got {!r}".format(key, raw))
    if minimum is not None and value < minimum:
        raise SettingsError("setting {!r} must be >= {}, got {}".format(key, minimum, value))
    if maximum is not None and value > maximum:
        raise SettingsError("setting {!r} must be <= {}, got {}".format(key, maximum, value))
    return value


def as_bool(extra, key, default):
    """Read an on/off setting: on, true, yes, 1 / off, false, no, 0."""
    raw = str(extra.get(key, "") or "").strip().lower()
    if raw == "":
        return default
    if raw in ("on", "true", "yes", "1"):
        return True
    if raw in ("off", "false", "no", "0"):
        return False
    raise SettingsError("setting {!r} must be on or off, got {!r}".format(key, raw))
