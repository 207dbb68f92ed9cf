"""
A router-embedded component that takes its event's details no longer
changes what the other subscribers of that publication receive.

Crossbar's broker builds one EVENT per subscription whose ``kwargs`` is the
PUBLISH's own dict, shared by every subscription the publication matches.
autobahn hands an event to a handler subscribed with ``details=True`` by
adding the ``EventDetails`` to that very dict (``invoke_kwargs =
msg.kwargs``, then ``invoke_kwargs["details"] = ...``). In a router
worker the embedded components get the EVENT object itself (their
transport, ``crossbar.router.session.RouterApplicationSession``, passes it
on without serialising it), so once the event history recorder (a prefix
subscription on ``app.``, ``iot.`` ...) had seen an event with keyword
arguments, every subscription served after it (prefix and wildcard
subscriptions of browsers and applications) held an ``EventDetails`` the
serializer could not write: those subscribers never got the event.
``install()`` wraps ``RouterApplicationSession.send`` so an EVENT or
INVOCATION with keyword arguments reaches the embedded session as a copy
with its own ``kwargs`` dict; nothing else changes.
"""

import copy

from components.node.patches import PatchUnavailable, replacement, unpatched

NAME = "event_kwargs"
SECURITY = False
WORKERS = ("router",)
SUMMARY = ("an EVENT or INVOCATION with kwargs reaches a router-embedded session with its own kwargs dict: "
           "autobahn's details argument no longer leaks into other subscribers' events")
UPSTREAM = "docs/upstream/event_kwargs.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1"}

PATCHED = "_reactive_hub_own_kwargs"


def own_kwargs(send, copied_types):
    """``RouterApplicationSession.send`` that passes a message of ``copied_types`` with kwargs as a copy
    holding its own kwargs dict."""

    def send_own_kwargs(self, msg):
        if isinstance(msg, copied_types) and msg.kwargs:
            msg = copy.copy(msg)
            msg.kwargs = dict(msg.kwargs)
        return send(self, msg)

    return replacement(send_own_kwargs, own_kwargs, PATCHED)


def install(cls=None, copied_types=None):
    """Wrap ``send`` of ``crossbar.router.session.RouterApplicationSession`` (or ``cls``); True if patched now."""
    if cls is None:
        try:
            from crossbar.router.session import RouterApplicationSession as cls
        except ImportError as error:
            raise PatchUnavailable(str(error))
    if copied_types is None:
        from autobahn.wamp import message
        copied_types = (message.Event, message.Invocation)
    if not callable(getattr(cls, "send", None)):
        raise PatchUnavailable("{} has no send".format(cls.__name__))
    original = unpatched(cls, "send", PATCHED)
    if original is None:
        return False
    cls.send = own_kwargs(original, copied_types)
    return True
