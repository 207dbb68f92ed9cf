"""
components.node.patches.fast_send: the same bytes on the wire as autobahn's own send path,
Twisted's buffered write for everything the optimistic write cannot finish,
and the switch that decides which worker processes get it.
"""

import os
import socket

from autobahn.twisted.websocket import WampWebSocketServerFactory
from autobahn.wamp import message
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.websocket import WampWebSocketProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from twisted.internet import tcp, unix
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from components.node.patches import PatchUnavailable, fast_send

GENERAL_SEND = WampWebSocketProtocol.send
BUFFERED_WRITE = tcp.Connection.write


class _Session:
    _authid = "alice"
    _session_id = 1


def open_protocol(serializer):
    """An autobahn WAMP-over-WebSocket protocol in the open state, writing to a StringTransport."""
    factory = WampWebSocketServerFactory(lambda: None, serializers=[serializer])
    factory.setProtocolOptions(openHandshakeTimeout=0)  # no timer left in the global reactor
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.state = WebSocketProtocol.STATE_OPEN
    protocol._serializer = serializer
    protocol._session = _Session()
    transport.clear()
    return protocol, transport


class DirectWampSendTests(SynchronousTestCase):
    """The direct frame equals autobahn's sendMessage output; anything unusual goes through autobahn."""

    def setUp(self):
        self.calls = []

        def recording_general_send(protocol, msg):
            self.calls.append(msg)
            return GENERAL_SEND(protocol, msg)
        self.send = fast_send.direct_wamp_send(recording_general_send, WebSocketProtocol.STATE_OPEN)

    def both_ways(self, msg, serializer_class=JsonSerializer, **options):
        general, general_transport = open_protocol(serializer_class())
        direct, direct_transport = open_protocol(serializer_class())
        for protocol in (general, direct):
            for name, value in options.items():
                setattr(protocol, name, value)
        GENERAL_SEND(general, msg)
        self.send(direct, msg)
        return (general, general_transport.value()), (direct, direct_transport.value())

    def test_frames_match_for_every_length_class(self):
        """7-bit, 16-bit and 64-bit payload lengths, text (JSON) and binary (MessagePack): identical bytes."""
        for serializer_class in (JsonSerializer, MsgPackSerializer):
            for size in (0, 100, 118, 119, 120, 1000, 65000, 65536, 200000):
                msg = message.Event(7, 9, args=[{"value": "x" * size}])
                (general, expected), (direct, actual) = self.both_ways(msg, serializer_class)
                self.assertEqual(actual, expected, (serializer_class.__name__, size))
                for counter in ("outgoingWebSocketMessages", "outgoingWebSocketFrames", "outgoingOctetsAppLevel",
                                "outgoingOctetsWebSocketLevel", "outgoingOctetsWireLevel"):
                    self.assertEqual(getattr(direct.trafficStats, counter), getattr(general.trafficStats, counter),
                                     counter)
        self.assertEqual(self.calls, [], "the direct path fell back")

    def test_frame_header_bytes(self):
        """The header: FIN and opcode, then the length in 1, 3 or 9 bytes."""
        self.assertEqual(fast_send.frame(b"abc", False), b"\x81\x03abc")
        self.assertEqual(fast_send.frame(b"a" * 126, True)[:4], b"\x82\x7e\x00\x7e")
        self.assertEqual(fast_send.frame(b"a" * 65536, False)[:10], b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00")

    def test_unusual_connections_use_autobahn(self):
        """Fragmentation, frame logging, debug logging, a queued send, a client side: autobahn's path, same bytes."""
        msg = message.Event(7, 9, args=["x" * 300])
        cases = [{"autoFragmentSize": 100}, {"logFrames": True}, {"maskServerFrames": True}]
        for options in cases:
            self.calls.clear()
            (_, expected), (_, actual) = self.both_ways(msg, **options)
            if options.get("maskServerFrames"):  # a random mask per frame: compare the header and the size
                expected, actual = (expected[:2], len(expected)), (actual[:2], len(actual))
            self.assertEqual(actual, expected, options)
            self.assertEqual(self.calls, [msg], options)

        self.calls.clear()
        protocol, transport = open_protocol(JsonSerializer())
        protocol.log = _VerboseLog()
        self.send(protocol, msg)
        self.assertEqual(self.calls, [msg], "debug logging")
        self.assertTrue(transport.value())

    def test_unknown_protocol_internals_use_autobahn(self):
        """A protocol without one of the options read (another autobahn release): autobahn's path."""
        protocol, transport = open_protocol(JsonSerializer())
        del protocol.logFrames
        protocol.__class__ = type("OtherRelease", (protocol.__class__,), {"logFrames": property(_missing)})
        msg = message.Event(1, 2, args=["x"])
        general = []
        send = fast_send.direct_wamp_send(lambda protocol, msg: general.append(msg), WebSocketProtocol.STATE_OPEN)
        send(protocol, msg)
        self.assertEqual((general, transport.value()), ([msg], b""))

    def test_queued_write_stays_ahead(self):
        """With autobahn's send queue non-empty (a sync write pending), the message queues behind it."""
        protocol, transport = open_protocol(JsonSerializer())
        protocol.sendData(b"QUEUED", sync=True)
        protocol.send_queue.append((b"SECOND", False))
        msg = message.Event(1, 2, args=["x" * 50])
        self.send(protocol, msg)
        self.assertEqual(self.calls, [msg])
        self.assertNotIn(b"x" * 50, transport.value(), "the message overtook a queued write")

    def test_client_side_frames_are_masked(self):
        """A client-side connection (frames must be masked) goes through autobahn."""
        protocol, transport = open_protocol(JsonSerializer())
        protocol.factory.isServer = False
        protocol.maskClientFrames = True
        self.send(protocol, message.Event(1, 2, args=["x"]))
        self.assertTrue(transport.value()[1] & 0x80, "client frames must be masked")

    def test_closing_connection_raises_like_autobahn(self):
        """A connection in the closing handshake: autobahn's Disconnected, nothing written."""
        from autobahn.exception import Disconnected
        protocol, transport = open_protocol(JsonSerializer())
        protocol.state = WebSocketProtocol.STATE_CLOSING
        self.assertRaises(Disconnected, self.send, protocol, message.Event(1, 2))
        self.assertEqual(transport.value(), b"")

    def test_payload_limit_raises_like_autobahn_and_serialises_once(self):
        """Over maxMessagePayloadSize: PayloadExceededError, nothing written, the message serialised once."""
        from autobahn.exception import PayloadExceededError
        protocol, transport = open_protocol(JsonSerializer())
        protocol.maxMessagePayloadSize = 10
        self.assertRaises(PayloadExceededError, self.send, protocol, message.Event(1, 2, args=["x" * 50]))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(protocol._serializer.stats()["messages"], 1)

    def test_closed_session_raises_like_autobahn(self):
        """A transport without a session raises TransportLost through autobahn's method."""
        from autobahn.wamp.exception import TransportLost
        protocol, transport = open_protocol(JsonSerializer())
        protocol._session = None
        self.assertRaises(TransportLost, self.send, protocol, message.Event(1, 2))
        self.assertEqual(transport.value(), b"")

    def test_serialization_error_raises_like_autobahn(self):
        """An unserialisable payload raises autobahn's SerializationError and writes nothing."""
        from autobahn.wamp.exception import SerializationError
        protocol, transport = open_protocol(JsonSerializer())
        self.assertRaises(SerializationError, self.send, protocol, message.Event(1, 2, args=[object()]))
        self.assertEqual(transport.value(), b"")


def _missing(self):
    raise AttributeError("logFrames")


class _VerboseLog:
    _log_level = "debug"

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _UnixConnection(unix._SendmsgMixin, tcp.Connection):
    """What twisted.internet.unix.Server is made of, without a port: sendmsg with descriptors."""

    _writeSomeDataBase = tcp.Connection

    def __init__(self, skt, protocol, reactor):
        unix._SendmsgMixin.__init__(self)
        tcp.Connection.__init__(self, skt, protocol, reactor)


class _RefusingSocket:
    """A socket whose send fails with ``error`` (or accepts ``accept`` bytes at most)."""

    def __init__(self, error=None, accept=None):
        self.error = error
        self.accept = accept
        self.sent = []

    def send(self, data):
        if self.error is not None:
            raise self.error
        data = bytes(data)[:self.accept] if self.accept is not None else bytes(data)
        self.sent.append(data)
        return len(data)

    def fileno(self):
        return -1

    def setblocking(self, flag):
        pass


class OptimisticWriteTests(SynchronousTestCase):
    """Writes go out at once when nothing is queued, and through Twisted's buffer otherwise, in order."""

    def setUp(self):
        self.write = fast_send.optimistic_write(BUFFERED_WRITE)

    def connection(self, skt, immediate=True, klass=tcp.Connection):
        """A connection on ``skt``; ``immediate``: as if setTcpNoDelay(True) had succeeded on a TCP socket."""
        reactor = MemoryReactorClock()
        connection = klass(skt, None, reactor)
        connection.connected = True
        if immediate:
            setattr(connection, fast_send.IMMEDIATE, True)
        return connection, reactor

    def real_pair(self, family=socket.AF_INET):
        """Two connected non-blocking sockets: TCP over loopback, or a Unix socket pair."""
        if family == socket.AF_UNIX:
            ours, theirs = socket.socketpair(socket.AF_UNIX)
        else:
            listener = socket.create_server(("127.0.0.1", 0))
            ours = socket.create_connection(listener.getsockname())
            theirs, _ = listener.accept()
            listener.close()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        ours.setblocking(False)
        theirs.setblocking(False)
        return ours, theirs

    @staticmethod
    def drain(skt):
        chunks = []
        while True:
            try:
                chunk = skt.recv(1 << 20)
            except BlockingIOError:
                return b"".join(chunks)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def test_small_write_goes_out_at_once(self):
        """TCP_NODELAY set, nothing queued: the bytes are on the peer's socket after write(), no writer."""
        ours, theirs = self.real_pair()
        connection, reactor = self.connection(ours, immediate=False)
        fast_send.recording_no_delay(tcp.Connection.setTcpNoDelay)(connection, True)
        self.assertTrue(getattr(connection, fast_send.IMMEDIATE))
        self.write(connection, b"hello")
        self.assertEqual(self.drain(theirs), b"hello")
        self.assertNotIn(connection, reactor.getWriters())

    def test_nagle_and_unix_connections_keep_twisted_behaviour(self):
        """Without TCP_NODELAY (Nagle would hold a second write) and on Unix sockets: buffered, as before."""
        for family, no_delay in ((socket.AF_INET, False), (socket.AF_INET, None), (socket.AF_UNIX, True)):
            ours, theirs = self.real_pair(family)
            connection, reactor = self.connection(ours, immediate=False)
            if no_delay is not None:
                # Twisted logs an error when a Unix socket is asked for TCP_NODELAY (autobahn asks): not here
                set_no_delay = tcp.Connection.setTcpNoDelay if family == socket.AF_INET else lambda *args: None
                fast_send.recording_no_delay(set_no_delay)(connection, no_delay)
                self.assertFalse(getattr(connection, fast_send.IMMEDIATE))
            self.write(connection, b"hello")
            self.assertEqual(self.drain(theirs), b"", (family, no_delay))
            self.assertIn(connection, reactor.getWriters())
            connection.doWrite()
            self.assertEqual(self.drain(theirs), b"hello")

    def test_file_descriptor_rides_on_buffered_bytes(self):
        """Unix connections: a write then sendFileDescriptor still sends the descriptor with the byte."""
        ours, theirs = self.real_pair(socket.AF_UNIX)
        connection, _ = self.connection(ours, immediate=False, klass=_UnixConnection)
        fast_send.recording_no_delay(lambda *args: None)(connection, True)
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        self.addCleanup(os.close, write_end)
        self.write(connection, b"F")
        connection.sendFileDescriptor(read_end)
        self.assertIsNone(connection.doWrite())

    def test_abort_drops_unsent_data_as_before(self):
        """abortConnection() discards what was written in the same turn, and anything written after it."""
        for before in (True, False):
            skt = _RefusingSocket()
            connection, _ = self.connection(skt)
            if before:
                connection.abortConnection()
            self.write(connection, b"late")
            if not before:
                self.assertEqual(skt.sent, [b"late"])  # already on the wire: cannot be recalled
                connection.abortConnection()
                self.write(connection, b"later")
            self.assertNotIn(b"later", skt.sent)
            self.assertEqual(skt.sent, [] if before else [b"late"])

    def test_data_left_in_the_send_buffer_stays_ahead(self):
        """A partial doWrite leaves bytes in dataBuffer with the list empty: later writes queue behind them."""
        skt = _RefusingSocket(accept=3)
        connection, _ = self.connection(skt)
        self.write(connection, b"0123456789")
        skt.accept = 2
        connection.doWrite()
        skt.accept = None
        self.write(connection, b"X")
        connection.doWrite()
        self.assertEqual(b"".join(skt.sent), b"0123456789X")

    def test_full_socket_queues_the_rest_in_order(self):
        """When the kernel takes only part, the rest and every later write queue behind it; order is kept."""
        ours, theirs = self.real_pair()
        connection, reactor = self.connection(ours)
        written = []
        for index in range(64):
            chunk = bytes([index]) * 65536
            self.write(connection, chunk)
            written.append(chunk)
        self.assertIn(connection, reactor.getWriters(), "nothing was queued: the test did not fill the socket")
        received = [self.drain(theirs)]
        for _ in range(10000):
            if connection not in reactor.getWriters():
                break
            self.assertIsNone(connection.doWrite())
            received.append(self.drain(theirs))
        self.assertEqual(b"".join(received), b"".join(written))

    def test_partial_send_queues_the_remainder(self):
        """The kernel takes 3 of 10 bytes: the other 7 wait in Twisted's buffer, writer registered."""
        skt = _RefusingSocket(accept=3)
        connection, reactor = self.connection(skt)
        self.write(connection, b"0123456789")
        self.assertEqual(skt.sent, [b"012"])
        self.assertIn(connection, reactor.getWriters())
        skt.accept = None
        connection.doWrite()
        self.assertEqual(skt.sent, [b"012", b"3456789"])

    def test_send_errors_take_the_buffered_path(self):
        """A reset or would-block never raises from write(); Twisted's doWrite then reports the loss."""
        for error in (BlockingIOError(11, "again"), ConnectionResetError(104, "reset")):
            skt = _RefusingSocket(error=error)
            connection, reactor = self.connection(skt)
            self.write(connection, b"data")
            self.assertIn(connection, reactor.getWriters(), error)
            self.assertEqual(connection._tempDataBuffer, [b"data"])
        self.assertIsInstance(connection.doWrite(), Exception)

    def test_tls_and_closing_connections_keep_twisted_behaviour(self):
        """TLS, a closing connection and a disconnected one: the socket is not written directly."""
        for attribute, value in (("disconnecting", True), ("_writeDisconnected", True), ("connected", False)):
            skt = _RefusingSocket()
            connection, _ = self.connection(skt)
            setattr(connection, attribute, value)
            self.write(connection, b"data")
            self.assertEqual(skt.sent, [], attribute)
        skt = _RefusingSocket()
        connection, _ = self.connection(skt)
        connection.TLS = True
        connection.protocol = StringTransport()  # under TLS, write goes to the TLS protocol
        self.write(connection, b"data")
        self.assertEqual((skt.sent, connection.protocol.value()), ([], b"data"))

    def test_unknown_connection_internals_take_the_buffered_path(self):
        """A connection without Twisted's buffer attributes (another release): the buffered write, no send."""
        skt = _RefusingSocket()
        connection, _ = self.connection(skt)
        del connection._tempDataLen
        buffered = []
        write = fast_send.optimistic_write(lambda conn, data: buffered.append(data))
        write(connection, b"data")
        self.assertEqual((skt.sent, buffered), ([], [b"data"]))

    def test_pull_producer_is_asked_for_more_as_before(self):
        """A pull producer writes through the buffer, so doWrite asks it for the next chunk; a push one does not."""
        ours, theirs = self.real_pair()
        connection, reactor = self.connection(ours)
        write = self.write

        class Chunks:
            left = [b"one", b"two", b"three"]

            def resumeProducing(self):
                if self.left:
                    write(connection, self.left.pop(0))

            def stopProducing(self):
                pass
        connection.registerProducer(Chunks(), False)
        for _ in range(10):
            if connection in reactor.getWriters():
                connection.doWrite()
        self.assertEqual(self.drain(theirs), b"onetwothree")

        connection.unregisterProducer()
        connection.registerProducer(Chunks(), True)  # push producer: nothing waits for doWrite
        self.write(connection, b"now")
        self.assertEqual(self.drain(theirs), b"now")
        self.assertNotIn(connection, reactor.getWriters())

    def test_pull_producer_registered_after_a_write_is_asked_again(self):
        """Twisted asks a pull producer again after earlier writes drained; they went out at once, so doWrite does."""
        ours, theirs = self.real_pair()
        connection, reactor = self.connection(ours)
        self.write(connection, b"first")
        register = fast_send.pull_producer_rewakes(tcp.Connection.registerProducer)
        asked = []

        class Producer:
            def resumeProducing(self):
                asked.append(1)

            def stopProducing(self):
                pass
        register(connection, Producer(), False)
        self.assertEqual(len(asked), 1)
        self.assertIn(connection, reactor.getWriters())
        connection.doWrite()
        self.assertEqual(len(asked), 2)
        self.assertEqual(self.drain(theirs), b"first")

    def test_str_is_refused_as_before(self):
        """Text is a TypeError, as in Twisted."""
        connection, _ = self.connection(_RefusingSocket())
        self.assertRaises(TypeError, self.write, connection, "text")


class InstallTests(SynchronousTestCase):
    """install() patches once; a release without the methods raises PatchUnavailable and stays unpatched."""

    def test_install_patches_once(self):
        class Connection:
            def write(self, data):
                return "buffered"

            def setTcpNoDelay(self, enabled):
                pass

            def registerProducer(self, producer, streaming):
                pass

        class Protocol:
            def send(self, msg):
                return "general"
        self.assertTrue(fast_send.install(Connection, Protocol))
        for method in (Connection.write, Connection.setTcpNoDelay, Connection.registerProducer, Protocol.send):
            self.assertTrue(getattr(method, fast_send.PATCHED), method)
        self.assertFalse(fast_send.install(Connection, Protocol), "installed twice")

    def test_release_without_a_method_is_left_alone(self):
        class Connection:
            def write(self, data):
                return "buffered"

        class Protocol:
            def send(self, msg):
                return "general"
        error = self.assertRaises(PatchUnavailable, fast_send.install, Connection, Protocol)
        self.assertIn("setTcpNoDelay", str(error))
        self.assertFalse(hasattr(Connection.write, fast_send.PATCHED))
