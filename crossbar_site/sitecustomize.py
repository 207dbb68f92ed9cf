"""
Imported at start-up by every Python process that has this directory on
PYTHONPATH (the hub's launchers set it for crossbar). It installs the patches
of components/node/patches/registry.py for the Crossbar process it finds
itself in (the ``crossbar`` command: "controller"; a worker: its ``--klass``),
and in the ``crossbar`` command sets PORT=8080 when PORT is not set
(components/node/patches/port.py). A security patch that cannot install
stops the worker with one line naming it. Everywhere else it does nothing.
"""

import os
import sys

_KINDS = {"crossbar.worker.router.": "router", "crossbar.worker.proxy.": "proxy",
          "crossbar.worker.container.": "container"}


def _kind(argv):
    from components.node.patches import port
    from components.node.patches.worker import worker_class
    if port.is_node_command(argv):
        return "controller"
    klass = worker_class(argv) or ""
    return next((kind for prefix, kind in _KINDS.items() if klass.startswith(prefix)), None)


def _patch():
    try:
        from components.node.patches import port
    except ImportError:
        return
    argv = getattr(sys, "orig_argv", sys.argv)
    kind = _kind(argv)
    if kind is None:
        return
    if kind == "controller":
        port.apply_default(argv, os.environ)
    from twisted.logger import Logger
    from components.node.patches import registry
    try:
        # Twisted holds these events until the worker begins logging and hands them to the node log
        registry.install_for(kind, Logger(namespace="reactive_hub.patches"), os.environ)
    except registry.Refused as refused:
        sys.stderr.write("{}\n".format(refused))
        sys.stderr.flush()
        os._exit(78)


_patch()
