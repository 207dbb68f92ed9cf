"""
How every Crossbar worker of the hub installs its patches (the patch
registry, ``components.node.patches.registry``) before it serves anything,
however the node is started (``crossbar start --cbdir DIR`` in any
environment where the package is installed: no PYTHONPATH, no launcher).

The node configs name an entry point of this module as the first thing each
native worker builds, which is where Crossbar runs hub code in that worker
before any of its transports listens:

- a router worker's first component, ``RouterBoot`` (Crossbar starts a
  router's realms, then its components in order, then its transports);
- a container worker's first component, ``ContainerBoot`` (before the
  components that register procedures);
- a proxy worker's root web resource, ``ProxyRoot`` (the root ``/`` of a web
  transport is built before the transport listens; the other paths after),
  which then builds the root resource the config gives it in ``extra.root``.

``booted(config)`` adds these to every worker of a node config (the
topology generators call it; the committed configs carry them, checked by
the tests). A security patch that cannot install makes the worker log one
line naming the patch and the library versions and exit with ``REFUSED``;
the node, whose controller stops on a worker's exit
(``shutdown_on_worker_exit``), then exits non-zero.
"""

import copy
import importlib
import os
import sys

from autobahn.twisted.wamp import ApplicationSession
from twisted.logger import Logger

from components.core import refusal
from components.node.patches import registry

REFUSED = refusal.REFUSED  # EX_CONFIG: what this installation offers cannot run the hub safely
BOOT_ID = "boot"
ROUTER_BOOT = "components.node.boot.RouterBoot"
CONTAINER_BOOT = "components.node.boot.ContainerBoot"
PROXY_ROOT = "components.node.boot.ProxyRoot"

_log = Logger(namespace="reactive_hub.patches")


# the worker kinds whose patches this process installed (a worker boots once)
_BOOTED = set()
# Crossbar starts each native worker with its controller class as ``--klass`` on the command line
_CONTROLLER_KINDS = {"RouterController": "router", "ProxyController": "proxy", "ContainerController": "container"}


def worker_kind(argv=None):
    """The kind of Crossbar worker this process is (``router``, ``proxy`` or ``container``: the controller class
    named by ``--klass`` in ``argv``, ``sys.argv`` by default); None when it names none of them."""
    argv = sys.argv if argv is None else argv
    try:
        klass = argv[argv.index("--klass") + 1]
    except (ValueError, IndexError):
        return None
    return _CONTROLLER_KINDS.get(klass.rpartition(".")[2])


def install(kind, log=_log, environ=None, exit=os._exit):
    """Install the patches of ``kind`` in this process; on a refusal log its one line and ``exit(REFUSED)``."""
    try:
        outcome = registry.install_for(kind, log, os.environ if environ is None else environ)
        _BOOTED.add(kind)
        return outcome
    except registry.Refused as refused:
        refusal.refuse(str(refused), log, exit)
        raise


def ensure(kind, by, log=_log, argv=None, **options):
    """
    The safety net for a node config written without the boot entries
    (``booted``): the first hub class such a worker builds (``by``: a
    component or resource of :mod:`components.node.assembly`) installs the
    patches of the worker kind this process is (:func:`worker_kind`; ``kind``,
    the kind ``by`` usually runs in, only outside a Crossbar worker) there,
    with one warning line, unless this process booted already: ``/health``
    in a router worker installs the router's patches, not a proxy's.
    Security patches still refuse the worker.
    """
    if _BOOTED:
        return None
    kind = worker_kind(argv) or kind
    log.warn("reactive hub: this worker's config has no boot entry: {by} installs the {kind} patches (add the entries "
             "with components.node.boot.booted; a transport built before {by} ran without them)", by=by, kind=kind)
    return install(kind, log=log, **options)


class RouterBoot(ApplicationSession):
    """A router worker's first component: installs the router patches when Crossbar creates it, then idles."""

    KIND = "router"

    def __init__(self, config=None):
        install(self.KIND)
        ApplicationSession.__init__(self, config)


class ContainerBoot(RouterBoot):
    """A container worker's first component: installs the container patches when Crossbar creates it."""

    KIND = "container"


def ProxyRoot(extra=None):
    """
    A proxy worker's root web resource: installs the proxy patches, then
    returns the resource of ``extra["root"]`` (a ``"type": "resource"``
    service: its ``classname`` called with its ``extra``).
    """
    install("proxy")
    root = (extra or {}).get("root") or {}
    if root.get("type") != "resource" or "." not in root.get("classname", ""):
        raise ValueError("ProxyRoot needs extra.root, a resource service with a classname")
    module_name, _, name = root["classname"].rpartition(".")
    return getattr(importlib.import_module(module_name), name)(root.get("extra"))


def _router_boot(realm):
    return {"id": BOOT_ID, "type": "class", "classname": ROUTER_BOOT, "realm": realm, "role": BOOT_ID}


def _container_boot(first):
    item = {"id": BOOT_ID, "type": "class", "classname": CONTAINER_BOOT, "realm": first["realm"]}
    if "transport" in first:
        item["transport"] = copy.deepcopy(first["transport"])
    return item


def _boot_proxy_root(transport):
    paths = transport.get("paths") if transport.get("type") == "web" else None
    root = (paths or {}).get("/")
    if root is None or root.get("classname") == PROXY_ROOT:
        return
    paths["/"] = {"type": "resource", "classname": PROXY_ROOT, "extra": {"root": root}}


def booted(config):
    """``config`` (a node config, changed in place and returned) with every native worker's boot entry."""
    for worker in config.get("workers", []):
        kind = worker.get("type")
        if kind == "router":
            components = worker.setdefault("components", [])
            components[:] = [item for item in components if item.get("id") != BOOT_ID]
            realm = (worker.get("realms") or [{}])[0].get("name")
            components.insert(0, _router_boot(realm))
        elif kind == "container" and worker.get("components"):
            components = [item for item in worker["components"] if item.get("id") != BOOT_ID]
            worker["components"] = [_container_boot(components[0])] + components
        elif kind == "proxy":
            transports = worker.get("transports", [])
            if transports and "/" not in ((transports[0].get("paths") or {}) if transports[0].get("type") == "web"
                                          else {}):
                # a proxy runs hub code only in a web root: the first transport must have one, or it would
                # listen before the patches are installed
                raise ValueError("proxy worker {}: its first transport must be a web transport with a root "
                                 "path".format(worker.get("id")))
            for transport in transports:
                _boot_proxy_root(transport)
    return config
