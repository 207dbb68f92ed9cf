"""
A bound on the bytes a WAMP-over-WebSocket connection may leave unsent.

A client that stops reading keeps everything the router sends it: the
kernel's socket buffers fill, then Twisted queues in the transport's
``dataBuffer``/``_tempDataBuffer`` without limit (2,000 ``iot.history``
answers queued 150 MB until the WebSocket ping timed out). Crossbar and
autobahn offer no bound on it.

``install()`` wraps ``onOpen`` of Crossbar's ``WampWebSocketServerProtocol``
(router and proxy workers' ``/ws``) to make a :class:`SendQueueBound` the
streaming producer of the TCP transport (in front of twisted.web's
``HTTPChannel``, which stays registered there when the WebSocket came through
a web resource, and keeps its part: it stops reading from a client whose
answers back up). Twisted itself asks a streaming producer
to ``pauseProducing()`` on each write that finds more than its
``bufferSize`` (64 KiB) unsent; only then does the bound count the unsent
bytes, and past ``SESSION_SEND_QUEUE_LIMIT`` it aborts the connection (which
drops the queued bytes at once), releases the queue and logs one line. A
connection that keeps up (everything written goes out at once) pays nothing
per message: no producer call, no count. ``resumeProducing()`` (the queue
drained) lets a connection that is closing finish as without a producer.

Router-link connections (authrole ``rlink``) carry a whole other node's
traffic and are not bounded. RawSocket transports are not bounded: the hub
serves them on Unix sockets to its own proxy and container workers only.
"""

from twisted.logger import Logger

from components.node.patches import PatchUnavailable, replacement, unpatched
from components.node.patches.session_bounds import bounds_from_environment

NAME = "send_bound"
SECURITY = True
WORKERS = ("router", "proxy")
SUMMARY = "a WebSocket connection with more than SESSION_SEND_QUEUE_LIMIT unsent bytes is closed"
UPSTREAM = "docs/upstream/send_bound.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}

PATCHED = "_reactive_hub_send_bound"
UNBOUNDED_ROLES = ("rlink",)
# what the bound reads of Twisted's TCP transports
_BUFFER_STATE = ("dataBuffer", "offset", "_tempDataBuffer", "_tempDataLen")

log = Logger(namespace="reactive_hub.send_bound")


def buffer_holder(transport):
    """The Twisted file descriptor that queues ``transport``'s unsent bytes (through TLS), or None."""
    for _ in range(4):
        if transport is None:
            return None
        if all(hasattr(transport, name) for name in _BUFFER_STATE):
            return transport
        transport = getattr(transport, "transport", None)
    return None


def unsent(holder):
    """Bytes queued in ``holder`` (a Twisted file descriptor) and not yet handed to the kernel."""
    return len(holder.dataBuffer) - holder.offset + holder._tempDataLen


class SendQueueBound:
    """
    The streaming producer of one WebSocket connection: closes it when Twisted
    reports a full buffer and the unsent bytes exceed ``limit``. It stands in
    front of the producer the transport had (twisted.web's ``HTTPChannel``,
    which stops reading from a client whose answers back up, when the
    WebSocket came through a web resource) and passes every call on to it.
    """

    def __init__(self, protocol, holder, limit, inner=None):
        self.protocol = protocol
        self.holder = holder
        self.limit = limit
        self.inner = inner
        self.tripped = False

    def pauseProducing(self):
        holder = self.holder
        if self.tripped:
            self._release(holder)
            return
        if self.inner is not None:
            self.inner.pauseProducing()
        queued = unsent(holder)
        if queued <= self.limit:
            return
        session = getattr(self.protocol, "_session", None)
        if getattr(session, "_authrole", None) in UNBOUNDED_ROLES:
            return
        self.tripped = True
        log.warn("send queue bound: {peer} (session {session}, authid {authid}) left {queued} bytes unsent, "
                 "more than SESSION_SEND_QUEUE_LIMIT={limit}; connection closed",
                 peer=getattr(self.protocol, "peer", "?"), session=getattr(session, "_session_id", None),
                 authid=getattr(session, "_authid", None), queued=queued, limit=self.limit)
        self.protocol.transport.abortConnection()
        self._release(holder)

    @staticmethod
    def _release(holder):
        # abortConnection drops the unsent bytes anyway; dropping them now frees them before the close
        holder.dataBuffer = b""
        holder.offset = 0
        holder._tempDataBuffer = []
        holder._tempDataLen = 0

    def resumeProducing(self):
        if self.inner is not None:
            self.inner.resumeProducing()
        transport = self.holder
        if getattr(transport, "disconnecting", False) and getattr(transport, "producer", None) is self:
            # Twisted closes a drained, closing connection only when no paused producer is registered
            transport.unregisterProducer()

    def stopProducing(self):
        inner, self.inner, self.protocol = self.inner, None, None
        if inner is not None:
            inner.stopProducing()


def watch(protocol, transport, limit):
    """
    Put a :class:`SendQueueBound` of ``limit`` bytes on ``transport``: as its
    producer, or in front of the streaming producer it has. False (nothing
    done) when the transport keeps no Twisted write buffer or has a pull producer.
    """
    holder = buffer_holder(transport)
    if holder is None:
        return False
    current = getattr(holder, "producer", None)
    if current is None:
        holder.registerProducer(SendQueueBound(protocol, holder, limit), True)
        return True
    if isinstance(current, SendQueueBound) or not getattr(holder, "streamingProducer", False):
        return isinstance(current, SendQueueBound)
    holder.producer = SendQueueBound(protocol, holder, limit, inner=current)
    return True


def bounded_open(on_open, limit):
    """``WampWebSocketServerProtocol.onOpen`` that registers a :class:`SendQueueBound` of ``limit`` bytes."""

    def onOpen(self):
        transport = self.transport
        if not watch(self, transport, limit):
            log.warn("send queue bound: {peer} has a transport whose write buffer cannot be watched ({kind}); "
                     "its send queue is not bounded", peer=getattr(self, "peer", "?"), kind=type(transport).__name__)
        return on_open(self)

    return replacement(onOpen, bounded_open, PATCHED)


def install(limit=None, protocol_class=None, connection_class=None):
    """
    Wrap ``onOpen`` (``limit`` read from ``SESSION_SEND_QUEUE_LIMIT`` when not
    given); True if patched now, False if already. PatchUnavailable when
    Crossbar's protocol or Twisted's TCP transport differ from the verified ones.
    """
    try:
        if protocol_class is None:
            from crossbar.router.protocol import WampWebSocketServerProtocol as protocol_class
        if connection_class is None:
            from twisted.internet.tcp import Connection as connection_class
    except ImportError as error:
        raise PatchUnavailable("crossbar's WebSocket protocol or Twisted's TCP transport: {}".format(error))
    original = unpatched(protocol_class, "onOpen", PATCHED)
    if original is None:
        return False
    _check_transport(connection_class)
    if limit is None:
        limit = bounds_from_environment().send_queue
    protocol_class.onOpen = bounded_open(original, limit)
    return True


def _check_transport(connection_class):
    """PatchUnavailable unless Twisted's TCP transport still queues and pauses producers as read here."""
    import inspect

    from twisted.internet import abstract
    try:
        source = inspect.getsource(abstract.FileDescriptor)
    except (OSError, TypeError):
        raise PatchUnavailable("cannot read twisted.internet.abstract.FileDescriptor")
    needed = ["self.{}".format(name) for name in _BUFFER_STATE] + ["self.producer.pauseProducing()",
                                                                 "def _maybePauseProducer"]
    missing = [text for text in needed if text not in source]
    if missing or not issubclass(connection_class, abstract.FileDescriptor):
        raise PatchUnavailable("Twisted's FileDescriptor no longer has {}".format(", ".join(missing) or
                                                                                 "the TCP connection as subclass"))
    for name in ("abortConnection", "registerProducer", "unregisterProducer"):
        if not hasattr(connection_class, name):
            raise PatchUnavailable("Twisted's TCP connection has no {}".format(name))
