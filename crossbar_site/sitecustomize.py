"""
Imported at start-up by every Python process that has this directory on
PYTHONPATH (the hub's launchers set it for crossbar). In Crossbar proxy
workers it memoises the node-key read (see components/nodekey_cache.py);
everywhere else it does nothing.
"""

import sys


def _patch_proxy_worker():
    try:
        from components import nodekey_cache
    except ImportError:
        return
    if nodekey_cache.is_proxy_worker(getattr(sys, "orig_argv", sys.argv)) and nodekey_cache.install():
        # the worker's output goes to the node log
        sys.stderr.write(nodekey_cache.INSTALLED_NOTE + "\n")


_patch_proxy_worker()
