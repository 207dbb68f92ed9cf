"""
When the router ends a proxied session (``wamp.session.kill``: a revoked
or expired token), Crossbar's proxy worker drops the reason: its backend
session clears its session id on the router's GOODBYE, and then tells the
client ABORT ``wamp.error.authentication_failed`` on an established session
(a protocol error, so the client sees only ``wamp.close.transport_lost``).
A browser cannot tell "your rights were revoked" from "the network broke".

``install()`` makes the backend session remember the reason of the router's
GOODBYE (``onLeave``) and pass that GOODBYE on to the client when it closes
(``onClose``) and closes the connection (dropped ``SESSION_CUTOFF_GRACE``
later if the client ignores the close handshake), so a proxied client ends with ``reactive.error.auth.revoked``
or ``reactive.error.auth.session_expired`` exactly like a direct one.
On a Crossbar whose proxy module lacks these methods ``install()`` raises
``PatchUnavailable``: proxied clients then see Crossbar's own ABORT.
"""

from autobahn.wamp import message

from components.node.patches import PatchUnavailable, replacement, session_cutoff, unpatched

NAME = "proxyleave"
# a proxied client that ignores the GOODBYE loses its connection only through this patch
SECURITY = True
WORKERS = ("proxy",)
SUMMARY = ("a proxied session the router ends gets the router's GOODBYE reason and its connection closed, "
           "not ABORT authentication_failed")
UPSTREAM = "docs/upstream/proxyleave.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1"}

PATCHED = "_reactive_hub_proxy_leave"


def remembering(on_leave):
    """``onLeave`` that keeps the router's close details on the session first."""
    def onLeave(self, details):
        self._hub_router_leave = details
        return on_leave(self, details)
    return replacement(onLeave, remembering, PATCHED)


def forwarding(on_close):
    """``onClose`` that hands the router's GOODBYE (reason and message) to the client, then closes as before."""
    def onClose(self, wasClean):
        details = getattr(self, "_hub_router_leave", None)
        frontend = getattr(self, "_frontend", None)
        if details is not None and details.reason and frontend is not None and frontend.transport is not None:
            try:
                frontend.transport.send(message.Goodbye(reason=details.reason, message=details.message))
                # and closed: the client's GOODBYE reply would otherwise get a second GOODBYE from the proxy
                frontend.transport.close()
                if not getattr(self, "_goodbye_sent", False):  # the router ended it, not the client's own GOODBYE
                    _drop_after_grace(frontend.transport)
                self._frontend = None  # told: Crossbar's own onClose would send ABORT on top
            except Exception as error:
                self.log.info("passing the router's goodbye to the client failed: {error}", error=error)
        return on_close(self, wasClean)
    return replacement(onClose, forwarding, PATCHED)


def _drop_after_grace(wamp_transport):
    """
    Drop the client's TCP connection ``SESSION_CUTOFF_GRACE`` seconds from
    now unless it is gone: ``close()`` starts a WebSocket close handshake,
    which a client that ignores GOODBYE ignores too (its connection to the
    proxy then lived until the ping timeout).
    """
    connection = getattr(wamp_transport, "transport", None)
    if connection is None or not hasattr(connection, "abortConnection"):
        return
    from twisted.internet import reactor
    reactor.callLater(_GRACE[0], _drop, connection)


def _drop(connection):
    if not getattr(connection, "disconnected", True):
        connection.abortConnection()


# the cut-off's grace, read once at install (a malformed value refuses the worker there)
_GRACE = [session_cutoff.DEFAULT_GRACE]


def install(module=None):
    """Patch ``ProxyBackendSession`` of ``crossbar.worker.proxy`` (or ``module``); True if patched now."""
    if module is None:
        try:
            from crossbar.worker import proxy as module
        except ImportError as error:
            raise PatchUnavailable(str(error))
    session = getattr(module, "ProxyBackendSession", None)
    if session is None or not hasattr(session, "onLeave") or not hasattr(session, "onClose"):
        raise PatchUnavailable("crossbar.worker.proxy has no ProxyBackendSession with onLeave and onClose")
    on_leave = unpatched(session, "onLeave", PATCHED)
    on_close = unpatched(session, "onClose", PATCHED)
    if on_leave is None and on_close is None:
        return False
    if on_leave is None or on_close is None:
        raise PatchUnavailable("ProxyBackendSession is partly patched already")
    _GRACE[0] = session_cutoff.grace_from_environment()
    session.onLeave = remembering(on_leave)
    session.onClose = forwarding(on_close)
    return True
