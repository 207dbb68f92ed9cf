"""
A session the router ends is cut off at once, whatever its client does.

Crossbar ends a session on ``wamp.session.kill`` (and ``kill_by_authid``,
``kill_by_authrole``) with ``RouterSession.leave``, which only sends GOODBYE:
the session stays attached to the realm until the client replies. A client
that never replies (it only has to answer WebSocket pings) keeps its
subscriptions and registrations and has its calls, publications and
subscriptions routed for as long as its connection lasts; the hub ends
sessions this way on logout, deactivation, password change, deletion and
token expiry.

``install()`` wraps ``RouterSession.leave``. After the GOODBYE (reason and
message as before) the session is, in the same reactor turn:

- detached from the realm (``Router.detach``: the broker drops its
  subscriptions, the dealer its registrations and its calls in flight), so
  no event, result or invocation reaches it any more, and it leaves the
  session index ``wamp.session.kill`` and ``eligible`` publishing look in;
- no longer joined (its session id is cleared as Crossbar does when a client
  says GOODBYE), and every message its client sends is dropped until the
  client's GOODBYE reply: no call, publication, subscription or
  registration of it is processed or answered;
- given a grace (``SESSION_CUTOFF_GRACE``, 2 s): a transport whose client has
  not replied by then is aborted (``ITransport.abort``). A client that
  replies keeps its transport, as WAMP allows, and may join again.

The meta event ``wamp.session.on_leave`` and Crossbar's own ``onLeave``
(testaments, the realm's authid and authrole indexes) follow on the next
reactor turn: ``kill_by_authid`` and ``kill_by_authrole`` iterate those
indexes while they call ``leave``.

Sessions that are not being cut off run the library's code unchanged: the
dropping ``onMessage`` is set on the killed session instance only, so no
message of any other session passes an extra check.

Proxied sessions need nothing more: the proxy worker's backend session
replies to the GOODBYE and the proxy closes the client's connection with the
reason (:mod:`components.node.patches.proxyleave`).
"""


from autobahn.wamp import message
from autobahn.wamp.types import CloseDetails
from twisted.logger import Logger

from components.node.patches import PatchUnavailable, names_used, replacement, unpatched
from components.core.settings import Settings
from components.node import node_settings

NAME = "session_cutoff"
SECURITY = True
WORKERS = ("router",)
SUMMARY = "a session the router ends (wamp.session.kill) is detached at once; its transport closes after a grace"
UPSTREAM = "docs/upstream/session_cutoff.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}

PATCHED = "_reactive_hub_session_cutoff"
DEFAULT_GRACE = node_settings.SESSION_CUTOFF_GRACE.default
# what leave() and the client-GOODBYE branch of onMessage are seen to use (the state this module sets alike)
_LEAVE_NAMES = ("_goodbye_sent", "_transport")
_GOODBYE_NAMES = ("_router", "detach", "_previous_session_id", "_pending_session_id", "_service_session", "onLeave")

log = Logger(namespace="reactive_hub.session_cutoff")


def grace_from_environment(environ=None):
    """``SESSION_CUTOFF_GRACE`` in seconds (0.1 to 60; SettingsError naming it when malformed)."""
    return Settings.of_process(None, environ).get(node_settings.SESSION_CUTOFF_GRACE)


def _default_clock():
    # imported when a session is cut off: importing the reactor at install time would install the default one
    # before Crossbar chooses its own
    from twisted.internet import reactor
    return reactor


class CutOff:
    """Cuts off a router session that was just sent GOODBYE; ``clock()`` gives the reactor to schedule on."""

    def __init__(self, grace, clock=_default_clock):
        self.grace = grace
        self.clock = clock

    def __call__(self, session, reason, text):
        router, session_id = session._router, session._session_id
        if router is None or session_id is None:
            return
        transport = session._transport
        try:
            router.detach(session)
        except Exception as error:  # not attached (any more): nothing left to route for it
            log.info("session {session} was not attached: {error}", session=session_id, error=error)
        # as Crossbar's own handling of a client's GOODBYE: not joined any more
        session._previous_session_id = session_id
        session._session_id = None
        session._pending_session_id = None
        clock = self.clock()
        deadline = clock.callLater(self.grace, self.drop, session, transport, session_id)
        session.onMessage = self.awaiting_goodbye(session, transport, deadline, session_id)
        clock.callLater(0, self.announce, session, session_id, CloseDetails(reason, text))

    def awaiting_goodbye(self, session, transport, deadline, session_id):
        """The killed session's ``onMessage``: GOODBYE ends the wait, ABORT closes, the rest is dropped."""

        def onMessage(msg):
            if isinstance(msg, message.Goodbye):
                _restore(session)
                if deadline.active():
                    deadline.cancel()
            elif isinstance(msg, message.Abort):
                if deadline.active():
                    deadline.cancel()
                self.drop(session, transport, session_id)

        return onMessage

    def drop(self, session, transport, session_id):
        """Abort ``transport`` if it is still the session's and its client has not replied."""
        if not _restore(session) or session._transport is not transport or transport is None:
            return
        log.info("session {session} did not answer its GOODBYE within {grace:g} s: closing its transport",
                 session=session_id, grace=self.grace)
        # the connection itself, not the WAMP transport's abort(): autobahn's WebSocket abort() starts a close
        # handshake, which a client that ignores GOODBYE ignores too (the TCP connection then lived until the
        # ping timeout, 20-35 s)
        connection = getattr(transport, "transport", None)
        try:
            if connection is not None and hasattr(connection, "abortConnection"):
                connection.abortConnection()
            else:
                transport.abort()
        except Exception as error:  # lost already
            log.info("closing the transport of session {session}: {error}", session=session_id, error=error)

    def announce(self, session, session_id, details):
        """What Crossbar does after a client's GOODBYE: ``wamp.session.on_leave``, then ``onLeave``."""
        if session._service_session is not None:
            session._service_session.publish("wamp.session.on_leave", session_id)
        try:
            session.onLeave(details)
        except Exception:
            log.failure("onLeave of cut-off session {session}", session=session_id)


def _restore(session):
    """Give ``session`` back the class's ``onMessage``; True if it still had the cut-off one."""
    return session.__dict__.pop("onMessage", None) is not None


def cutting_off(leave, cut_off):
    """``RouterSession.leave`` that sends GOODBYE as before, then cuts the session off (:class:`CutOff`)."""

    def leave_and_cut_off(self, reason=None, message=None):
        leave(self, reason=reason, message=message)
        cut_off(self, reason, message)

    return replacement(leave_and_cut_off, cutting_off, PATCHED)


def check_internals(session_class, router_class):
    """Raise PatchUnavailable naming what ``session_class``/``router_class`` lack of what the cut-off relies on."""
    missing = [name for name in ("leave", "onMessage", "onLeave") if not callable(getattr(session_class, name, None))]
    if not callable(getattr(router_class, "detach", None)):
        missing.append("Router.detach")
    leave = getattr(session_class, "leave", None)
    missing += ["leave uses " + name for name in _LEAVE_NAMES if name not in names_used(leave)]
    missing += ["onMessage uses " + name for name in _GOODBYE_NAMES
                if name not in names_used(getattr(session_class, "onMessage", None))]
    if missing:
        raise PatchUnavailable("crossbar.router.session.RouterSession differs: " + ", ".join(missing))


def install(grace=None, session_class=None, router_class=None, clock=_default_clock):
    """
    Wrap ``RouterSession.leave`` of ``crossbar.router.session`` (or
    ``session_class``); True if patched now, False if it already was.
    PatchUnavailable when Crossbar's internals differ; SettingsError when
    ``SESSION_CUTOFF_GRACE`` is malformed.
    """
    if session_class is None or router_class is None:
        try:
            from crossbar.router.router import Router
            from crossbar.router.session import RouterSession
        except ImportError as error:
            raise PatchUnavailable("crossbar.router is missing: {}".format(error))
        session_class = session_class or RouterSession
        router_class = router_class or Router
    original = unpatched(session_class, "leave", PATCHED)
    if original is None:
        if getattr(getattr(session_class, "leave", None), PATCHED, False):
            return False
        raise PatchUnavailable("crossbar.router.session.RouterSession has no leave()")
    check_internals(session_class, router_class)
    grace = grace_from_environment() if grace is None else grace
    session_class.leave = cutting_off(original, CutOff(grace, clock))
    return True
