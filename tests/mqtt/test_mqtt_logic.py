"""
MQTT in without a router: the payload rules, the TLS policy of the
listener, and device presence on an injected clock.
"""

import json
import struct

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from components.core import errors
from components.core.settings import Settings, SettingsError
from components.core.state import TopicState
from components.mqtt.device_presence import DevicePresence
from components.mqtt.mqtt_connection import MAX_BUFFER, QOS2_IN_FLIGHT, DeviceConnection, mqtt_reading
from components.mqtt.mqtt_listener import MqttListener, RefusalLines, tls_options


class ReadingTests(SynchronousTestCase):
    """``{"value": <scalar>}`` as POST /publish takes it, and nothing else."""

    def test_readings(self):
        for value in (42, -1.5, "text", True, None, 2 ** 53 - 1):
            self.assertEqual(mqtt_reading(json.dumps({"value": value}).encode(), "dev-1"), value)
        self.assertEqual(mqtt_reading(b'{"device": "dev-1", "value": 3}', "dev-1"), 3)

    def test_refused(self):
        for payload in (b"42", b"{}", b'{"value": [1]}', b'{"value": {"a": 1}}', b'{"value": 1, "seq": 9}',
                        b"\xff\xfe", b"not json", json.dumps({"value": "x" * 257}).encode(),
                        json.dumps({"value": 2 ** 53}).encode()):
            self.assertRaises(errors.InvalidArgument, mqtt_reading, payload, "dev-1")
        self.assertRaises(errors.NotAuthorized, mqtt_reading, b'{"device": "dev-2", "value": 1}', "dev-1")


class TlsPolicyTests(SynchronousTestCase):
    """Plain MQTT is refused on a node whose PUBLIC_URL is https unless MQTT_ALLOW_PLAIN says so."""

    def options(self, **environ):
        return tls_options(Settings({}, environ=environ, node_directory="/node"))

    def test_plain_without_https(self):
        self.assertIsNone(self.options())
        self.assertIsNone(self.options(PUBLIC_URL="http://hub.example.org"))

    def test_plain_refused_behind_https(self):
        error = self.assertRaises(SettingsError, self.options, PUBLIC_URL="https://hub.example.org")
        self.assertIn("MQTT_ALLOW_PLAIN", str(error))
        self.assertIsNone(self.options(PUBLIC_URL="https://hub.example.org", MQTT_ALLOW_PLAIN="on"))

    def test_half_tls_refused(self):
        self.assertRaises(SettingsError, self.options, MQTT_TLS_CERT=__file__)


class FakeBridge:
    """The parts of a device bridge session presence uses."""

    def __init__(self, clock):
        self.clock = clock
        self.states = {}
        self.published = []

    def reading(self, name, value):
        state = self.states.setdefault("iot.device." + name, TopicState(self.clock.seconds))
        return state.update(value, device=name)

    def publish_reading(self, topic, state):
        self.published.append((topic, state))
        return defer.succeed(None)


class PresenceTests(SynchronousTestCase):
    """Offline marks: once, with the last value and a new seq; silence only without an MQTT connection."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.bridge = FakeBridge(self.clock)
        self.connected = set()
        self.presence = DevicePresence(self.bridge, self.clock, 30, connected=self.connected.__contains__)
        self.presence.start()
        self.addCleanup(self.presence.stop)

    def read(self, name, value):
        state = self.bridge.reading(name, value)
        self.presence.reading(name)
        return state

    def test_offline_once_then_back(self):
        first = self.read("a", 7)
        self.clock.advance(0.5)
        offline = self.presence.offline("a", "connection lost")
        self.assertEqual((offline["value"], offline["stale"], offline["device"]), (7, True, "a"))
        self.assertGreater(offline["seq"], first["seq"])
        self.assertIsNone(self.presence.offline("a", "again"))
        self.assertEqual(self.bridge.published, [("iot.device.a", offline)])
        back = self.read("a", 8)
        self.assertNotIn("stale", back)

    def test_unknown_device_not_marked(self):
        self.assertIsNone(self.presence.offline("never", "connection lost"))
        self.assertEqual(self.bridge.published, [])

    def test_silence(self):
        self.read("http", 1)
        self.read("mqtt", 2)
        self.connected.add("mqtt")
        self.clock.advance(29)
        self.assertEqual(self.bridge.published, [])
        self.clock.advance(1)
        self.assertEqual([topic for topic, _ in self.bridge.published], ["iot.device.http"])
        self.clock.advance(120)
        self.assertEqual(len(self.bridge.published), 1)  # marked once; the connected device stays online


class _Device:
    name, secret = "dev-1", "secret"


class _Registry:
    """A device registry knowing one key (``KEY``, secret ``secret``) that records the keys it is asked."""

    KEY = "dk" + "0" * 24

    def __init__(self):
        self.asked = []

    def lookup(self, key):
        self.asked.append(key)
        return defer.succeed(_Device() if key == self.KEY else None)


class _Bridge:
    """The device bridge as a connection uses it: every reading admitted and reported."""

    registry = None

    def __init__(self):
        self.reports = []

    def admit(self, name):
        pass

    def report(self, topic, name, value):
        self.reports.append((topic, value))
        return defer.succeed(None)


class _Listener:
    def __init__(self, clock):
        self.reactor = clock
        self.connect_timeout = 10.0
        self.keepalive_max = 120.0
        self.device_bridge = _Bridge()
        self.registry = _Registry()
        self.refusals = RefusalLines(Logger())
        self.closed_connections = []
        self.opened_connections = []

    def opened(self, connection):
        self.opened_connections.append(connection)

    def closed(self, connection, clean):
        self.closed_connections.append((connection, clean))

    def bridge(self):
        return self.device_bridge


def _string(text):
    data = text.encode("utf-8")
    return struct.pack(">H", len(data)) + data


def _packet(first_byte, body):
    length, size = b"", len(body)
    while True:
        byte, size = size % 128, size // 128
        length += bytes([byte | (0x80 if size else 0)])
        if not size:
            return bytes([first_byte]) + length + body


def _connect_packet(username, keep_alive=60):
    return _packet(0x10, _string("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", keep_alive) + _string("c")
                   + _string(username) + _string("secret"))


def _publish_qos2(topic, packet_id, payload, dup=False):
    return _packet(0x34 | (0x08 if dup else 0), _string(topic) + struct.pack(">H", packet_id) + payload)


def _pubrel(packet_id):
    return _packet(0x62, struct.pack(">H", packet_id))


class PacketBoundTests(SynchronousTestCase):
    """A packet over MAX_BUFFER bytes is never parsed, even when all of it arrives in one read."""

    def connection(self):
        clock = task.Clock()
        listener = _Listener(clock)
        connection = DeviceConnection(listener)
        transport = StringTransport()
        connection.makeConnection(transport)
        return connection, listener, transport, clock

    def test_oversized_connect_in_one_read(self):
        connection, listener, transport, clock = self.connection()
        connection.dataReceived(_connect_packet("dk" + "U" * (3 * MAX_BUFFER)))
        self.assertEqual(len(listener.registry.asked), 0)  # the CONNECT never reached the handler
        self.assertTrue(transport.disconnecting)
        clock.advance(20)

    def test_small_packets_in_one_large_read(self):
        """Many small packets in one read (beyond MAX_BUFFER together) are all parsed and answered."""
        connection, listener, transport, clock = self.connection()
        connection.dataReceived(_connect_packet(_Registry.KEY) + bytes([0xC0, 0]) * MAX_BUFFER)
        self.assertEqual(listener.registry.asked, [_Registry.KEY])
        self.assertFalse(transport.disconnecting)
        self.assertEqual(transport.value(), bytes([0x20, 2, 0, 0]) + bytes([0xD0, 0]) * MAX_BUFFER)
        connection.connectionLost(None)


class ConnectionLifeTests(SynchronousTestCase):
    """The end of a logged-in connection always reaches the listener; silent devices are closed; a QoS 2
    PUBLISH sent again before its PUBREL is published once."""

    def connection(self, keep_alive=60):
        clock = task.Clock()
        listener = _Listener(clock)
        connection = DeviceConnection(listener)
        transport = StringTransport()
        connection.makeConnection(transport)
        connection.dataReceived(_connect_packet(_Registry.KEY, keep_alive))
        self.assertEqual(listener.opened_connections, [connection])
        return connection, listener, transport, clock

    def test_keep_alive_expiry_reaches_the_listener(self):
        """The codec's keep-alive timer closes the connection; its end is reported (not clean: the device is
        marked offline) without the codec's AlreadyCalled."""
        connection, listener, transport, clock = self.connection(keep_alive=4)
        clock.advance(6)  # 1.5 x 4 s: the codec closes the connection
        self.assertTrue(transport.disconnecting)
        connection.connectionLost(None)
        self.assertEqual(listener.closed_connections, [(connection, False)])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_no_keep_alive_is_bounded_by_the_hub(self):
        """Keep-alive 0 (or longer than MQTT_KEEPALIVE_MAX): closed after 1.5 x MQTT_KEEPALIVE_MAX without a
        packet; every packet restarts that wait."""
        for keep_alive in (0, 600):
            connection, listener, transport, clock = self.connection(keep_alive=keep_alive)
            clock.advance(170)
            connection.dataReceived(bytes([0xC0, 0]))  # PINGREQ
            clock.advance(170)
            self.assertFalse(transport.disconnecting, keep_alive)
            clock.advance(10)
            self.assertTrue(transport.disconnecting, keep_alive)
            connection.connectionLost(None)
            self.assertEqual(listener.closed_connections, [(connection, False)])

    def test_bytes_of_an_unfinished_packet_do_not_keep_a_silent_device(self):
        """Only whole packets restart the wait: a byte of a PUBLISH now and then does not."""
        connection, listener, transport, clock = self.connection(keep_alive=0)
        for wait in (90, 89):
            clock.advance(wait)
            connection.dataReceived(b"\x30")
        self.assertFalse(transport.disconnecting)
        clock.advance(1)  # 180 s after the CONNECT, the last whole packet
        self.assertTrue(transport.disconnecting)
        connection.connectionLost(None)

    def test_qos_2_in_flight_is_bounded(self):
        connection, listener, transport, clock = self.connection()
        topic, reading = "iot/device/" + _Device.name, json.dumps({"value": 1}).encode()
        for packet_id in range(1, QOS2_IN_FLIGHT + 1):
            connection.dataReceived(_publish_qos2(topic, packet_id, reading))
        self.assertFalse(transport.disconnecting)
        connection.dataReceived(_publish_qos2(topic, QOS2_IN_FLIGHT + 1, reading))
        self.assertTrue(transport.disconnecting)
        connection.connectionLost(None)

    def test_an_ordinary_keep_alive_gets_no_second_timer(self):
        connection, listener, transport, clock = self.connection(keep_alive=60)
        self.assertEqual([call.getTime() for call in clock.getDelayedCalls()], [90.0])
        connection.connectionLost(None)

    def test_qos_2_retransmission_is_published_once(self):
        connection, listener, transport, clock = self.connection()
        reading = json.dumps({"value": 100}).encode()
        topic = "iot/device/" + _Device.name
        connection.dataReceived(_publish_qos2(topic, 7, reading))
        connection.dataReceived(_publish_qos2(topic, 7, reading, dup=True))
        self.assertEqual(len(listener.device_bridge.reports), 1)
        connection.dataReceived(_pubrel(7))
        connection.dataReceived(_publish_qos2(topic, 7, reading))  # the id used again after its PUBREL
        self.assertEqual(len(listener.device_bridge.reports), 2)
        # PUBREC for each PUBLISH (the retransmission too), PUBCOMP for the PUBREL
        self.assertEqual(transport.value().count(bytes([0x50, 2, 0, 7])), 3)
        self.assertEqual(transport.value().count(bytes([0x70, 2, 0, 7])), 1)
        connection.connectionLost(None)


class PendingPerAddressTests(SynchronousTestCase):
    """One address holds at most ``pending_per_address`` connections not logged in; logged-in ones and
    closed ones free their place; another address is not affected."""

    def test_pending_bound(self):
        listener = MqttListener(None, None, None, task.Clock(), max_connections=100, pending_per_address=3)
        attacker = [listener.buildProtocol(IPv4Address("TCP", "10.0.0.1", port)) for port in range(1, 5)]
        self.assertIsNone(attacker[3])
        self.assertIsNotNone(listener.buildProtocol(IPv4Address("TCP", "10.0.0.2", 1)))
        attacker[0].device = "dev-1"
        listener.opened(attacker[0])  # logged in: no longer pending
        fourth = listener.buildProtocol(IPv4Address("TCP", "10.0.0.1", 5))
        self.assertIsNotNone(fourth)
        self.assertIsNone(listener.buildProtocol(IPv4Address("TCP", "10.0.0.1", 6)))
        listener.closed(attacker[1], False)  # gone
        self.assertIsNotNone(listener.buildProtocol(IPv4Address("TCP", "10.0.0.1", 7)))
        listener.closed(attacker[0], True)  # a logged-in connection's end frees nothing more
        self.assertIsNone(listener.buildProtocol(IPv4Address("TCP", "10.0.0.1", 8)))


class RefusalLogTests(SynchronousTestCase):
    """Refused clients not logged in cost the log a bounded number of lines, however many there are."""

    def test_bad_connects_bounded(self):
        lines = []
        observer = lines.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        clock = task.Clock()
        listener = MqttListener(None, _Registry(), None, clock, max_connections=1000,
                                pending_per_address=1000)
        for port in range(1, 201):
            connection = listener.buildProtocol(IPv4Address("TCP", "10.0.0.1", port))
            connection.makeConnection(StringTransport())
            connection.dataReceived(_connect_packet("dk" + "1" * 24))
        mqtt = [event for event in lines if "MQTT" in formatEvent(event)]
        self.assertGreater(len(mqtt), 0)
        self.assertLessEqual(len(mqtt), 25)
        clock.advance(20)
