"""
The one way the hub reads a setting. Settings are environment variables; the
node config hands them to components and web resources through ``extra``
with ``${VAR}`` / ``${VAR:-default}`` substitution. Every setting is
declared once as a :class:`Setting` (name, kind, doc, default, bounds, roles,
secret) in its folder's ``<folder>_settings.py``; ``Settings.get(DECLARATION)``
looks its name up in the substituted ``extra`` first, then in the
environment, then falls back to the declared default, and turns the text
into the declared kind (int, float, bool, duration, URL, database URL, file,
list, choice), naming the setting in the error when it is malformed.
Components, resources and command lines all read through it; each value is
read once and remembered.
"""

import os
import re
import sys
from urllib.parse import urlparse

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class KeyConfigError(SettingsError):
    """Configured key material (JWT keys, the key-encryption key) cannot be used."""


# the kinds of value a setting holds (how its text is read)
TEXT, INT, FLOAT, BOOL, DURATION, URL, DATABASE_URL, FILE, FILES, LIST, CHOICE = (
    "text", "int", "float", "bool", "duration", "url", "database url", "file", "files", "list", "choice")
KINDS = (TEXT, INT, FLOAT, BOOL, DURATION, URL, DATABASE_URL, FILE, FILES, LIST, CHOICE)
_NUMBERS = (INT, FLOAT, DURATION)
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")

# where a setting is read: the nodes and the other processes
DEV, MASTER, CLIENT, CLI, DJANGO, DEVICE = "dev", "master", "client", "cli", "django", "device"
ROLES = (DEV, MASTER, CLIENT, CLI, DJANGO, DEVICE)
NODES = (DEV, MASTER, CLIENT)


class Setting:
    """
    The one declaration of a setting: its name, kind, default, bounds, the
    roles that read it, whether it is secret, and one line of doc. Features
    declare their settings once, in their folder's ``<folder>_settings.py``,
    and read them with ``Settings.get(DECLARATION)``; no read site restates a
    default or a bound. ``default`` may be a function of the :class:`Settings`
    (a path in the node directory), then ``shown`` says it in the docs;
    ``parse`` turns valid text into the value (raising ``ValueError`` for
    invalid text); ``choices`` bounds a ``choice``; ``min_length`` bounds text.
    """

    def __init__(self, name, kind, doc, default=None, minimum=None, maximum=None, roles=NODES, secret=False,
                 schemes=("http", "https"), choices=(), min_length=None, parse=None, shown=None):
        if kind not in KINDS:
            raise ValueError("setting {}: unknown kind {!r}".format(name, kind))
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError("setting {}: unknown roles {}".format(name, sorted(unknown)))
        self.name, self.kind, self.doc = name, kind, doc
        self.default = _EMPTY_DEFAULTS.get(kind, "") if default is None else default
        self.minimum, self.maximum, self.min_length = minimum, maximum, min_length
        self.roles, self.secret, self.schemes, self.choices = tuple(roles), secret, tuple(schemes), tuple(choices)
        self.parser, self.shown = parse, shown

    def __repr__(self):
        return "Setting({!r})".format(self.name)

    def default_for(self, settings):
        """The default value: ``default``, or its result when it is a function of ``settings``."""
        return self.default(settings) if callable(self.default) else self.default

    def read(self, raw, settings):
        """The value of ``raw`` (the configured text, '' when unset) for ``settings``; SettingsError names the setting."""
        raw = "" if raw is None else str(raw)
        if raw.strip() == "":
            value = self.default_for(settings)
            if not (self.parser is not None and isinstance(value, str) and value):
                return value  # a text default is read as the text it stands for (``WAMP_PENDING_EXEMPT``)
        else:
            value = _READERS[self.kind](self, raw)
        if self.parser is not None:
            try:
                value = self.parser(value)
            except ValueError as error:
                raise SettingsError("setting {!r}: {}".format(self.name, _without_name(str(error), self.name)))
        return value

    def error(self, problem, raw):
        """A SettingsError naming this setting, the problem and the value (never a secret's value)."""
        shown = "<secret, {} characters>".format(len(raw)) if self.secret else repr(raw)
        return SettingsError("setting {!r} must be {}, got {}".format(self.name, problem, shown))


def _without_name(message, name):
    for prefix in ("setting {!r} ".format(name), "setting {!r}: ".format(name), name + " "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _read_text(setting, raw):
    if setting.min_length is not None and len(raw.encode("utf-8")) < setting.min_length:
        raise setting.error("at least {} bytes".format(setting.min_length), raw)
    return raw


def _read_number(setting, raw):
    kind = {INT: int, FLOAT: float}.get(setting.kind)
    if kind is None:
        match = _DURATION.match(raw)
        if match is None:
            raise setting.error("a duration such as 30, 30s, 5m or 500ms", raw)
        value = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise setting.error("a whole number" if kind is int else "a number", raw)
    if setting.minimum is not None and value < setting.minimum:
        raise setting.error(">= {}".format(setting.minimum), raw)
    if setting.maximum is not None and value > setting.maximum:
        raise setting.error("<= {}".format(setting.maximum), raw)
    return value


def _read_bool(setting, raw):
    word = raw.strip().lower()
    if word in _ON:
        return True
    if word in _OFF:
        return False
    raise setting.error("on or off", raw)


def without_password(url):
    """``url`` as a message may show it: a password in its user part is ``***``."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return parsed._replace(netloc="{}:***@{}".format(parsed.username or "", parsed.netloc.rpartition("@")[2])).geturl()


def _read_url(setting, raw, schemes=None):
    schemes = schemes or setting.schemes
    parsed = urlparse(raw.strip())
    if parsed.scheme not in schemes or not (parsed.netloc or parsed.scheme == "sqlite"):
        raise setting.error("a {} URL{}".format(" or ".join(schemes), "" if "sqlite" in schemes else " with a host"),
                            without_password(raw))
    return raw.strip()


def _read_database_url(setting, raw):
    url = raw.strip()
    scheme = urlparse(url).scheme
    if scheme not in _DATABASE_SCHEMES or (scheme == "sqlite" and len(url) <= len("sqlite:///")):
        raise SettingsError("setting {!r} must be sqlite:///path/to/file.db or postgresql://user:password@host/name, "
                            "got {}".format(setting.name, "a {}: URL".format(scheme) if scheme else "no URL"))
    return url


def _read_file(setting, raw):
    path = raw.strip()
    if not os.path.isfile(path):
        raise setting.error("the path of a readable file (none at that path)", raw)
    return path


def _read_files(setting, raw):
    return tuple(_read_file(setting, item) for item in _read_list(setting, raw))


def _read_list(setting, raw):
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _read_choice(setting, raw):
    word = raw.strip().lower()
    if word not in setting.choices:
        raise setting.error("one of {}".format(", ".join(setting.choices)), raw)
    return word


_READERS = {TEXT: _read_text, INT: _read_number, FLOAT: _read_number, DURATION: _read_number, BOOL: _read_bool,
            URL: _read_url, DATABASE_URL: _read_database_url, FILE: _read_file, FILES: _read_files,
            LIST: _read_list, CHOICE: _read_choice}
_EMPTY_DEFAULTS = {FILES: (), LIST: ()}


def key_setting(settings, setting):
    """``settings.get(setting)`` for key material: a malformed value is a KeyConfigError (naming the setting)."""
    try:
        return settings.get(setting)
    except KeyConfigError:
        raise
    except SettingsError as error:
        raise KeyConfigError(str(error))


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

    @classmethod
    def of_process(cls, argv=None, environ=None):
        """This process's settings (a worker's patches): no ``extra``, its environment, the node directory its
        command line names (:func:`node_dir`)."""
        environ = os.environ if environ is None else environ
        return cls(environ=environ, node_directory=node_dir(argv, environ))

    def raw(self, name):
        """The value of ``name`` as configured ('' when unset): extra, else the environment."""
        if name not in self._read:
            value = self.extra.get(name)
            if value is None or value == "":
                value = self.environ.get(name, "")
            self._read[name] = value
        return self._read[name]

    def get(self, setting):
        """The value of the declared ``setting`` (a :class:`Setting`): configured, else its default."""
        return setting.read(self.raw(setting.name), self)
