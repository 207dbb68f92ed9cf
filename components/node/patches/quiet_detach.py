"""
A router worker that shuts down no longer writes "cannot detach session
...: session not currently attached" to stderr once per component (a dev
node wrote a dozen).

Crossbar closes each router-embedded component's transport
(``crossbar.router.session.RouterApplicationSession.close``) twice when a
worker stops: once when the component leaves (its GOODBYE answered) and
once when the worker stops the component. Each close schedules a detach
from the router for the next reactor turn, so the second one finds the
session detached and warns. ``install()`` makes ``close`` act once per
session: a second call returns without scheduling another detach (and
without recording the session's leave in the realm store twice). It
changes nothing else; without it the hub only logs more at shutdown.
"""

import functools

from components.node.patches import PatchUnavailable, unpatched

NAME = "quiet_detach"
SECURITY = False
WORKERS = ("router",)
SUMMARY = ("a router-embedded session's transport closes once: no 'cannot detach session' warning per component "
           "at shutdown")
UPSTREAM = "docs/upstream/quiet_detach.patch"
VERIFIED = {"crossbar": "26.10.1"}

PATCHED = "_reactive_hub_close_once"
CLOSED = "_reactive_hub_closed"


def once(close):
    """``RouterApplicationSession.close`` that acts on its first call only."""

    @functools.wraps(close)
    def close_once(self):
        if getattr(self, CLOSED, False):
            return None
        setattr(self, CLOSED, True)
        return close(self)

    setattr(close_once, PATCHED, True)
    return close_once


def install(cls=None):
    """Make ``close`` of ``crossbar.router.session.RouterApplicationSession`` (or ``cls``) act once; True if now."""
    if cls is None:
        try:
            from crossbar.router.session import RouterApplicationSession as cls
        except ImportError as error:
            raise PatchUnavailable(str(error))
    if not callable(getattr(cls, "close", None)):
        raise PatchUnavailable("{} has no close".format(cls.__name__))
    original = unpatched(cls, "close", PATCHED)
    if original is None:
        return False
    cls.close = once(original)
    return True
