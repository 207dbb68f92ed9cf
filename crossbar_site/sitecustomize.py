"""
Imported at start-up by every Python process that has this directory on
PYTHONPATH (the hub's launchers set it for crossbar). In Crossbar proxy
workers it memoises the node-key read (components/node/patches/nodekey_cache.py) and
passes the router's reason on when it ends a proxied session
(components/node/patches/proxyleave.py); in
router and proxy workers it installs the cheaper send path
(components/node/patches/fast_send.py) unless HUB_FAST_SEND=off, and the request-body
limits of the web transport (components/node/patches/bodylimit.py; a malformed
HTTP_BODY_LIMIT, DEVICE_BODY_LIMIT or HTTP_BODY_TIMEOUT stops the worker with an error
naming it). In the ``crossbar`` command itself it sets PORT=8080 when PORT is not set
(components/node/patches/port.py) and keeps the worker records that arrive with the worker
log handshake (components/node/patches/handshake.py). In router and container workers
(where components run) procedures take any caller keyword
(components/node/patches/callkwargs.py). Everywhere else it does nothing.
Each worker patch logs one info line in the worker's log (the node log).
"""

import os
import sys

def _note(text):
    """
    Log ``text`` at info through Twisted's logger. Nothing may reach stderr
    before the worker's first line, Crossbar's rich-logging handshake: the
    controller then takes the worker for a plain one and prints every later
    line as raw JSON with ANSI codes. Twisted holds this event until the worker
    begins logging and hands it to the worker's log like any other.
    """
    from twisted.logger import Logger
    Logger(namespace="reactive_hub.patches").info("{note}", note=text)


def _limit_bodies(argv):
    # imported here: twisted.web costs every other Python process ~0.15 s at start-up
    from components.core.settings import SettingsError
    from components.node.patches import bodylimit
    try:
        limits = bodylimit.limits_from_environment(argv, os.environ)
    except SettingsError as error:
        sys.stderr.write("reactive hub: {}; this worker stops\n".format(error))
        sys.stderr.flush()
        os._exit(78)
    if bodylimit.install(limits):
        bodylimit.install_proxy_framing()
        _note("{} ({})".format(bodylimit.INSTALLED_NOTE, limits.describe()))
    else:
        _note(bodylimit.MISSING_NOTE)


def _patch_workers():
    try:
        from components.node.patches import callkwargs, fast_send, handshake, nodekey_cache, port, proxyleave
        from components.node.patches.worker import WEB_WORKERS, worker_class
    except ImportError:
        return
    argv = getattr(sys, "orig_argv", sys.argv)
    if port.is_node_command(argv):
        port.apply_default(argv, os.environ)
        handshake.install()
    if nodekey_cache.is_proxy_worker(argv):
        if nodekey_cache.install():
            _note(nodekey_cache.INSTALLED_NOTE)
        if proxyleave.install():
            _note(proxyleave.INSTALLED_NOTE)
    if fast_send.wanted(argv, os.environ) and fast_send.install():
        _note(fast_send.INSTALLED_NOTE)
    klass = worker_class(argv) or ""
    if callkwargs.wanted(klass) and callkwargs.install():
        _note(callkwargs.INSTALLED_NOTE)
    if klass.startswith(WEB_WORKERS):
        _limit_bodies(argv)


_patch_workers()
