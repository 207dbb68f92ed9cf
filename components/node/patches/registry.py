"""
The one list of the hub's changes to library internals (Crossbar, Twisted,
autobahn, txaio) and their installation in a Crossbar process.

Every change is one module named in ``MODULES``, with module-level:

- ``NAME``: a short id (what ``HUB_PATCHES_OFF`` and the log lines name);
- ``SECURITY``: True when the worker must refuse to start without it;
- ``WORKERS``: the process kinds it belongs in, among ``KINDS``;
- ``SUMMARY``: one line, what it changes and why;
- ``UPSTREAM``: the upstream issue URL, or the path of a ready-to-send patch
  text under ``docs/upstream/``;
- ``VERIFIED``: ``{distribution name: version}`` it was verified on;
- ``install()``: idempotent (a second call changes nothing and returns a
  false value); returns a true value when it patched now (a ``str`` is added
  to the log line); raises :class:`PatchUnavailable` naming what is missing
  when the library internals differ.

``install_for(kind, log, environ)`` installs the patches of one worker kind
in ``MODULES`` order and logs one line per patch. A ``SECURITY`` patch that
cannot install (PatchUnavailable, malformed settings, or any other error of
its ``install()``) raises :class:`Refused` with the one line to log: the
worker must not serve. Any other patch that cannot install leaves the
library's own path in place, with one info line (a warning for an
unexpected error).
``HUB_PATCHES_OFF`` (comma-separated names) leaves patches out on purpose:
a performance patch with an info line, a security patch with a warning. A
patch the shipped configs cannot run without says why in an optional
``NOT_OFF``: switching it off refuses the worker with one line.
"""

import importlib
from importlib import metadata

from components.core.settings import Settings, SettingsError
from components.node import node_settings
from components.node.patches import PatchUnavailable

MODULES = (
    "components.node.patches.bodylimit",
    "components.node.patches.fast_send",
    "components.node.patches.nodekey_cache",
    "components.node.patches.proxyleave",
    "components.node.patches.callkwargs",
    "components.node.patches.session_cutoff",
    "components.node.patches.register_authorization",
    "components.node.patches.frame_depth",
    "components.node.patches.auth_deadline",
    "components.node.patches.session_bounds",
    "components.node.patches.authcache_bound",
    "components.node.patches.send_bound",
    "components.node.patches.listen_interface",
    "components.node.patches.ws_origin",
    "components.node.patches.quiet_detach",
    "components.node.patches.chunk_binding",
    "components.node.patches.event_kwargs",
    "components.node.patches.json_decode",
)
KINDS = ("router", "proxy", "container")
FIELDS = ("NAME", "SECURITY", "WORKERS", "SUMMARY", "UPSTREAM", "VERIFIED", "install")
OFF_SETTING = node_settings.HUB_PATCHES_OFF.name
PREFIX = "reactive hub: patch"


class Refused(Exception):
    """A security patch cannot install here: ``str(error)`` is the one line the process logs before it stops."""


def load(modules=MODULES):
    """The patch modules named in ``modules``, each checked for the contract's fields (TypeError naming a gap)."""
    loaded = []
    for name in modules:
        module = importlib.import_module(name)
        missing = [field for field in FIELDS if not hasattr(module, field)]
        if missing:
            raise TypeError("patch module {} lacks {}".format(name, ", ".join(missing)))
        unknown = set(module.WORKERS) - set(KINDS)
        if unknown:
            raise TypeError("patch module {} names unknown worker kinds {}".format(name, sorted(unknown)))
        loaded.append(module)
    return loaded


def for_kind(kind, modules=MODULES):
    """The patch modules that belong in a process of ``kind``, in ``modules`` order."""
    if kind not in KINDS:
        raise ValueError("unknown process kind {!r}".format(kind))
    return [module for module in load(modules) if kind in module.WORKERS]


def switched_off(environ):
    """
    The patch names ``HUB_PATCHES_OFF`` lists (and ``fast_send`` for the older
    ``HUB_FAST_SEND=off``); SettingsError when ``HUB_FAST_SEND`` is not on/off.
    """
    settings = Settings(environ=environ)
    names = set(settings.get(node_settings.HUB_PATCHES_OFF))
    if not settings.get(node_settings.HUB_FAST_SEND):
        names.add("fast_send")
    return names


def installed_note(module):
    """The start of the line a process logs when ``module`` installed."""
    return "{} {} installed".format(PREFIX, module.NAME)


def installed_versions(module):
    """``library version`` for each library the patch was verified on, as installed here."""
    found = []
    for library in sorted(module.VERIFIED):
        try:
            found.append("{} {}".format(library, metadata.version(library)))
        except metadata.PackageNotFoundError:
            found.append("{} (not installed)".format(library))
    return ", ".join(found)


def verified_versions(module):
    return ", ".join("{} {}".format(library, version) for library, version in sorted(module.VERIFIED.items()))


def refusal(module, reason):
    """The one line a process logs when the security patch ``module`` cannot install."""
    return ("reactive hub: security patch {} cannot be installed on {} (verified on {}): {}; "
            "this worker refuses to start").format(module.NAME, installed_versions(module),
                                                   verified_versions(module), reason)


def install_for(kind, log, environ, modules=MODULES):
    """
    Install the patches of ``kind`` (``log``: a Twisted Logger). Returns
    ``{name: "installed" | "already" | "library path" | "off"}``; raises
    :class:`Refused` when a security patch cannot install.
    """
    try:
        off = switched_off(environ)
    except SettingsError as error:
        raise Refused("reactive hub: patches: {}; this worker refuses to start".format(error))
    for name in sorted(off - {module.NAME for module in load(modules)}):
        log.warn("{setting} names {name}, which is no patch of this hub", setting=OFF_SETTING, name=name)
    outcome = {}
    for module in for_kind(kind, modules):
        if module.NAME in off and getattr(module, "NOT_OFF", None):
            raise Refused("{} {} cannot be switched off by {}: {}; this worker refuses to start".format(
                PREFIX, module.NAME, OFF_SETTING, module.NOT_OFF))
        if module.NAME in off:
            emit = log.warn if module.SECURITY else log.info
            emit("{prefix} {name} switched off by {setting}: {summary}", prefix=PREFIX, name=module.NAME,
                 setting=OFF_SETTING, summary=module.SUMMARY)
            outcome[module.NAME] = "off"
            continue
        try:
            result = module.install()
        except SettingsError as error:
            raise Refused("reactive hub: patch {}: {}; this worker refuses to start".format(module.NAME, error))
        except PatchUnavailable as missing:
            reason, emit = str(missing), log.info
        except Exception as error:  # a bug in the patch, or internals it did not expect: never half-silent
            reason, emit = "install() failed: {}: {}".format(type(error).__name__, error), log.warn
        else:
            if result:
                detail = " ({})".format(result) if isinstance(result, str) else ""
                log.info("{note}: {summary}{detail}", note=installed_note(module), summary=module.SUMMARY,
                         detail=detail)
            outcome[module.NAME] = "installed" if result else "already"
            continue
        if module.SECURITY:
            raise Refused(refusal(module, reason))
        emit("{prefix} {name} not installed on {versions} ({reason}): the library's own path is used",
             prefix=PREFIX, name=module.NAME, versions=installed_versions(module), reason=reason)
        outcome[module.NAME] = "library path"
    return outcome
