"""
Callers' keyword arguments named ``fun``, ``f`` or ``self`` reach the hub's
procedures instead of breaking autobahn's invocation.

autobahn invokes a registered procedure with
``txaio.as_future(endpoint.fn, *args, **caller_kwargs)``, and txaio's
``as_future(self, fun, *args, **kwargs)`` (and Twisted's ``maybeDeferred(f,
...)`` behind it) take the procedure under those names: a caller keyword
``fun``, ``f`` or ``self`` raised a ``TypeError`` inside autobahn, logged as
"Unhandled error in Deferred", and the call was never answered. ``install()``
replaces ``as_future`` (in ``txaio.tx``, which ``txaio.use_twisted()`` copies
from, and in ``txaio`` itself when that has happened already) with one that
takes the function positional-only and otherwise does the same: coroutine
functions and coroutines become Deferreds, an exception becomes a failed
Deferred, a Deferred is returned as it is. The procedures then see the
keywords and refuse them with ``reactive.error.invalid_argument`` like any
unknown argument. ``crossbar_site/sitecustomize.py`` installs it in the
worker processes that run components (router and container workers).
"""

from components.node.patches import replacement, unpatched

PATCHED = "_reactive_hub_positional_fun"
COMPONENT_WORKERS = ("crossbar.worker.router.", "crossbar.worker.container.")
INSTALLED_NOTE = "reactive hub: procedures take any caller keyword (txaio.as_future positional-only)"


def positional_as_future(as_future):
    """txaio's ``as_future`` for Twisted with the function positional-only (``fun=`` is the caller's)."""
    from inspect import iscoroutine, iscoroutinefunction

    from twisted.internet import defer
    from twisted.python.failure import Failure

    def as_future_positional(fun, /, *args, **kwargs):
        if iscoroutinefunction(fun):
            try:
                return defer.ensureDeferred(fun(*args, **kwargs))
            except TypeError as error:
                return defer.fail(error)
        try:
            result = fun(*args, **kwargs)
        except BaseException:
            return defer.fail(Failure())
        if isinstance(result, defer.Deferred):
            return result
        if isinstance(result, Failure):
            return defer.fail(result)
        if iscoroutine(result):
            return defer.Deferred.fromCoroutine(result)
        return defer.succeed(result)

    return replacement(as_future_positional, positional_as_future, PATCHED)


def install(txaio_module=None, tx_module=None):
    """Replace ``as_future`` in ``txaio.tx`` (and ``txaio`` once it uses Twisted); True if patched now."""
    if tx_module is None:
        try:
            import txaio as txaio_module
            from txaio import tx as tx_module
        except ImportError:
            return False
    original = unpatched(tx_module, "as_future", PATCHED)
    if original is not None:
        tx_module.as_future = positional_as_future(original)
        if getattr(txaio_module, "using_twisted", False):
            txaio_module.as_future = tx_module.as_future
    return original is not None


def wanted(worker):
    """True for the ``--klass`` of a worker that runs WAMP components."""
    return (worker or "").startswith(COMPONENT_WORKERS)
