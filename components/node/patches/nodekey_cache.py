"""
Crossbar's proxy worker reads the node key file for every proxied session,
twice, and each read renders the key as a terminal QR code (pyqrcode). In a
connection storm that is ~85% of a proxy worker's CPU: 4,000 sessions took
minutes to join through two proxy workers and many handshakes timed out.
(bench/results/fanout.md). The key does not change while a node runs, so
``install()`` memoises ``crossbar.common.key._read_node_key`` per process,
also where the proxy module bound it by name (the reader it actually calls).

The patch registry installs it in proxy workers. Without it the hub is
correct, only slower to admit sessions through proxies: on a Crossbar
release that reworked the function ``install()`` raises ``PatchUnavailable``
and the proxy reads the key as Crossbar does.
"""

import functools

from components.node.patches import PatchUnavailable, unpatched

NAME = "nodekey_cache"
SECURITY = False
WORKERS = ("proxy",)
SUMMARY = "the node key read once per proxy worker, not twice per proxied session (with a QR rendering each)"
UPSTREAM = "docs/upstream/nodekey_cache.patch"
VERIFIED = {"crossbar": "26.10.1"}

PATCHED = "_reactive_hub_memoised"


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


def install(module=None, callers=None):
    """
    Replace ``_read_node_key`` in ``crossbar.common.key`` (or ``module``) and
    in the modules that imported it by name (``crossbar.worker.proxy``, or
    ``callers``), with one memoised reader; True if patched now.
    """
    if module is None:
        try:
            from crossbar.common import key as module
            from crossbar.worker import proxy
        except ImportError as error:
            raise PatchUnavailable(str(error))
        callers = (proxy,)
    callers = tuple(callers or ())
    holders = (module,) + callers
    lacking = [holder.__name__ for holder in holders if not hasattr(holder, "_read_node_key")]
    if lacking:
        raise PatchUnavailable("no _read_node_key in " + ", ".join(lacking))
    if all(getattr(holder._read_node_key, PATCHED, False) for holder in holders):
        return False
    read = unpatched(module, "_read_node_key", PATCHED)
    cached = module._read_node_key if read is None else memoise(read)
    for holder in holders:
        holder._read_node_key = cached
    return True
