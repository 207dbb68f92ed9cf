"""
Imported at start-up by every Python process that has this directory on
PYTHONPATH (the hub's launchers set it for crossbar). In Crossbar proxy
workers it memoises the node-key read (components/node/patches/nodekey_cache.py); in
router and proxy workers it installs the cheaper send path
(components/node/patches/fast_send.py) unless HUB_FAST_SEND=off. Everywhere else it does
nothing. Each patch writes one line to the worker's output (the node log).
"""

import os
import sys


def _patch_workers():
    try:
        from components.node.patches import fast_send, nodekey_cache
    except ImportError:
        return
    argv = getattr(sys, "orig_argv", sys.argv)
    if nodekey_cache.is_proxy_worker(argv) and nodekey_cache.install():
        sys.stderr.write(nodekey_cache.INSTALLED_NOTE + "\n")
    if fast_send.wanted(argv, os.environ) and fast_send.install():
        sys.stderr.write(fast_send.INSTALLED_NOTE + "\n")


_patch_workers()
