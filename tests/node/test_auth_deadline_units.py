"""
Unit tests of components/node/patches/auth_deadline.py on stand-in
protocols and a test clock: deadlines, the per-address cap, the settings,
and install() on stand-ins of Crossbar's factories (the real ones:
test_auth_deadline).
"""

import types

from twisted.internet import task
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.test.proto_helpers import StringTransport
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from components.core.clientaddress import parse_networks
from components.core.settings import SettingsError
from components.node.patches import PatchUnavailable, auth_deadline, names_used
from components.node.patches.auth_deadline import DeadlineSettings, PendingConnections


class Lines:
    """A RefusalLog stand-in that keeps the lines."""

    def __init__(self):
        self.lines = []

    def note(self, line):
        self.lines.append(line)


class Connection:
    """A WAMP transport protocol stand-in: ``_session._session_id`` set once welcomed."""

    peer = "tcp4:10.0.0.1:5000"

    def __init__(self):
        self._session = types.SimpleNamespace(_session_id=None)
        self.closed = None

    def welcome(self):
        self._session._session_id = 1


# what a JSON client says before its welcome (the deadline reads the type from the first bytes)
HELLO = b'[1,"reactive",{"authmethods":["ticket"]}]'
AUTHENTICATE = b'[5,"token",{}]'


def json_serializer():
    """autobahn's WAMP JSON serializer, as a WebSocket protocol holds it in ``_serializer``."""
    import txaio
    txaio.use_twisted()
    from autobahn.wamp.serializer import JsonSerializer
    return JsonSerializer()


class Speaking(Connection):
    """A stand-in with a WebSocket protocol's receive hook and send: what the client and the hub said."""

    def __init__(self):
        super().__init__()
        self.received, self.sent = [], []
        self._serializer = json_serializer()

    def onMessage(self, payload, is_binary):
        self.received.append(payload)

    def send(self, msg):
        self.sent.append(msg)


def close(protocol, code, reason):
    protocol.closed = (code, reason)


class PendingConnectionsTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.clock = task.Clock()
        self.log = Lines()
        self.pending = PendingConnections(DeadlineSettings(deadline=10, per_address=2), log=self.log, clock=self.clock)

    def watched(self, key="10.0.0.1"):
        connection = Connection()
        self.assertTrue(self.pending.admit(key))
        self.pending.watch(connection, key, close)
        return connection

    def test_unauthenticated_connection_closed_at_deadline(self):
        """A connection without a session id at the deadline is closed with 1008 and one line, not before."""
        connection = self.watched()
        self.clock.advance(9.9)
        self.assertIsNone(connection.closed)
        self.clock.advance(0.1)
        self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME))
        self.assertEqual(self.log.lines, ["reactive hub: closed a WAMP connection from tcp4:10.0.0.1:5000: not "
                                          "authenticated within 10 s"])
        self.assertEqual(self.pending.pending("10.0.0.1"), 0)

    def test_authenticated_connection_kept(self):
        """A connection welcomed before its deadline is left open and no longer watched."""
        connection = self.watched()
        connection.welcome()
        self.clock.advance(10)
        self.assertIsNone(connection.closed)
        self.assertEqual(self.log.lines, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cap_per_address(self):
        """Two pending connections per address: the third is refused; other addresses are not affected."""
        self.watched()
        self.watched()
        self.assertFalse(self.pending.admit("10.0.0.1"))
        self.assertTrue(self.pending.admit("10.0.0.2"))
        self.assertTrue(self.pending.admit(None))  # Unix sockets are not capped

    def test_closed_and_authenticated_connections_free_their_place(self):
        """A connection that closes, or authenticates, frees its place at once (its timer cancelled)."""
        first, second = self.watched(), self.watched()
        self.pending.forget(first)
        self.assertTrue(self.pending.admit("10.0.0.1"))
        self.pending.watch(Connection(), "10.0.0.1", close)
        second.welcome()
        self.assertTrue(self.pending.admit("10.0.0.1"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def leave(self, connection):
        """The welcomed session of ``connection`` leaves (as RouterSession does at GOODBYE): re-armed."""
        session_id, connection._session._session_id = connection._session._session_id, None
        self.pending.left(connection, session_id)

    def test_session_that_leaves_is_under_a_new_deadline(self):
        """Welcomed, then its session leaves at 30 s (long after the first deadline): the connection counts
        for its address again and is closed 10 s after the leave unless it joins again."""
        connection = self.watched()
        connection.welcome()
        self.clock.advance(30)
        self.assertEqual(self.pending.pending("10.0.0.1"), 0)
        self.leave(connection)
        self.assertEqual(self.pending.pending("10.0.0.1"), 1)
        self.clock.advance(9.9)
        self.assertIsNone(connection.closed)
        self.clock.advance(0.1)
        self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME))

    def test_rejoin_after_goodbye_is_not_cut_by_the_first_deadline(self):
        """Welcomed at 1 s, left at 5 s, joining again at 12 s: not closed at the first deadline (10 s), kept
        once welcomed again; a second leave re-arms again."""
        connection = self.watched()
        self.clock.advance(1)
        connection.welcome()
        self.clock.advance(4)
        self.leave(connection)
        self.clock.advance(7)
        self.assertIsNone(connection.closed)
        connection._session._session_id = 2
        self.clock.advance(60)
        self.assertIsNone(connection.closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.leave(connection)
        self.clock.advance(10)
        self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME))

    def test_one_rearm_per_session_and_none_once_closed(self):
        """The same session leaving twice (HELLO and ABORT after it) does not extend the deadline; a closed
        connection is not watched again."""
        connection = self.watched()
        connection.welcome()
        self.leave(connection)
        self.clock.advance(9)
        self.pending.left(connection, 1)
        self.clock.advance(1)
        self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME))
        other = self.watched()
        other.welcome()
        self.pending.closed(other)
        self.leave(other)
        self.assertEqual((self.pending.pending("10.0.0.1"), self.clock.getDelayedCalls()), (0, []))

    def test_connection_that_cannot_rejoin_is_closed_though_its_session_id_stays(self):
        """A proxy frontend keeps its session id after GOODBYE: left without rejoin, the connection is closed
        at the new deadline anyway."""
        connection = self.watched()
        connection.welcome()
        self.clock.advance(30)
        self.pending.left(connection, 1, rejoin=False)
        self.clock.advance(10)
        self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME))

    def speaking(self):
        connection = Speaking()
        self.pending.watch(connection, "10.0.0.1", close)
        return connection

    def test_hub_that_owes_an_answer_rearms_the_deadline(self):
        """HELLO at 1 s not answered by the hub at the deadline: re-armed, not closed; the hub's CHALLENGE at
        15 s puts the client under the deadline: closed at the next one (20 s), the messages passed through."""
        from autobahn.wamp import message
        connection = self.speaking()
        self.clock.advance(1)
        connection.onMessage(HELLO, False)
        self.clock.advance(9)
        self.assertIsNone(connection.closed)
        self.assertEqual(self.pending.pending("10.0.0.1"), 1)
        self.clock.advance(5)
        connection.send(message.Challenge("ticket"))
        self.clock.advance(4.9)
        self.assertIsNone(connection.closed)
        self.clock.advance(0.1)
        self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME))
        self.assertEqual((connection.received, [type(msg) for msg in connection.sent]),
                         ([HELLO], [message.Challenge]))

    def test_client_that_owes_an_answer_is_closed_at_the_deadline(self):
        """HELLO answered by a CHALLENGE the client never answers: closed at the deadline; a client that
        sent nothing too."""
        from autobahn.wamp import message
        connection, silent = self.speaking(), self.speaking()
        connection.onMessage(HELLO, False)
        connection.send(message.Challenge("ticket"))
        self.clock.advance(10)
        self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME))
        self.assertEqual(silent.closed, (1008, auth_deadline.NOT_IN_TIME))

    def test_other_messages_before_the_welcome_do_not_stretch_the_deadline(self):
        """A CALL or GOODBYE before any HELLO (the router leaves them unanswered) is the client's turn still: the
        connection is closed at the first deadline, not after HUB_WAIT_DEADLINES of them."""
        for early in (b'[48,1,{},"time.get"]', b'[6,{},"wamp.close.normal"]', b'  [ 48 , 2, {}, "x"]', b"junk"):
            connection = self.speaking()
            connection.onMessage(early, False)
            self.clock.advance(10)
            self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME), early)

    def test_hub_wait_is_capped(self):
        """A hub that never answers (AUTHENTICATE after a CHALLENGE, then nothing) keeps the connection at
        most HUB_WAIT_DEADLINES deadlines from its accept."""
        from autobahn.wamp import message
        connection = self.speaking()
        connection.onMessage(HELLO, False)
        connection.send(message.Challenge("ticket"))
        connection.onMessage(AUTHENTICATE, False)
        self.clock.advance(10 * auth_deadline.HUB_WAIT_DEADLINES - 0.1)
        self.assertIsNone(connection.closed)
        self.clock.advance(0.1)
        self.assertEqual(connection.closed, (1008, auth_deadline.NOT_IN_TIME))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_welcome_drops_the_turn_tracking(self):
        """After the WELCOME the protocol's own send and receive run unwrapped (nothing per message)."""
        from autobahn.wamp.role import RoleBrokerFeatures
        from autobahn.wamp import message
        connection = self.speaking()
        self.assertIn("send", vars(connection))
        connection.onMessage(HELLO, False)
        connection.welcome()
        connection.send(message.Welcome(1, {"broker": RoleBrokerFeatures()}))
        self.assertNotIn("send", vars(connection))
        self.assertNotIn("onMessage", vars(connection))
        self.assertEqual(len(connection.sent), 1)

    def test_no_cap(self):
        """WAMP_PENDING_PER_ADDRESS=0: no cap, deadlines still apply."""
        pending = PendingConnections(DeadlineSettings(deadline=1, per_address=0), log=self.log, clock=self.clock)
        for _ in range(100):
            self.assertTrue(pending.admit("10.0.0.1"))
            pending.watch(Connection(), "10.0.0.1", close)
        self.clock.advance(1)
        self.assertEqual(len(self.log.lines), 100)

    def test_address_key(self):
        self.assertEqual(auth_deadline.address_key(IPv4Address("TCP", "10.1.2.3", 80)), "10.1.2.3")
        self.assertIsNone(auth_deadline.address_key(UNIXAddress("proxy.sock")))


class MessageTypeTests(unittest.SynchronousTestCase):
    """``message_type`` reads HELLO and AUTHENTICATE from the first bytes of every serializer's payload."""

    def test_every_serializer_batched_or_not(self):
        json_serializer()
        from autobahn.wamp import message, role, serializer
        said = [message.Hello("reactive", {"caller": role.RoleCallerFeatures()}, authmethods=["ticket"],
                              authid="x" * 300),
                message.Authenticate("t" * 70000), message.Goodbye(), message.Call(1, "time.get")]
        for cls in (serializer.JsonSerializer, serializer.MsgPackSerializer, serializer.CBORSerializer):
            for batched in (False, True):
                wamp = cls(batched=batched)
                types_read = [auth_deadline.message_type(wamp, wamp.serialize(msg)[0]) for msg in said]
                self.assertEqual(types_read[:3], [1, 5, 6], (cls.__name__, batched))
                self.assertNotIn(types_read[3], auth_deadline._ANSWERED_TYPES)

    def test_longer_encodings_of_the_type(self):
        """A type written in more bytes than needed (MessagePack uint8, CBOR one-byte uint) or after CBOR's
        self-describe tag is read too."""
        json_serializer()
        from autobahn.wamp import serializer
        msgpack, cbor = serializer.MsgPackSerializer(), serializer.CBORSerializer()
        self.assertEqual(auth_deadline.message_type(msgpack, b"\x93\xcc\x01\xa8reactive\x80"), 1)
        self.assertEqual(auth_deadline.message_type(msgpack, b"\xdc\x00\x03\xcc\x05\xa1t\x80"), 5)
        self.assertEqual(auth_deadline.message_type(cbor, b"\x83\x18\x01\x68reactive\xa0"), 1)
        self.assertEqual(auth_deadline.message_type(cbor, b"\xd9\xd9\xf7\x83\x01\x68reactive\xa0"), 1)
        self.assertEqual(auth_deadline.message_type(cbor, b"\x9f\x18\x05\x61t\xa0\xff"), 5)
        self.assertIsNone(auth_deadline.message_type(cbor, b"\x83\x18"))

    def test_what_cannot_be_told(self):
        wamp = json_serializer()
        for payload in (b"", b"{}", b"[", b'["1"]', b"[1234,1]", None):
            self.assertIsNone(auth_deadline.message_type(wamp, payload), payload)
        self.assertIsNone(auth_deadline.message_type(None, HELLO))


class SettingsTests(unittest.SynchronousTestCase):

    def test_defaults_and_values(self):
        self.assertEqual(DeadlineSettings.from_environment([], {}).describe(),
                         "10 s, 32 per address except 127.0.0.0/8, ::1/128")
        settings = DeadlineSettings.from_environment([], {"WAMP_AUTH_DEADLINE": "500ms",
                                                          "WAMP_PENDING_PER_ADDRESS": "0"})
        self.assertEqual((settings.deadline, settings.per_address), (0.5, 0))
        self.assertEqual(settings.describe(), "0.5 s, no cap per address")
        settings = DeadlineSettings.from_environment([], {"WAMP_PENDING_EXEMPT": "none"})
        self.assertEqual(settings.describe(), "10 s, 32 per address")

    def test_exempt_networks(self):
        """Loopback is not capped by default; WAMP_PENDING_EXEMPT names other networks, or none. IPv6
        clients count by their /64."""
        default = DeadlineSettings.from_environment([], {})
        self.assertIsNone(default.key("127.0.0.1"))
        self.assertIsNone(default.key("127.9.9.9"))
        self.assertIsNone(default.key("::1"))
        self.assertEqual(default.key("10.0.0.1"), "10.0.0.1")
        self.assertEqual(default.key("2001:db8:1:2:3::4"), "2001:db8:1:2::/64")
        proxy = DeadlineSettings.from_environment([], {"WAMP_PENDING_EXEMPT": "10.1.0.0/16, 2001:db8::/32"})
        self.assertIsNone(proxy.key("10.1.2.3"))
        self.assertIsNone(proxy.key("2001:db8::5"))
        self.assertEqual(proxy.key("127.0.0.1"), "127.0.0.1")
        self.assertEqual(DeadlineSettings.from_environment([], {"WAMP_PENDING_EXEMPT": "none"}).key("127.0.0.1"),
                         "127.0.0.1")

    def test_trusted_proxies(self):
        settings = DeadlineSettings.from_environment([], {"TRUSTED_PROXIES": "10.2.0.0/16"})
        self.assertEqual([str(network) for network in settings.trusted], ["10.2.0.0/16"])
        self.assertIn("forwarded clients counted behind 10.2.0.0/16", settings.describe())

    def test_malformed(self):
        for environ in ({"WAMP_AUTH_DEADLINE": "soon"}, {"WAMP_AUTH_DEADLINE": "0"},
                        {"WAMP_PENDING_PER_ADDRESS": "-1"}, {"WAMP_PENDING_EXEMPT": "10.0.0.0/33"},
                        {"WAMP_PENDING_EXEMPT": "proxy.example.org"}, {"TRUSTED_PROXIES": "a proxy"}):
            self.assertRaises(SettingsError, DeadlineSettings.from_environment, [], environ)


class Factory:
    def buildProtocol(self, addr):
        protocol = self.protocol()
        protocol.factory = self
        return protocol


class Protocol:
    lost = False

    def connectionLost(self, reason):
        self.lost = True


class Resource:
    """Shaped like autobahn's WebSocketResource: render builds the protocol with _factory.buildProtocol."""

    def __init__(self, factory):
        self._factory = factory

    def render(self, request):
        return self._factory.buildProtocol(request.getClientAddress())


def stand_in():
    """A stand-in of crossbar.router.protocol: two factories and their protocols."""
    module = types.SimpleNamespace()
    for kind in ("WebSocket", "RawSocket"):
        protocol = type("Wamp{}ServerProtocol".format(kind), (Protocol,), {})
        setattr(module, "Wamp{}ServerProtocol".format(kind), protocol)
        setattr(module, "Wamp{}ServerFactory".format(kind), type("Wamp{}ServerFactory".format(kind), (Factory,),
                                                                 {"protocol": protocol}))
    return module


class InstallTests(unittest.SynchronousTestCase):

    def test_install_wraps_factories_and_protocols(self):
        """Installed once (a second install changes nothing); with a cap of 1 the second pending WebSocket
        from an address gets a 429 and is closed, a RawSocket over the cap is just closed."""
        module, clock = stand_in(), task.Clock()
        settings = DeadlineSettings(deadline=10, per_address=1)
        resource = type("WebSocketResource", (Resource,), {})
        self.assertEqual(auth_deadline.install(settings, module, clock, resource),
                         "10 s, 1 per address except 127.0.0.0/8, ::1/128")
        self.assertFalse(auth_deadline.install(settings, module, clock, resource))
        address = IPv4Address("TCP", "10.0.0.1", 1234)
        factory = module.WampWebSocketServerFactory()
        first = factory.buildProtocol(address)
        self.assertIsInstance(first, module.WampWebSocketServerProtocol)
        refused = factory.buildProtocol(address)
        self.assertIsInstance(refused, auth_deadline.Refusal)
        transport = StringTransport()
        refused.makeConnection(transport)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 10\r\n"))
        self.assertTrue(transport.disconnecting)
        first.connectionLost(None)
        self.assertTrue(first.lost)
        self.assertIsInstance(factory.buildProtocol(address), module.WampWebSocketServerProtocol)
        loopback = IPv4Address("TCP", "127.0.0.1", 1234)
        self.assertIsInstance(factory.buildProtocol(loopback), module.WampWebSocketServerProtocol)
        self.assertIsInstance(factory.buildProtocol(loopback), module.WampWebSocketServerProtocol)
        raw = module.WampRawSocketServerFactory()
        self.assertIsInstance(raw.buildProtocol(address), auth_deadline.Refusal)  # one cap across both
        transport = StringTransport()
        raw.buildProtocol(address).makeConnection(transport)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_install_rearms_at_a_router_session_leave(self):
        """The session class's onLeave is wrapped: a welcomed session leaving puts its connection back under a
        deadline (closed 10 s later); the library's onLeave still runs."""
        module, clock = stand_in(), task.Clock()
        closes = []
        session_class = type("RouterSession", (), {"onLeave": lambda self, details: closes.append(details)})
        auth_deadline.install(DeadlineSettings(deadline=10, per_address=1), module, clock,
                              type("WebSocketResource", (Resource,), {}), session_class)
        connection = module.WampRawSocketServerFactory().buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
        connection.transport = StringTransport()
        session = session_class()
        session._transport, session._previous_session_id = connection, None
        connection._session = session
        session._session_id = 5
        clock.advance(20)
        session._session_id, session._previous_session_id = None, 5
        session.onLeave("goodbye")
        self.assertEqual(closes, ["goodbye"])
        clock.advance(9.9)
        self.assertFalse(connection.transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(connection.transport.disconnecting)

    def test_install_closes_a_proxy_connection_after_goodbye(self):
        """The frontend class's onMessage is wrapped: a GOODBYE to a joined frontend session closes its
        connection a deadline later; other messages and unjoined sessions change nothing."""
        from autobahn.wamp import message
        module, clock = stand_in(), task.Clock()
        received = []
        frontend_class = type("ProxyFrontendSession", (), {"onMessage": lambda self, msg: received.append(msg)})
        auth_deadline.install(DeadlineSettings(deadline=10, per_address=1), module, clock,
                              type("WebSocketResource", (Resource,), {}), frontend_class=frontend_class)
        connection = module.WampRawSocketServerFactory().buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
        connection.transport = StringTransport()
        session = frontend_class()
        session.transport, session._session_id, connection._session = connection, 9, session
        clock.advance(20)
        session.onMessage(message.Call(1, "time.get"))
        self.assertEqual(clock.getDelayedCalls(), [])
        session.onMessage(message.Goodbye())
        self.assertEqual(len(received), 2)
        clock.advance(10)
        self.assertTrue(connection.transport.disconnecting)

    def test_unix_socket_peer_has_the_hub_wait_cap(self):
        """A connection from a Unix socket (the hub's own proxy worker) that stays silent is closed at
        HUB_WAIT_DEADLINES deadlines, not at the first; a TCP one at the first."""
        module, clock = stand_in(), task.Clock()
        auth_deadline.install(DeadlineSettings(deadline=10, per_address=0), module, clock,
                              type("WebSocketResource", (Resource,), {}))
        factory = module.WampRawSocketServerFactory()
        local, remote = factory.buildProtocol(UNIXAddress("router.sock")), factory.buildProtocol(
            IPv4Address("TCP", "10.0.0.1", 1))
        for connection in (local, remote):
            connection.transport = StringTransport()
        clock.advance(10)
        self.assertEqual((local.transport.disconnecting, remote.transport.disconnecting), (False, True))
        clock.advance(10 * auth_deadline.HUB_WAIT_DEADLINES - 10.1)
        self.assertFalse(local.transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(local.transport.disconnecting)

    def test_missing_internals(self):
        """A Crossbar without the factories' buildProtocol or the protocols' connectionLost: PatchUnavailable."""
        module = stand_in()
        module.WampRawSocketServerProtocol = type("WampRawSocketServerProtocol", (), {})
        with self.assertRaises(PatchUnavailable) as caught:
            auth_deadline.install(DeadlineSettings(), module, task.Clock(), type("R", (Resource,), {}))
        self.assertIn("WampRawSocketServerProtocol.connectionLost", str(caught.exception))
        bare = type("WebSocketResource", (), {"render": lambda self, request: None})
        with self.assertRaises(PatchUnavailable) as caught:
            auth_deadline.install(DeadlineSettings(), stand_in(), task.Clock(), bare)
        self.assertIn("WebSocketResource.render no longer builds", str(caught.exception))

    def test_forwarded_clients_are_counted_behind_trusted_proxies(self):
        """Upgrades from a trusted proxy count against the client its X-Forwarded-For names; without the
        header against the proxy's own address; an untrusted peer's header is ignored."""
        module = stand_in()
        resource = type("WebSocketResource", (Resource,), {})
        settings = DeadlineSettings(deadline=10, per_address=1, exempt=(), trusted=parse_networks("10.9.0.1"))
        auth_deadline.install(settings, module, task.Clock(), resource)
        websocket = resource(module.WampWebSocketServerFactory())

        def upgrade(peer, forwarded=None):
            request = DummyRequest([b"ws"])
            request.client = IPv4Address("TCP", peer, 4000)
            if forwarded:
                request.requestHeaders.setRawHeaders(b"x-forwarded-for", [forwarded])
            return websocket.render(request)

        Built = module.WampWebSocketServerProtocol
        self.assertIsInstance(upgrade("10.9.0.1", b"203.0.113.5"), Built)
        self.assertIsInstance(upgrade("10.9.0.1", b"203.0.113.5"), auth_deadline.Refusal)
        self.assertIsInstance(upgrade("10.9.0.1", b"203.0.113.6"), Built)
        self.assertIsInstance(upgrade("10.9.0.1"), Built)
        self.assertIsInstance(upgrade("10.9.0.1"), auth_deadline.Refusal)
        self.assertIsInstance(upgrade("198.51.100.7", b"203.0.113.9"), Built)
        self.assertIsInstance(upgrade("198.51.100.7", b"203.0.113.10"), auth_deadline.Refusal)

    def test_installed_crossbar_has_the_internals(self):
        """The installed Crossbar's sessions keep _session_id and its factories and protocols exist."""
        from crossbar.router import protocol
        from crossbar.router.session import RouterSession
        from crossbar.worker.proxy import ProxyFrontendSession
        for klass in (RouterSession, ProxyFrontendSession):
            self.assertIn("_session_id", auth_deadline._assigned(klass))
        from autobahn.twisted.resource import WebSocketResource
        self.assertTrue({"_factory", "buildProtocol"} <= names_used(WebSocketResource.render))
        for target in auth_deadline._targets(protocol, DeadlineSettings()):
            self.assertTrue(callable(target[0].buildProtocol))
            self.assertTrue(callable(target[1].connectionLost))
