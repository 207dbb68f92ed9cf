"""
The interface a TCP transport listens on may come from the environment:
``"interface": "${HUB_INTERFACE:-127.0.0.1}"`` in a node config's listening
endpoint. Crossbar substitutes an environment variable in an endpoint's
``port`` (``"$PORT"``) but takes ``interface`` literally, so the dev node
could either listen on every interface (no ``interface``: what it did) or
on loopback with no way to say otherwise without editing the config.

``install()`` wraps ``create_listening_port_from_config`` where
``crossbar.worker.transport`` calls it: an endpoint ``interface`` holding
``${VAR}`` / ``${VAR:-default}`` is substituted from the worker's
environment (``components.core.settings.substitute``) before Crossbar
builds the port; every other endpoint is passed on unchanged (the
production configs name no interface and listen on every one).
``HUB_INTERFACE`` must be an IPv4 address (a malformed value refuses the
worker with one line). It is a security patch: without it the dev
config's endpoint would hand Crossbar the text ``${HUB_INTERFACE...}``.

The same endpoint (the dev node's web endpoint, the one whose interface is
``DEV_INTERFACE``) listens on ``PORT`` when that is set; its literal port
(8080, ``PORT``'s default) when not. Crossbar checks every endpoint's port
in the controller, before any hub code runs, and accepts only an integer
or ``"$VAR"`` with ``VAR`` set, so ``${PORT:-8080}`` cannot be written in
the config: a hand-started node with nothing set must still start. So the
dev node, its demo device and the ``reactive-hub device`` simulator all
follow the one setting ``PORT``.
"""

import functools
import os

from components.core import core_settings
from components.core.settings import Settings, substitute
from components.node import node_settings
from components.node.patches import PatchUnavailable, unpatched

NAME = "listen_interface"
SECURITY = True
WORKERS = ("router", "proxy")
SUMMARY = ("a TCP endpoint's interface may be ${VAR:-default} (the dev config: ${HUB_INTERFACE:-127.0.0.1}, "
           "loopback unless told otherwise); that dev endpoint listens on PORT when set")
UPSTREAM = "docs/upstream/listen_interface.patch"
NOT_OFF = ("the dev config's web endpoint names its interface ${HUB_INTERFACE:-127.0.0.1}, which Crossbar cannot "
           "listen on without it; set HUB_INTERFACE instead")
VERIFIED = {"crossbar": "26.10.1"}

PATCHED = "_reactive_hub_interface_from_environment"
# what the dev config's web endpoint says (the production configs leave it out: every interface)
DEV_INTERFACE = "${HUB_INTERFACE:-127.0.0.1}"


def resolved(endpoint, environ):
    """
    ``endpoint`` (a listening endpoint config), its ``${...}`` interface
    substituted from ``environ``, and the dev endpoint's port ``PORT`` when
    set (a copy; SettingsError for a malformed ``PORT``).
    """
    interface = endpoint.get("interface") if isinstance(endpoint, dict) else None
    if not isinstance(interface, str) or "${" not in interface:
        return endpoint
    # a blank variable is unset, as for every setting: HUB_INTERFACE=" " is the default, not '' (every interface)
    set_only = {name: value for name, value in environ.items() if str(value).strip()}
    changed = dict(endpoint, interface=substitute(interface, set_only).strip())
    if interface == DEV_INTERFACE and core_settings.PORT.name in set_only:
        changed["port"] = Settings(environ=set_only).get(core_settings.PORT)
    return changed


def substituting(create, environ):
    """``create_listening_port_from_config`` with the endpoint's interface substituted first."""

    @functools.wraps(create)
    def create_listening_port(config, *args, **kwargs):
        return create(resolved(config, environ), *args, **kwargs)

    setattr(create_listening_port, PATCHED, True)
    return create_listening_port


def install(module=None, environ=None):
    """
    Wrap ``create_listening_port_from_config`` in ``crossbar.worker.transport``
    (or ``module``); check ``HUB_INTERFACE`` and ``PORT`` (SettingsError when
    one is not an IPv4 address, a port). True when patched now.
    """
    environ = os.environ if environ is None else environ
    Settings(environ=environ).get(node_settings.HUB_INTERFACE)
    Settings(environ=environ).get(core_settings.PORT)
    if module is None:
        try:
            from crossbar.worker import transport as module
        except ImportError as error:
            raise PatchUnavailable(str(error))
    if not hasattr(module, "create_listening_port_from_config"):
        raise PatchUnavailable("no create_listening_port_from_config in {}".format(module.__name__))
    original = unpatched(module, "create_listening_port_from_config", PATCHED)
    if original is None:
        return False
    module.create_listening_port_from_config = substituting(original, environ)
    return True
