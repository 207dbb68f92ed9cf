"""
Crossbar's proxy worker reads the node key file for every proxied session,
twice, and each read renders the key as a terminal QR code (pyqrcode). In a
connection storm that is ~85% of a proxy worker's CPU: 4,000 sessions took
minutes to join through two proxy workers and many handshakes timed out.
(bench/results/fanout.md). The key does not change while a node runs, so
``install()`` memoises ``crossbar.common.key._read_node_key`` per process.

``crossbar_site/sitecustomize.py`` calls ``install()`` in proxy worker
processes only; the hub's launchers (Makefile, Dockerfile, test and bench
helpers) put that directory on ``PYTHONPATH``, which Crossbar hands on to
every worker. Without it the hub is correct, only slower to admit sessions
through proxies. ``install()`` is a no-op when Crossbar or the function is
missing (a Crossbar release that reworked it).
"""

import functools

from components.node.patches import unpatched
from components.node.patches.worker import worker_class

PATCHED = "_reactive_hub_memoised"
INSTALLED_NOTE = "reactive hub: node-key reads memoised in this proxy worker"


def memoise(read):
    """``read(cbdir, ..., private=...)`` wrapped so each distinct call reads and renders once."""
    cache = {}

    @functools.wraps(read)
    def cached(cbdir, privkey_path="key.priv", pubkey_path="key.pub", private=False):
        key = (cbdir, privkey_path, pubkey_path, bool(private))
        if key not in cache:
            cache[key] = read(cbdir, privkey_path=privkey_path, pubkey_path=pubkey_path, private=private)
        return cache[key]

    setattr(cached, PATCHED, True)
    return cached


def install(module=None):
    """Replace ``_read_node_key`` in ``crossbar.common.key`` (or ``module``); True if patched now."""
    if module is None:
        try:
            from crossbar.common import key as module
        except ImportError:
            return False
    read = unpatched(module, "_read_node_key", PATCHED)
    if read is None:
        return False
    module._read_node_key = memoise(read)
    return True


def is_proxy_worker(argv):
    """True for the command line Crossbar starts a proxy worker with."""
    return (worker_class(argv) or "").startswith("crossbar.worker.proxy.")
