"""
Malformed WAMP messages are refused cheaply: bounded nesting, one log line,
the connection closed.

autobahn decodes every WAMP message a client sends before anything else
looks at it, and its JSON decoder is the pure-Python one, which recurses once
per nesting level: ``"[" * 100000 + "]" * 100000`` (200 KB, under the message
size limit) sent right after the WebSocket upgrade raised RecursionError, and
autobahn logged the whole traceback (about 300,000 lines) at critical. The
worker blocked writing it to the controller, which spent a minute at full
CPU formatting it: ``/health``, logins and calls stalled 60 s, and one such
frame per proxy worker froze a client node.

``install()`` replaces the two places autobahn hands a received message to
its serializer: ``WampWebSocketProtocol.onMessage`` (every WAMP-over-WebSocket
connection: the web transport's ``/ws`` in router and proxy workers, the
router links) and ``WampRawSocketProtocol.stringReceived`` (RawSocket, e.g.
the proxies' and containers' Unix sockets). Before decoding, the message is
walked by ``components.core.nesting`` (JSON, MessagePack, CBOR, batched or
not; any other serializer is refused): one nested deeper than
``WAMP_MAX_DEPTH`` levels (default 64) or holding more than
``WAMP_MAX_CONTAINERS`` arrays and maps (default 100,000), or one the walk or
the decoder cannot read, or one the session refuses as a protocol violation,
ends the connection (WebSocket close 1002, RawSocket closed) with one warn line naming
the peer, the size and the reason (clipped to 200 characters), at most 5 such
lines a second after a burst of 20 (``wireclose.RefusalLog``). An unexpected
error inside the session (a bug, not the peer's doing) still logs its
traceback, bounded to the innermost 20 frames and a clipped message. Apart
from the walk nothing changes: same decoder, same dispatch (only autobahn's
trace-level line per received message is gone).

Until the connection's session is welcomed (HELLO, AUTHENTICATE: well under
2 KB), a message larger than ``WAMP_PREAUTH_MAX_BYTES`` (default 16 KiB) is
refused the same way before any walk or decode: a 1 MB frame of a million
empty MessagePack arrays cost the decoder 0.6-0.9 s and stalled the router
that long for everyone, sent by anyone who could open a WebSocket. On a
WebSocket this is checked when a frame's header arrives
(``WebSocketProtocol.onMessageFrameBegin`` is wrapped for WAMP connections):
the connection is closed before the rest of the frame is read or unmasked,
and autobahn drops what was already buffered (``failedByMe``).
"""

import traceback

from components.core import nesting
from components.core.settings import Settings
from components.node import node_settings
from components.node.patches import PatchUnavailable, names_used, replacement, unpatched
from components.node.patches.wireclose import (CLOSE_INTERNAL_ERROR, CLOSE_PROTOCOL_ERROR, RefusalLog, clipped,
                                               close_rawsocket, close_websocket, peer_of, welcomed)

NAME = "frame_depth"
SECURITY = True
WORKERS = ("router", "proxy")
SUMMARY = ("WAMP messages nested deeper than WAMP_MAX_DEPTH, holding more than WAMP_MAX_CONTAINERS containers, "
           "larger than WAMP_PREAUTH_MAX_BYTES before authentication, or undecodable, are refused before decoding: "
           "one log line, connection closed")
UPSTREAM = "docs/upstream/frame_depth.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}

PATCHED = "_reactive_hub_frame_depth"
DEFAULT_DEPTH = node_settings.WAMP_MAX_DEPTH.default
DEFAULT_CONTAINERS = node_settings.WAMP_MAX_CONTAINERS.default
DEFAULT_PREAUTH_BYTES = node_settings.WAMP_PREAUTH_MAX_BYTES.default
# cbor2 refuses more than 400 levels by itself; a Python decoder recursing beyond that would fail anyway
MAXIMUM_DEPTH = node_settings.WAMP_MAX_DEPTH.maximum
TRACEBACK_FRAMES = 20
# what the replaced methods are seen to use, checked before replacing them
_WEBSOCKET_NAMES = ("_serializer", "unserialize", "_session", "onMessage")
_FRAME_BEGIN_NAMES = ("message_data_total_length", "maxMessagePayloadSize")
_RAWSOCKET_NAMES = ("_serializer", "unserialize", "_session", "onMessage", "abort")


def _settings(argv, environ):
    return Settings.of_process(argv, environ)


def depth_from_environment(argv=None, environ=None):
    """``WAMP_MAX_DEPTH`` as this worker's environment sets it (SettingsError naming a malformed value)."""
    return _settings(argv, environ).get(node_settings.WAMP_MAX_DEPTH)


def bounds_from_environment(argv=None, environ=None):
    """``(WAMP_MAX_CONTAINERS, WAMP_PREAUTH_MAX_BYTES)`` as this worker's environment sets them (0: no bound,
    None returned)."""
    settings = _settings(argv, environ)
    containers = settings.get(node_settings.WAMP_MAX_CONTAINERS)
    preauth = settings.get(node_settings.WAMP_PREAUTH_MAX_BYTES)
    return containers or None, preauth or None


def decoded(serializer, payload, is_binary, limit, containers=None):
    """
    The WAMP messages of ``payload`` from autobahn's ``serializer``, after the
    nesting walk (NestingError, or the decoder's own error, when refused).
    ``is_binary`` None: a RawSocket payload (no frame type to check).
    """
    inner = serializer._serializer
    nesting.check(inner.NAME, payload, limit, batched=getattr(inner, "_batched", False), containers=containers)
    if is_binary is None:
        return serializer.unserialize(payload)
    return serializer.unserialize(payload, is_binary)


def _reason(error):
    text = clipped(error)
    return "{}: {}".format(type(error).__name__, text) if not isinstance(error, nesting.NestingError) else text


def bounded_traceback(error):
    """The traceback of ``error``: its innermost ``TRACEBACK_FRAMES`` frames and a clipped message."""
    frames = traceback.format_tb(error.__traceback__)[-TRACEBACK_FRAMES:]
    return "Traceback (innermost {} frames):\n{}{}: {}".format(
        TRACEBACK_FRAMES, "".join(frames), type(error).__name__, clipped(error))


class Guard:
    """The bounds (depth, containers, bytes before the welcome; None: unbounded) and the refusal log of one
    worker process."""

    def __init__(self, limit, refusals=None, containers=DEFAULT_CONTAINERS, preauth_bytes=DEFAULT_PREAUTH_BYTES):
        self.limit = limit
        self.containers = containers
        self.preauth_bytes = preauth_bytes
        self.refusals = refusals or RefusalLog()

    def too_large(self, protocol, size):
        """The reason to refuse a message of ``size`` bytes unread (larger than allowed before the welcome),
        or None."""
        if self.preauth_bytes is None or size <= self.preauth_bytes or welcomed(protocol):
            return None
        return "more than {} bytes before authentication".format(self.preauth_bytes)

    def describe(self):
        return "{} levels, {} containers, {} bytes before authentication".format(
            self.limit, self.containers or "unbounded", self.preauth_bytes or "unbounded")

    def refuse(self, protocol, size, serializer, reason, what="message"):
        self.refusals.note("reactive hub: refused a WAMP {} from {} ({} bytes, {}): {}; connection closed".format(
            what, peer_of(protocol), size, getattr(getattr(serializer, "_serializer", None), "NAME", "?"), reason))

    def failed(self, protocol, error):
        self.refusals.log.critical("reactive hub: internal error handling a WAMP message from {peer}; connection "
                                   "closed\n{tb}", peer=peer_of(protocol), tb=bounded_traceback(error))


def _receive(guard, protocol, payload, is_binary, close):
    """Walk, decode and dispatch ``payload``; a refusal is one line and ``close(protocol, code, reason)``."""
    from autobahn.wamp.exception import ProtocolError, SerializationError
    from twisted.internet.defer import CancelledError

    serializer = protocol._serializer
    unread = guard.too_large(protocol, len(payload))
    if unread is not None:
        guard.refuse(protocol, len(payload), serializer, unread)
        close(protocol, CLOSE_PROTOCOL_ERROR, "WAMP message refused")
        return
    try:
        messages = decoded(serializer, payload, is_binary, guard.limit, guard.containers)
    except Exception as error:
        guard.refuse(protocol, len(payload), serializer, _reason(error))
        close(protocol, CLOSE_PROTOCOL_ERROR, "WAMP message refused")
        return
    for message in messages:
        session = protocol._session
        if session is None:
            return
        try:
            session.onMessage(message)
        except CancelledError:
            continue  # a cancelled call: the connection goes on (as autobahn's RawSocket has it)
        except (ProtocolError, SerializationError) as error:
            guard.refuse(protocol, len(payload), serializer, _reason(error), what="protocol violation")
            close(protocol, CLOSE_PROTOCOL_ERROR, "WAMP protocol violation")
            return
        except Exception as error:
            guard.failed(protocol, error)
            close(protocol, CLOSE_INTERNAL_ERROR, "WAMP internal error")
            return


def guarded_frame_begin(guard, frame_begin):
    """``onMessageFrameBegin`` of WAMP WebSockets: a message announced larger than allowed before the welcome
    is refused at its frame header (one line, close), the rest of it unread."""

    def onMessageFrameBegin(self, length):
        if not self.failedByMe:
            announced = self.message_data_total_length + length
            unread = guard.too_large(self, announced)
            if unread is not None:
                self.failedByMe = True  # autobahn drops the rest of the message
                guard.refuse(self, announced, self._serializer, unread)
                close_websocket(self, CLOSE_PROTOCOL_ERROR, "WAMP message refused")
                return None
        return frame_begin(self, length)

    return onMessageFrameBegin


def guarded_websocket_message(guard):
    """``WampWebSocketProtocol.onMessage``: walk, decode, dispatch; a refusal is one line and a close frame."""

    def onMessage(self, payload, isBinary):
        _receive(guard, self, payload, isBinary, close_websocket)

    return onMessage


def guarded_rawsocket_message(guard):
    """``WampRawSocketProtocol.stringReceived``: the same for RawSocket (a refusal closes the connection)."""

    def stringReceived(self, payload):
        _receive(guard, self, payload, None, close_rawsocket)

    return stringReceived


def _check(klass, method, names):
    """Raise PatchUnavailable unless ``klass.method`` exists and uses ``names`` (or is already replaced)."""
    current = getattr(klass, method, None)
    if current is None:
        raise PatchUnavailable("{}.{} is missing".format(klass.__name__, method))
    if getattr(current, PATCHED, False):
        return
    missing = [name for name in names if name not in names_used(current)]
    if missing:
        raise PatchUnavailable("{}.{} no longer uses {}".format(klass.__name__, method, ", ".join(missing)))


def _check_resolution(server_class, base_class, method):
    """Raise PatchUnavailable when ``server_class`` (what Crossbar runs) does not use ``base_class.method``."""
    if getattr(server_class, method, None) is not getattr(base_class, method, None):
        raise PatchUnavailable("{}.{} is not {}.{}: the replaced method would not be called".format(
            server_class.__name__, method, base_class.__name__, method))


def install(limit=None, websocket_class=None, rawsocket_class=None, server_classes=None, frame_class=None):
    """
    Replace the WebSocket and RawSocket message handlers and the WAMP
    WebSocket server's frame-header hook (classes default to autobahn's;
    ``frame_class`` to ``websocket_class`` when that is given; ``limit`` to
    ``WAMP_MAX_DEPTH``); the bounds as a note if
    replaced now, False if already. PatchUnavailable when the handlers differ
    from the verified ones or Crossbar's server protocols do not use them.
    """
    try:
        from autobahn.twisted.rawsocket import WampRawSocketProtocol
        from autobahn.twisted.websocket import WampWebSocketServerProtocol
        from autobahn.wamp.websocket import WampWebSocketProtocol
        from crossbar.router import protocol as crossbar_protocol
    except ImportError as error:
        raise PatchUnavailable("cannot import autobahn's or crossbar's WAMP transports: {}".format(error))
    # the WAMP mixin has no frame hooks: they are WebSocketProtocol's, replaced on autobahn's WAMP server class
    frame_class = frame_class or websocket_class or WampWebSocketServerProtocol
    websocket_class = websocket_class or WampWebSocketProtocol
    rawsocket_class = rawsocket_class or WampRawSocketProtocol
    if server_classes is None:
        server_classes = ((crossbar_protocol.WampWebSocketServerProtocol, websocket_class, "onMessage"),
                          (crossbar_protocol.WampWebSocketServerProtocol, frame_class, "onMessageFrameBegin"),
                          (crossbar_protocol.WampRawSocketServerProtocol, rawsocket_class, "stringReceived"))
    _check(websocket_class, "onMessage", _WEBSOCKET_NAMES)
    _check(frame_class, "onMessageFrameBegin", _FRAME_BEGIN_NAMES)
    _check(rawsocket_class, "stringReceived", _RAWSOCKET_NAMES)
    for server_class, base_class, method in server_classes:
        _check_resolution(server_class, base_class, method)
    websocket_original = unpatched(websocket_class, "onMessage", PATCHED)
    frame_begin = unpatched(frame_class, "onMessageFrameBegin", PATCHED)
    rawsocket_original = unpatched(rawsocket_class, "stringReceived", PATCHED)
    if websocket_original is None and rawsocket_original is None:
        return False
    containers, preauth_bytes = bounds_from_environment()
    guard = Guard(depth_from_environment() if limit is None else limit, containers=containers,
                  preauth_bytes=preauth_bytes)
    if websocket_original is not None:
        websocket_class.onMessage = replacement(guarded_websocket_message(guard), guarded_websocket_message, PATCHED)
    if frame_begin is not None:
        frame_class.onMessageFrameBegin = replacement(guarded_frame_begin(guard, frame_begin),
                                                          guarded_frame_begin, PATCHED)
    if rawsocket_original is not None:
        rawsocket_class.stringReceived = replacement(guarded_rawsocket_message(guard), guarded_rawsocket_message,
                                                     PATCHED)
    return guard.describe()
