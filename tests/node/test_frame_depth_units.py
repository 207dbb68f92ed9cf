"""
Unit tests of components/node/patches/frame_depth.py and wireclose.py on
stand-in protocols and a test clock: what a refused, undecodable or
protocol-violating message costs (one clipped line, a close), the rate of
those lines, the setting, and install() on stand-ins of autobahn's classes
(the real ones: test_frame_depth).
"""

import txaio

txaio.use_twisted()

from autobahn.wamp.exception import ProtocolError
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer
from twisted.internet import task
from twisted.internet.defer import CancelledError
from twisted.trial import unittest

from components.core.settings import SettingsError
from components.node.patches import PatchUnavailable, frame_depth
from components.node.patches.wireclose import RefusalLog, clipped


class Logger:
    def __init__(self):
        self.events = []

    def _emit(self, level):
        return lambda template, **fields: self.events.append((level, template.format(**fields)))

    def __getattr__(self, level):
        return self._emit(level)


class Session:
    def __init__(self, error=None):
        self.received, self.error = [], error

    def onMessage(self, message):
        self.received.append(message)
        if self.error is not None:
            raise self.error


class Connection:
    peer = "tcp4:10.0.0.9:4000"

    def __init__(self, serializer, session):
        self._serializer, self._session = serializer, session
        self.closes = []


HELLO = b'[1, "reactive", {"roles": {"caller": {}}}]'


def record_close(protocol, code=None, reason=None):
    protocol.closes.append((code, reason))


def deep_raise(depth):
    if depth:
        deep_raise(depth - 1)
    raise KeyError("k" * 100000)


class ReceiveTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.logger = Logger()
        self.guard = frame_depth.Guard(8, RefusalLog(self.logger, reactor=task.Clock()))

    def receive(self, payload, serializer=None, session=None, is_binary=False):
        connection = Connection(serializer or JsonSerializer(), session or Session())
        frame_depth._receive(self.guard, connection, payload, is_binary, record_close)
        return connection

    def test_messages_within_the_bound_are_dispatched(self):
        session = Session()
        connection = self.receive(b'[1, "reactive", {"roles": {"caller": {}}, "x": [[[[1]]]]}]', session=session)
        self.assertEqual(len(session.received), 1)
        self.assertEqual((connection.closes, self.logger.events), ([], []))

    def test_too_deep(self):
        """Nested past the bound (JSON, MessagePack, CBOR): one warn line, a 1002 close, nothing dispatched."""
        for serializer, payload, binary in ((JsonSerializer(), b"[" * 50 + b"]" * 50, False),
                                            (MsgPackSerializer(), b"\x91" * 50 + b"\x00", True),
                                            (CBORSerializer(), b"\x81" * 50 + b"\x00", True)):
            session = Session()
            self.logger.events[:] = []
            connection = self.receive(payload, serializer, session, binary)
            self.assertEqual(session.received, [])
            self.assertEqual(connection.closes, [(1002, "WAMP message refused")])
            self.assertEqual(self.logger.events, [("warn", "reactive hub: refused a WAMP message from "
                                                   "tcp4:10.0.0.9:4000 ({} bytes, {}): nested deeper than 8 levels; "
                                                   "connection closed".format(len(payload), serializer._serializer.NAME))])

    def test_undecodable(self):
        """A message the decoder refuses: one line with the decoder's reason, clipped."""
        connection = self.receive(b'["' + b"x" * 5000)
        self.assertEqual(connection.closes, [(1002, "WAMP message refused")])
        [(level, line)] = self.logger.events
        self.assertIn("ProtocolError: invalid serialization of WAMP message", line)
        self.assertLess(len(line), 400)

    def test_protocol_violation(self):
        """A ProtocolError from the session (its text clipped): one line and a close."""
        connection = self.receive(HELLO, session=Session(ProtocolError("bad " + "u" * 10000)))
        self.assertEqual(connection.closes, [(1002, "WAMP protocol violation")])
        [(level, line)] = self.logger.events
        self.assertIn("refused a WAMP protocol violation", line)
        self.assertLess(len(line), 400)

    def test_internal_error_traceback_is_bounded(self):
        """An unexpected error inside the session: a critical traceback of at most 20 frames and a clipped
        message, and a 1011 close."""
        session = Session()
        session.onMessage = lambda message: deep_raise(200)
        connection = self.receive(HELLO, session=session)
        self.assertEqual(connection.closes, [(1011, "WAMP internal error")])
        [(level, text)] = self.logger.events
        self.assertEqual(level, "critical")
        self.assertLessEqual(text.count('File "'), frame_depth.TRACEBACK_FRAMES)
        self.assertLess(len(text), 8000)

    def test_large_message_before_the_welcome_is_refused_unread(self):
        """Before the welcome a message over the pre-authentication size is refused without a walk or decode
        (a stand-in serializer that must not be asked); after it, the same size is decoded."""
        self.guard.preauth_bytes = 100
        payload = b'[1, "reactive", {"roles": {"caller": {}}, "x": "' + b"a" * 60 + b'"}]'

        class Untouchable:
            _serializer = JsonSerializer()._serializer

            def unserialize(self, *args):
                raise AssertionError("decoded before the size check")

        connection = Connection(Untouchable(), Session())
        frame_depth._receive(self.guard, connection, payload, False, record_close)
        self.assertEqual(connection.closes, [(1002, "WAMP message refused")])
        self.assertEqual(self.logger.events, [("warn", "reactive hub: refused a WAMP message from tcp4:10.0.0.9:4000 "
                                               "(111 bytes, json): more than 100 bytes before authentication; "
                                               "connection closed")])
        session = Session()
        session._session_id = 42
        self.assertEqual(self.receive(payload, session=session).closes, [])
        self.assertEqual(len(session.received), 1)

    def test_large_message_refused_at_its_frame_header(self):
        """Before the welcome a WebSocket message announced (its frames so far and this one) larger than the
        pre-authentication size is refused at the frame header: one line, a close, autobahn told to drop the
        rest; within it, or once welcomed, autobahn's own handling goes on."""
        self.guard.preauth_bytes = 100
        began = []
        frame_begin = frame_depth.guarded_frame_begin(self.guard, lambda protocol, length: began.append(length))
        closes = []
        connection = Connection(MsgPackSerializer(), Session())
        connection.failedByMe, connection.message_data_total_length = False, 60
        self.patch(frame_depth, "close_websocket", lambda protocol, code, reason: closes.append((code, reason)))
        frame_begin(connection, 40)
        self.assertEqual((began, closes), ([40], []))
        frame_begin(connection, 41)
        self.assertEqual((began, closes, connection.failedByMe), ([40], [(1002, "WAMP message refused")], True))
        self.assertEqual(self.logger.events, [("warn", "reactive hub: refused a WAMP message from tcp4:10.0.0.9:4000 "
                                               "(101 bytes, msgpack): more than 100 bytes before authentication; "
                                               "connection closed")])
        welcomed = Connection(MsgPackSerializer(), Session())
        welcomed._session._session_id, welcomed.failedByMe, welcomed.message_data_total_length = 7, False, 0
        frame_begin(welcomed, 1000000)
        self.assertEqual(began, [40, 1000000])

    def test_too_many_containers(self):
        """A shallow message holding more containers than the bound is refused (JSON, MessagePack, CBOR)."""
        self.guard.containers = 1000
        session = Session()
        session._session_id = 42
        for serializer, payload, binary in ((JsonSerializer(), b"[" + b",".join([b"[]"] * 1001) + b"]", False),
                                            (MsgPackSerializer(), b"\xdc\x03\xe9" + b"\x90" * 1001, True),
                                            (CBORSerializer(), b"\x99\x03\xe9" + b"\x80" * 1001, True)):
            self.logger.events[:] = []
            connection = self.receive(payload, serializer, session, binary)
            self.assertEqual(connection.closes, [(1002, "WAMP message refused")])
            [(level, line)] = self.logger.events
            self.assertIn("more than 1000 containers", line)
        self.assertEqual(session.received, [])

    def test_cancelled_call_keeps_the_connection(self):
        connection = self.receive(HELLO, session=Session(CancelledError()))
        self.assertEqual((connection.closes, self.logger.events), ([], []))


class RefusalLogTests(unittest.SynchronousTestCase):

    def test_burst_rate_and_left_out_count(self):
        """20 lines at once, then 5 a second; the lines left out are counted a second later or in the next."""
        now, clock, logger = [0.0], task.Clock(), Logger()
        log = RefusalLog(logger, clock=lambda: now[0], reactor=clock)
        for index in range(30):
            log.note("line {}".format(index))
        self.assertEqual(len(logger.events), 20)
        clock.advance(1)
        self.assertEqual(logger.events[-1], ("warn", "reactive hub: 10 more lines like the last one left out"))
        now[0] = 0.2
        log.note("line 30")
        log.note("line 31")
        now[0] = 0.4
        log.note("line 32")
        self.assertEqual(logger.events[-2:], [("warn", "line 30"), ("warn", "line 32 (1 more such lines left out)")])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_clipped(self):
        self.assertEqual(clipped("a\nb\t c"), "a b c")
        self.assertEqual(len(clipped("x" * 1000)), 200)


class SettingTests(unittest.SynchronousTestCase):

    def test_depth_setting(self):
        self.assertEqual(frame_depth.depth_from_environment([], {}), 64)
        self.assertEqual(frame_depth.depth_from_environment([], {"WAMP_MAX_DEPTH": "100"}), 100)
        for value in ("deep", "1", "401"):
            self.assertRaises(SettingsError, frame_depth.depth_from_environment, [], {"WAMP_MAX_DEPTH": value})

    def test_bounds_settings(self):
        self.assertEqual(frame_depth.bounds_from_environment([], {}), (100000, 16384))
        self.assertEqual(frame_depth.bounds_from_environment(
            [], {"WAMP_MAX_CONTAINERS": "500", "WAMP_PREAUTH_MAX_BYTES": "0"}), (500, None))
        for name in ("WAMP_MAX_CONTAINERS", "WAMP_PREAUTH_MAX_BYTES"):
            for value in ("many", "-1"):
                self.assertRaises(SettingsError, frame_depth.bounds_from_environment, [], {name: value})


def stand_ins():
    """Classes shaped like autobahn's WampWebSocketProtocol / WampRawSocketProtocol and Crossbar's servers."""

    class WebSocket:
        failedByMe = False
        message_data_total_length = 0

        def onMessage(self, payload, isBinary):
            for message in self._serializer.unserialize(payload, isBinary):
                self._session.onMessage(message)

        def onMessageFrameBegin(self, length):
            self.message_data_total_length += length
            if 0 < self.maxMessagePayloadSize < self.message_data_total_length:
                self.failedByMe = True

    class RawSocket:
        def stringReceived(self, payload):
            try:
                for message in self._serializer.unserialize(payload):
                    self._session.onMessage(message)
            except Exception:
                self.abort()

    servers = ((type("Server", (WebSocket,), {}), WebSocket, "onMessage"),
               (type("RawServer", (RawSocket,), {}), RawSocket, "stringReceived"))
    return WebSocket, RawSocket, servers


class InstallTests(unittest.SynchronousTestCase):

    def test_install_once(self):
        websocket, rawsocket, servers = stand_ins()
        self.assertEqual(frame_depth.install(8, websocket, rawsocket, servers),
                         "8 levels, 100000 containers, 16384 bytes before authentication")
        self.assertFalse(frame_depth.install(8, websocket, rawsocket, servers))
        self.assertTrue(getattr(servers[0][0].onMessage, frame_depth.PATCHED))
        self.assertTrue(getattr(servers[1][0].stringReceived, frame_depth.PATCHED))
        self.assertTrue(getattr(servers[0][0].onMessageFrameBegin, frame_depth.PATCHED))

    def test_changed_internals_are_refused(self):
        """A handler that no longer decodes through ``_serializer`` and dispatches to ``_session``, or a
        server class that overrides the handler: PatchUnavailable naming it."""
        websocket, rawsocket, servers = stand_ins()
        websocket.onMessage = lambda self, payload, isBinary: None
        with self.assertRaises(PatchUnavailable) as caught:
            frame_depth.install(8, websocket, rawsocket, servers)
        self.assertIn("WebSocket.onMessage no longer uses", str(caught.exception))
        websocket, rawsocket, servers = stand_ins()
        servers[0][0].onMessage = lambda self, payload, isBinary: None
        with self.assertRaises(PatchUnavailable) as caught:
            frame_depth.install(8, websocket, rawsocket, servers)
        self.assertIn("Server.onMessage is not WebSocket.onMessage", str(caught.exception))

    def test_installed_autobahn_and_crossbar_have_the_internals(self):
        """The installed autobahn's handlers use what the replacement relies on, and Crossbar's server
        protocols take them unchanged."""
        from autobahn.twisted.rawsocket import WampRawSocketProtocol
        from autobahn.twisted.websocket import WampWebSocketServerProtocol
        from autobahn.wamp.websocket import WampWebSocketProtocol
        from crossbar.router import protocol
        for klass, method, names in ((WampWebSocketProtocol, "onMessage", frame_depth._WEBSOCKET_NAMES),
                                     (WampWebSocketServerProtocol, "onMessageFrameBegin",
                                      frame_depth._FRAME_BEGIN_NAMES),
                                     (WampRawSocketProtocol, "stringReceived", frame_depth._RAWSOCKET_NAMES)):
            frame_depth._check(klass, method, names)
        frame_depth._check_resolution(protocol.WampWebSocketServerProtocol, WampWebSocketProtocol, "onMessage")
        frame_depth._check_resolution(protocol.WampWebSocketServerProtocol, WampWebSocketServerProtocol,
                                      "onMessageFrameBegin")
        frame_depth._check_resolution(protocol.WampRawSocketServerProtocol, WampRawSocketProtocol, "stringReceived")

