"""
What the wire patches (``frame_depth``, ``auth_deadline``) do when they end
a connection: one log line whose length the peer cannot choose, at a bounded
rate, and a close that does not wait for the peer's cooperation. A helper
module, not a patch (the registry does not list it).
"""

import time

from twisted.logger import Logger

from components.core.ratelimit import RateLimiter

# what a peer's text may add to a line (an exception message quoting its data is cut here)
TEXT_LIMIT = 200
# seconds a closed connection may take to flush before it is aborted
ABORT_AFTER = 2.0
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY_VIOLATION = 1008
CLOSE_INTERNAL_ERROR = 1011
_CLOSE_REASON_BYTES = 123  # the most a WebSocket close frame's reason may carry


def clipped(text, limit=TEXT_LIMIT):
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(str(text)[:limit * 2].split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class RefusalLog:
    """
    One warn line per refused or closed connection, at most ``burst`` at once
    and ``rate`` per second in the process. Lines left out meanwhile are
    counted, and the count is logged a second after the first of them (or
    with the next line let through, if sooner), so a flood of bad frames costs
    the node's log a few lines a second and still shows in it.
    ``reactor`` (for that one delayed line) is looked up when first needed.
    """

    def __init__(self, logger=None, rate=5.0, burst=20, clock=time.monotonic, reactor=None):
        self.log = logger or Logger(namespace="reactive_hub.wire")
        self.limiter = RateLimiter(rate, burst, clock=clock, max_keys=1)
        self.delay = 1.0
        self.reactor = reactor
        self.left_out = 0
        self._flush = None

    def note(self, line):
        """Log ``line`` (already clipped by the caller) unless the rate is exceeded."""
        allowed, _retry = self.limiter.check("lines")
        if not allowed:
            self.left_out += 1
            if self._flush is None:
                if self.reactor is None:
                    from twisted.internet import reactor
                    self.reactor = reactor
                self._flush = self.reactor.callLater(self.delay, self.flush)
            return
        self.log.warn("{line}{suffix}", line=line, suffix=self._left_out_text(" ({} more such lines left out)"))

    def flush(self):
        """Log how many lines were left out since the last line, if any."""
        self._flush = None
        text = self._left_out_text("reactive hub: {} more lines like the last one left out")
        if text:
            self.log.warn("{line}", line=text)

    def _left_out_text(self, template):
        count, self.left_out = self.left_out, 0
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
            self._flush = None
        return template.format(count) if count else ""


def welcomed(protocol):
    """True while the connection's WAMP session has a session id (given just before WELCOME, taken at its end;
    router and proxy frontend sessions alike)."""
    session = getattr(protocol, "_session", None)
    return getattr(session, "_session_id", None) is not None


def peer_of(protocol):
    """The peer of a WAMP transport protocol as autobahn names it (``tcp4:1.2.3.4:5678``), clipped."""
    return clipped(getattr(protocol, "peer", None) or "an unknown peer", 120)


def _lose(transport, clock):
    """Close ``transport`` after its buffer is written; abort it ``ABORT_AFTER`` seconds later if still open."""
    if transport is None:
        return
    transport.loseConnection()
    if clock is None:
        from twisted.internet import reactor as clock
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        clock.callLater(ABORT_AFTER, abort)


def close_websocket(protocol, code, reason, clock=None):
    """
    End a WAMP-over-WebSocket connection now: a close frame with ``code``
    and ``reason`` when the WebSocket is open, then the TCP connection is
    closed without waiting for the peer's close frame.
    """
    from autobahn.websocket.protocol import WebSocketProtocol
    if getattr(protocol, "state", None) == WebSocketProtocol.STATE_OPEN:
        protocol.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:_CLOSE_REASON_BYTES], isReply=False)
    _lose(protocol.transport, clock)


def close_rawsocket(protocol, code=None, reason=None, clock=None):
    """End a WAMP-over-RawSocket connection now (RawSocket has no close frame: ``code``, ``reason`` unused)."""
    _lose(protocol.transport, clock)
