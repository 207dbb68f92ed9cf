"""
Every chunk of a large fan-out sends its own subscription's EVENT.

Crossbar's broker (``crossbar.router.broker.Broker.processPublish``) sends
an event to ``event_dispatching_chunk_size`` receivers (a realm option,
default 100) per reactor turn. For each subscription matching the topic it
defines ``_notify_some`` inside its loop and schedules the next chunk with
``txaio.call_later(0, _notify_some, rest)``; the function reads ``msg`` (the
EVENT carrying that subscription's id), ``all_d`` and the loop's other
variables when it runs, so every later chunk runs with the values of the
*last* subscription of the loop. When a topic matches two subscriptions (an
``app.`` topic: the subscribers' own and the event history's ``app.``
prefix) and one has more receivers than a chunk, the receivers past the
first chunk get an EVENT for a subscription they do not hold: autobahn
clients end the session (protocol violation; autobahn.js closes with 3002),
and the router logs ``AlreadyCalledError`` resolving the last subscription's
Deferred twice (bench/results/apps_publish.md: 200 of 300 browser sessions
closed by one event).

``install()`` gives the broker module a ``txaio`` whose ``call_later``
schedules a bound copy of such a function: its free variables hold the
values they have when the next chunk is scheduled (still inside the loop's
iteration), and its own name refers to the copy, so each chunk continues
with the subscription, EVENT and Deferred it started with. Every other
txaio name is the library's.
"""

import types

from components.node.patches import PatchUnavailable

NAME = "chunk_binding"
SECURITY = False
WORKERS = ("router",)
SUMMARY = ("a fan-out's later chunks send their own subscription's EVENT (Crossbar's read the last matching "
           "subscription's: sessions past 100 receivers were closed)")
UPSTREAM = "docs/upstream/chunk_binding.patch"
VERIFIED = {"crossbar": "26.10.1", "txaio": "26.6.1"}

FUNCTION = "_notify_some"
BOUND = "_reactive_hub_bound_chunk"


def bound(function):
    """
    A copy of ``function`` whose free variables keep the values they have
    now (an unassigned one stays unassigned); the free variable with the
    function's own name refers to the copy.
    """
    if not getattr(function, "__closure__", None):
        return function
    own = types.CellType()
    cells = []
    for name, cell in zip(function.__code__.co_freevars, function.__closure__):
        if name == function.__name__:
            cells.append(own)
            continue
        try:
            cells.append(types.CellType(cell.cell_contents))
        except ValueError:   # unassigned: stays so
            cells.append(types.CellType())
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                              function.__defaults__, tuple(cells))
    copy.__kwdefaults__ = function.__kwdefaults__
    own.cell_contents = copy
    setattr(copy, BOUND, True)
    return copy


class BindingTxaio:
    """``txaio`` as the broker module sees it: ``call_later`` binds a ``_notify_some`` first."""

    def __init__(self, txaio):
        self._txaio = txaio

    def __getattr__(self, name):
        return getattr(self._txaio, name)

    def call_later(self, delay, function, *args, **kwargs):
        if getattr(function, "__name__", None) == FUNCTION and not getattr(function, BOUND, False):
            function = bound(function)
        return self._txaio.call_later(delay, function, *args, **kwargs)


def _contents(cell):
    """What ``cell`` holds; None when it is unassigned."""
    try:
        return cell.cell_contents
    except ValueError:
        return None


def schedules_chunks(cls):
    """
    True when ``cls.processPublish`` defines a nested ``_notify_some`` that
    calls ``txaio.call_later``; a wrapper's (another patch's) original is
    looked for in its closure.
    """
    functions, codes = [getattr(cls, "processPublish", None)], []
    for _ in range(4):   # the wrappers of other patches, each holding the function it wraps
        inner = []
        for function in functions:
            if getattr(function, "__code__", None) is None:
                continue
            codes.append(function.__code__)
            inner.extend(value for value in map(_contents, function.__closure__ or ()) if callable(value))
        functions = inner
    while codes:
        code = codes.pop()
        if code.co_name == FUNCTION and "call_later" in code.co_names and "txaio" in code.co_names:
            return True
        codes.extend(const for const in code.co_consts if isinstance(const, types.CodeType))
    return False


def install(module=None):
    """Bind the broker's chunk continuations (``module``: ``crossbar.router.broker``); True if patched now."""
    if module is None:
        try:
            from crossbar.router import broker as module
        except ImportError as error:
            raise PatchUnavailable(str(error))
    current = getattr(module, "txaio", None)
    if isinstance(current, BindingTxaio):
        return False
    if current is None or not callable(getattr(current, "call_later", None)):
        raise PatchUnavailable("{} has no txaio.call_later".format(module.__name__))
    if not schedules_chunks(getattr(module, "Broker", None)):
        raise PatchUnavailable("{}.Broker.processPublish schedules no {} chunks".format(module.__name__,
                                                                                          FUNCTION))
    module.txaio = BindingTxaio(current)
    return True
