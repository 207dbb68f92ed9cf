"""
A cheaper per-message send path for Crossbar router and proxy workers.

Fan-out (one event to thousands of WebSocket subscribers) costs a router
worker ~30-45 µs of CPU per subscriber and event; profiled at 20,000
events/s (bench/fanout.py), most of it is not routing but:

- autobahn's ``WampWebSocketProtocol.send`` and ``sendData`` format their
  trace and debug log arguments (seven coloured ``hlval`` strings) for every
  message, whatever the log level (~12% of the worker);
- the ``sendMessage -> sendFrame -> sendData`` chain re-derives, per message,
  options that are fixed for a connection (compression, fragmentation,
  masking, frame logging);
- Twisted's TCP ``write`` never writes at once: it buffers, registers the
  socket for EPOLLOUT (a syscall), and on the next reactor turn dispatches
  ``doWrite`` through ``callWithLogger``, sends, and unregisters (another
  syscall): ~35% of the worker for one ``send`` syscall.

``install()`` replaces these methods:

``tcp.Connection.write`` tries ``socket.send`` at once when nothing is
queued (the "optimistic write" libuv and Node do) on TCP connections that
have TCP_NODELAY set (recorded by the wrapped ``setTcpNoDelay``; Crossbar's
WebSocket transports set it by default). Whatever the kernel does not take,
and every error, goes through Twisted's own buffered path, so back-pressure,
producers, half-close and connection loss behave as before. Twisted's path
stays in charge where an immediate send would change behaviour:

- without TCP_NODELAY, Nagle would hold the second of two writes in one
  reactor turn for a delayed ACK (~40 ms) instead of them leaving together;
- Unix-socket connections (file-descriptor passing rides on buffered bytes);
- after ``abortConnection()``, whose contract is to drop unsent data;
- while a pull producer is registered (``doWrite`` is what asks it for more;
  the wrapped ``registerProducer`` also schedules one ``doWrite`` so a pull
  producer registered after an immediate write is asked again);
- connections that started TLS on themselves (``startTLS``); TLS endpoints
  (``TLSMemoryBIOProtocol``) write their encrypted records through it.

Known differences: several writes to one socket in one reactor turn now
leave as several segments (one per write) rather than one; and a peer reset
that an immediate send sees first is reported by the next read as a clean
close (``ConnectionDone``) instead of ``ConnectionLost``.

``WampWebSocketProtocol.send`` builds the unmasked, unfragmented,
uncompressed frame itself and writes it when the connection is a server
side in the open state with nothing queued, none of those options and the
log level above debug; otherwise it calls autobahn's method. Same bytes on
the wire, same traffic counters.

The patch registry installs it in router and proxy workers (unless
``HUB_PATCHES_OFF`` names ``fast_send`` or ``HUB_FAST_SEND=off``). A release
that no longer has the internals read here takes the library's own path:
``install()`` raises ``PatchUnavailable`` and the registry logs one info line.
"""

import socket
import struct

from components.node.patches import PatchUnavailable, replacement, unpatched

NAME = "fast_send"
SECURITY = False
WORKERS = ("router", "proxy")
SUMMARY = ("WAMP messages framed and written at once (optimistic TCP write, no per-message log formatting): "
           "fan-out CPU per subscriber")
UPSTREAM = "docs/upstream/fast_send.patch"
VERIFIED = {"Twisted": "26.10.0", "autobahn": "26.11.1"}

PATCHED = "_reactive_hub_fast_send"
VERBOSE_LEVELS = ("trace", "debug")

_MEDIUM = struct.Struct("!BBH")
_LARGE = struct.Struct("!BBQ")


def frame(payload, is_binary):
    """One final, unmasked WebSocket data frame carrying ``payload``."""
    first = 0x82 if is_binary else 0x81
    length = len(payload)
    if length <= 125:
        return bytes((first, length)) + payload
    if length <= 0xFFFF:
        return _MEDIUM.pack(first, 126, length) + payload
    return _LARGE.pack(first, 127, length) + payload


IMMEDIATE = "_reactive_hub_immediate"


def recording_no_delay(set_no_delay):
    """``Connection.setTcpNoDelay`` that also records whether the socket now really has TCP_NODELAY."""

    def setTcpNoDelay(self, enabled):
        set_no_delay(self, enabled)
        try:
            immediate = (bool(enabled) and self.socket.family in (socket.AF_INET, socket.AF_INET6)
                         and bool(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        except (OSError, AttributeError):
            immediate = False
        setattr(self, IMMEDIATE, immediate)

    return replacement(setTcpNoDelay, recording_no_delay, PATCHED)


def pull_producer_rewakes(register_producer):
    """``registerProducer`` that schedules a ``doWrite`` for a pull producer on an immediate-write connection."""

    def registerProducer(self, producer, streaming):
        register_producer(self, producer, streaming)
        if not streaming and getattr(self, IMMEDIATE, False) and self.producer is producer and self.connected:
            # stock Twisted asks a pull producer again once earlier writes drained; those may have gone out
            # already, so let doWrite (with whatever is buffered now) ask it
            self.startWriting()

    return replacement(registerProducer, pull_producer_rewakes, PATCHED)


def optimistic_write(buffered_write):
    """``Connection.write`` that sends at once when nothing is queued, else ``buffered_write``."""

    def write(self, data):
        try:
            idle = (data.__class__ is bytes and data and getattr(self, IMMEDIATE, False) and self.connected
                    and not self.TLS and not self.disconnecting and not self._aborting
                    and not self._writeDisconnected and not self._tempDataLen
                    and self.offset == len(self.dataBuffer)
                    and (self.producer is None or self.streamingProducer))
        except AttributeError:  # a Twisted release that keeps its buffer differently: its own path
            idle = False
        if idle:
            try:
                sent = self.socket.send(data)
            except OSError:
                # would block, interrupted, or a real error: the buffered path retries or reports it
                sent = 0
            if sent == len(data):
                return
            if sent:
                data = data[sent:]
        buffered_write(self, data)

    return replacement(write, optimistic_write, PATCHED)


def direct_wamp_send(general_send, open_state):
    """``WampWebSocketProtocol.send`` that frames and writes in one step when nothing else applies."""

    def send(self, msg):
        try:
            general = (self._session is None or self.state != open_state or self.send_queue
                       or self._perMessageCompress is not None or self.autoFragmentSize or self.logFrames
                       or self.trackedTimings or not self.factory.isServer or self.maskServerFrames
                       or getattr(self.log, "_log_level", "trace") in VERBOSE_LEVELS)
        except AttributeError:  # an autobahn release without these options: its own path
            general = True
        if general:
            return general_send(self, msg)
        try:
            payload, is_binary = self._serializer.serialize(msg)
        except Exception:
            # autobahn's path logs and raises its SerializationError for this message
            return general_send(self, msg)
        length = len(payload)
        if 0 < self.maxMessagePayloadSize < length:
            # autobahn's sendMessage logs and raises PayloadExceededError (without serialising again)
            return self.sendMessage(payload, is_binary)
        data = frame(payload, is_binary)
        self.transport.write(data)
        stats = self.trafficStats
        stats.outgoingWebSocketMessages += 1
        stats.outgoingWebSocketFrames += 1
        stats.outgoingOctetsAppLevel += length
        stats.outgoingOctetsWebSocketLevel += length
        stats.outgoingOctetsWireLevel += len(data)

    return replacement(send, direct_wamp_send, PATCHED)


def install(connection_class=None, wamp_protocol_class=None):
    """Patch Twisted's TCP connection and autobahn's WAMP-over-WebSocket send; True if patched now."""
    try:
        if connection_class is None:
            from twisted.internet.tcp import Connection as connection_class
        if wamp_protocol_class is None:
            from autobahn.wamp.websocket import WampWebSocketProtocol as wamp_protocol_class
        from autobahn.websocket.protocol import WebSocketProtocol
    except ImportError as error:
        raise PatchUnavailable(str(error))
    names = ("write", "setTcpNoDelay", "registerProducer")
    if (all(getattr(getattr(connection_class, name, None), PATCHED, False) for name in names)
            and getattr(getattr(wamp_protocol_class, "send", None), PATCHED, False)):
        return False
    missing = ["{}.{}".format(connection_class.__name__, name) for name in names if not hasattr(connection_class, name)]
    missing += [] if hasattr(wamp_protocol_class, "send") else ["{}.send".format(wamp_protocol_class.__name__)]
    missing += [] if hasattr(WebSocketProtocol, "STATE_OPEN") else ["WebSocketProtocol.STATE_OPEN"]
    if missing:
        raise PatchUnavailable("missing " + ", ".join(missing))
    write, set_no_delay, register_producer = originals = [
        unpatched(connection_class, name, PATCHED) for name in names]
    send = unpatched(wamp_protocol_class, "send", PATCHED)
    if send is None or None in originals:
        raise PatchUnavailable("partly patched already")
    connection_class.setTcpNoDelay = recording_no_delay(set_no_delay)
    connection_class.registerProducer = pull_producer_rewakes(register_producer)
    connection_class.write = optimistic_write(write)
    wamp_protocol_class.send = direct_wamp_send(send, WebSocketProtocol.STATE_OPEN)
    return True
