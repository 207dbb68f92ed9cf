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

``install()`` replaces two methods:

``tcp.Connection.write`` (TCP and Unix-socket connections) tries
``socket.send`` at once when nothing is buffered (the "optimistic write"
libuv and Node do); whatever the kernel does not take, and every error,
goes through Twisted's own buffered path unchanged, so back-pressure,
producers, half-close and connection loss behave as before. TLS-started
connections, and connections with a pull producer (which Twisted asks for
more from ``doWrite``, so every write must go through the buffer), keep
Twisted's path.

``WampWebSocketProtocol.send`` builds the unmasked, unfragmented,
uncompressed frame itself and writes it when the connection is a server
side in the open state with none of those options and the log level is
above debug; otherwise it calls autobahn's method. Same bytes on the wire,
same traffic counters.

``crossbar_site/sitecustomize.py`` installs it in router and proxy worker
processes (unless ``HUB_FAST_SEND=off``); each logs ``INSTALLED_NOTE``.
``install()`` is a no-op when a Crossbar/autobahn/Twisted release moved
what it replaces.
"""

import struct

PATCHED = "_reactive_hub_fast_send"
INSTALLED_NOTE = "reactive hub: fast send path installed in this worker"
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


def optimistic_write(buffered_write):
    """``Connection.write`` that sends at once when nothing is queued, else ``buffered_write``."""

    def write(self, data):
        try:
            idle = (data.__class__ is bytes and data and self.connected and not self.TLS and not self.disconnecting
                    and not self._writeDisconnected and not self._tempDataLen
                    and self.offset == len(self.dataBuffer) and not getattr(self, "_sendmsgQueue", None)
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

    write.__doc__ = optimistic_write.__doc__
    setattr(write, PATCHED, True)
    return write


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
            return general_send(self, msg)
        data = frame(payload, is_binary)
        self.transport.write(data)
        stats = self.trafficStats
        stats.outgoingWebSocketMessages += 1
        stats.outgoingWebSocketFrames += 1
        stats.outgoingOctetsAppLevel += length
        stats.outgoingOctetsWebSocketLevel += length
        stats.outgoingOctetsWireLevel += len(data)

    send.__doc__ = direct_wamp_send.__doc__
    setattr(send, PATCHED, True)
    return send


def install(connection_class=None, wamp_protocol_class=None):
    """Patch Twisted's TCP connection and autobahn's WAMP-over-WebSocket send; True if patched now."""
    try:
        if connection_class is None:
            from twisted.internet.tcp import Connection as connection_class
        if wamp_protocol_class is None:
            from autobahn.wamp.websocket import WampWebSocketProtocol as wamp_protocol_class
        from autobahn.websocket.protocol import WebSocketProtocol
    except ImportError:
        return False
    write = getattr(connection_class, "write", None)
    send = getattr(wamp_protocol_class, "send", None)
    if write is None or send is None or getattr(write, PATCHED, False) or getattr(send, PATCHED, False):
        return False
    connection_class.write = optimistic_write(write)
    wamp_protocol_class.send = direct_wamp_send(send, WebSocketProtocol.STATE_OPEN)
    return True


def wanted(argv, environ):
    """True for a Crossbar router or proxy worker's command line, unless ``HUB_FAST_SEND=off``."""
    if environ.get("HUB_FAST_SEND", "on").strip().lower() == "off":
        return False
    try:
        klass = argv[argv.index("--klass") + 1]
    except (ValueError, IndexError):
        return False
    return "crossbar.worker.main" in argv and klass.startswith(("crossbar.worker.router.",
                                                                  "crossbar.worker.proxy."))
