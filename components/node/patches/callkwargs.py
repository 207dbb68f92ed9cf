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
unknown argument. The patch registry installs it in the worker processes
that run components (router and container workers).
"""

from components.node.patches import PatchUnavailable, replacement, unpatched

NAME = "callkwargs"
SECURITY = False
WORKERS = ("router", "container")
SUMMARY = ("txaio.as_future takes the function positional-only: a caller keyword fun/f/self reaches the "
           "procedure instead of leaving the call unanswered")
UPSTREAM = "docs/upstream/callkwargs.patch"
VERIFIED = {"txaio": "26.6.1", "autobahn": "26.11.1"}

PATCHED = "_reactive_hub_positional_fun"


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
        except ImportError as error:
            raise PatchUnavailable(str(error))
    if not hasattr(tx_module, "as_future"):
        raise PatchUnavailable("txaio.tx has no as_future")
    original = unpatched(tx_module, "as_future", PATCHED)
    if original is not None:
        tx_module.as_future = positional_as_future(original)
        if getattr(txaio_module, "using_twisted", False):
            txaio_module.as_future = tx_module.as_future
    return original is not None

