"""
The one way the hub reads a setting. Settings are environment variables; the
node config hands them to components and web resources through ``extra``
with ``${VAR}`` / ``${VAR:-default}`` substitution. :class:`Settings` looks a
name up in the substituted ``extra`` first, then in the environment, then
falls back to the caller's default, and turns the text into the type asked
for (int, float, bool, duration, URL, database URL), naming the setting in
the error when it is malformed. Components, resources and command lines all
read through it; each value is read once and remembered.
"""

import os
import re
import sys
from urllib.parse import urlparse

from components.core.clientaddress import parse_header, parse_networks

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class KeyConfigError(SettingsError):
    """Configured key material (JWT keys, the key-encryption key) cannot be used."""


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


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_DATABASE_VARIABLES = {"client": "DATABASE_URL", "master": "MASTER_DATABASE_URL"}
_ON = ("on", "true", "yes", "1")
_OFF = ("off", "false", "no", "0")


class Settings:
    """
    A component's (or command's) settings: ``extra`` after substitution,
    then ``environ``, then the default. Empty values count as unset, so
    "off when unset" settings work through ``${VAR}``.
    """

    def __init__(self, extra=None, environ=None, node_directory=None):
        self.environ = os.environ if environ is None else environ
        self.extra = substitute(dict(extra or {}), self.environ)
        self.node_directory = node_directory or self.extra.get("node_dir") or node_dir(environ=self.environ)
        self._read = {}

    def raw(self, name):
        """The value of ``name`` as configured ('' when unset): extra, else the environment."""
        if name not in self._read:
            value = self.extra.get(name)
            if value is None or value == "":
                value = self.environ.get(name, "")
            self._read[name] = value
        return self._read[name]

    def text(self, name, default=""):
        """A string setting; ``default`` when unset."""
        value = self.raw(name)
        return default if value == "" else str(value)

    def int(self, name, default, minimum=None, maximum=None):
        """An integer setting within ``minimum``..``maximum``."""
        return self._number(int, name, default, minimum, maximum)

    def float(self, name, default, minimum=None, maximum=None):
        """A number setting within ``minimum``..``maximum``."""
        return self._number(float, name, default, minimum, maximum)

    def bool(self, name, default):
        """An on/off setting: on, true, yes, 1 / off, false, no, 0."""
        raw = str(self.raw(name)).strip().lower()
        if raw == "":
            return default
        if raw in _ON:
            return True
        if raw in _OFF:
            return False
        raise SettingsError("setting {!r} must be on or off, got {!r}".format(name, raw))

    def duration(self, name, default, minimum=None, maximum=None):
        """Seconds as a float: ``90``, ``1.5``, ``500ms``, ``30s``, ``5m``, ``2h``, ``7d``."""
        raw = self.raw(name)
        if raw == "":
            return default
        match = _DURATION.match(str(raw))
        if match is None:
            raise SettingsError("setting {!r} must be a duration such as 30, 30s, 5m or 500ms, got {!r}".format(
                name, raw))
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        return _bounded(name, seconds, minimum, maximum)

    def url(self, name, default="", schemes=("http", "https")):
        """An absolute URL with one of ``schemes`` and a host; ``default`` when unset."""
        raw = self.text(name)
        if raw == "":
            return default
        parsed = urlparse(raw)
        if parsed.scheme not in schemes or not parsed.netloc:
            raise SettingsError("setting {!r} must be a {} URL with a host, got {!r}".format(
                name, " or ".join(schemes), raw))
        return raw

    def trusted_proxies(self):
        """
        ``TRUSTED_PROXIES``: the proxies (addresses or CIDRs) whose
        ``FORWARDED_HEADER`` names the client address
        (:mod:`components.core.clientaddress`); none by default (headers ignored).
        """
        try:
            return parse_networks(self.text("TRUSTED_PROXIES"), "TRUSTED_PROXIES")
        except ValueError as error:
            raise SettingsError(str(error))

    def forwarded_header(self):
        """
        ``FORWARDED_HEADER``: the one header the ``TRUSTED_PROXIES`` write,
        ``x-forwarded-for`` (default) or ``forwarded``; the other is never read.
        """
        try:
            return parse_header(self.text("FORWARDED_HEADER"), "FORWARDED_HEADER")
        except ValueError as error:
            raise SettingsError(str(error))

    def database_url(self, kind):
        """
        The ``client`` (``DATABASE_URL``) or ``master`` (``MASTER_DATABASE_URL``)
        database, by default a SQLite file named after it in the node directory.
        """
        url = self.text(_DATABASE_VARIABLES[kind])
        return url or "sqlite:///" + os.path.join(self.node_directory, kind + ".db")

    def _number(self, kind, name, default, minimum, maximum):
        raw = self.raw(name)
        if raw is None or raw == "":
            return default
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise SettingsError("setting {!r} must be a number, got {!r}".format(name, raw))
        return _bounded(name, value, minimum, maximum)


def _bounded(name, value, minimum, maximum):
    if minimum is not None and value < minimum:
        raise SettingsError("setting {!r} must be >= {}, got {}".format(name, minimum, value))
    if maximum is not None and value > maximum:
        raise SettingsError("setting {!r} must be <= {}, got {}".format(name, maximum, value))
    return value
