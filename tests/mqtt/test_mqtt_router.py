"""
MQTT in through a real router with mosquitto_pub as the device (MQTT_PORT
a free port; DEVICE_RATE 0.05/s with DEVICE_BURST 3, so a test's readings
never earn a new token): a registered device's readings reach a WAMP
subscriber and iot.history with the hub's seq/ts; a wrong secret is refused
at CONNECT; a PUBLISH on another device's topic ends the connection and
publishes nothing; readings beyond the rate limit are dropped; a revoked
key's open connection is closed; a client killed without DISCONNECT marks
its device offline (a stale state, ``live: false`` in iot.sources) and its
next reading brings it back; a clean DISCONNECT does not.
"""

import itertools
import json
import os
import re
import secrets
import shutil
import tempfile

from twisted.internet import defer, endpoints, protocol, reactor
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from components.iot import HISTORY, SOURCES, device_topic
from components.mqtt import mqtt_topic
from tests.iot.test_devices_router import subscribe_devices
from tests.support.clients import connect
from tests.support.devices import node_registry, register
from tests.iot.test_device_rate_router import post
from tests.mqtt.test_mqtt_logic import _packet, _string
from tests.node.test_refusals import refused
from tests.support.node import REPO, RouterNode, free_port, shared_node
from tests.support.polling import eventually

MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
BURST = 3
_names = itertools.count(1)


def fresh_name(prefix):
    """A device name no other test of this process used (each device has its own bucket and state)."""
    return "{}-{}-{}".format(prefix, next(_names), secrets.token_hex(3))


def reading(value):
    return json.dumps({"value": value})


def pub_args(port, credentials, topic, qos=1):
    key, secret = credentials
    return ["-h", "127.0.0.1", "-p", str(port), "-V", "mqttv311", "-q", str(qos), "-u", key, "-P", secret,
            "-t", topic, "-i", "test-" + secrets.token_hex(4)]


def mosquitto_pub(port, credentials, topic, message, qos=1):
    """Run mosquitto_pub once; fire with ``(out, err, exit code)``."""
    return getProcessOutputAndValue(MOSQUITTO_PUB, pub_args(port, credentials, topic, qos) + ["-m", message],
                                    env=os.environ)


class LinePublisher(protocol.ProcessProtocol):
    """``mosquitto_pub -l``: one connection kept open, a PUBLISH per line written to it."""

    def __init__(self):
        self.output = b""
        self.ended = defer.Deferred()
        self.exit = None

    def outReceived(self, data):
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason):
        self.exit = reason.value.exitCode
        self.ended.callback(self.exit)

    def send(self, message):
        self.transport.write(message.encode("utf-8") + b"\n")

    def running(self):
        return self.exit is None


def line_publisher(testcase, port, credentials, topic):
    """A running ``mosquitto_pub -l`` (killed when the test ends)."""
    publisher = LinePublisher()
    args = [MOSQUITTO_PUB] + pub_args(port, credentials, topic) + ["-l"]
    reactor.spawnProcess(publisher, MOSQUITTO_PUB, args, env=os.environ)

    def stop():
        if publisher.running():
            try:
                publisher.transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass
            return publisher.ended
    testcase.addCleanup(stop)
    return publisher


def raw_connect(credentials, keep_alive, client_id="raw"):
    """A CONNECT packet (MQTT 3.1.1, clean session) with a device's key and secret."""
    key, secret = credentials
    return _packet(0x10, _string("MQTT") + bytes([4, 0xC2]) + keep_alive.to_bytes(2, "big") + _string(client_id)
                   + _string(key) + _string(secret))


def raw_publish(topic, payload):
    """A QoS 0 PUBLISH packet."""
    return _packet(0x30, _string(topic) + payload.encode("utf-8"))


class MqttNodeTests(unittest.TestCase):
    """One node with MQTT on a free port and a tight device rate limit; every test uses devices of its own."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        if not os.path.exists(MOSQUITTO_PUB):
            self.fail("mosquitto_pub is missing (apt-get install mosquitto-clients)")
        self.port = getattr(MqttNodeTests, "mqtt_port", None) or free_port()
        MqttNodeTests.mqtt_port = self.port
        self.node = yield shared_node("mqtt", env={
            "MQTT_PORT": str(self.port), "DEVICE_RATE": "0.05", "DEVICE_BURST": str(BURST),
            "HISTORY_FLUSH_INTERVAL": "0.05", "IOT_STALE_AFTER": "3600"})
        self.client = yield connect(self, self.node)
        self.events = []
        yield subscribe_devices(self.client.session, self.events)

    def states(self, name):
        return [state for topic, state in self.events if topic == device_topic(name)]

    def values(self, name):
        return [state["value"] for state in self.states(name) if not state.get("stale")]

    @defer.inlineCallbacks
    def device(self, prefix):
        name = fresh_name(prefix)
        credentials = yield register(self, self.node, name)
        return name, credentials

    @defer.inlineCallbacks
    def marker(self):
        """A reading of a fresh device over MQTT, delivered: every reading handled before it was too."""
        name, credentials = yield self.device("marker")
        out, err, code = yield mosquitto_pub(self.port, credentials, mqtt_topic(name), reading("marker"))
        self.assertEqual(code, 0, (out, err))
        yield eventually(lambda: self.values(name) == ["marker"], message="marker not delivered")

    @defer.inlineCallbacks
    def test_readings_reach_subscribers_and_history(self):
        """Readings published over MQTT arrive as iot.device.<name> states with the hub's seq and ts, in
        order, and are in iot.history."""
        name, credentials = yield self.device("mqtt-dev")
        for value in (41, "text", 42.5):
            out, err, code = yield mosquitto_pub(self.port, credentials, mqtt_topic(name), reading(value))
            self.assertEqual(code, 0, (out, err))
        yield eventually(lambda: self.values(name) == [41, "text", 42.5], message="readings not delivered")
        states = self.states(name)
        seqs = [state["seq"] for state in states]
        self.assertEqual(seqs, sorted(set(seqs)))
        for state in states:
            self.assertEqual(state["device"], name)
            self.assertIsInstance(state["ts"], int)

        @defer.inlineCallbacks
        def stored():
            answer = yield self.client.session.call(HISTORY, device_topic(name))
            return [(state["value"], state["seq"]) for state in answer["states"]]
        found = yield stored()  # iot.history writes what its worker still queues first
        self.assertEqual(found, [(state["value"], state["seq"]) for state in states])

    @defer.inlineCallbacks
    def test_docs_example(self):
        """The mosquitto_pub block of docs/mqtt.md ("Try it") publishes a reading of the device in its
        environment."""
        name, (key, secret) = yield self.device("docs")
        with open(os.path.join(REPO, "docs", "mqtt.md")) as handle:
            text = handle.read()
        block = re.search(r"^## Try it\n.*?^```bash\n(.*?)^```", text, re.M | re.S).group(1)
        env = dict(os.environ, MQTT_PORT=str(self.port), DEVICE_NAME=name, DEVICE_KEY=key,
                   DEVICE_SECRET=secret)
        out, err, code = yield getProcessOutputAndValue("/bin/bash", ("-eo", "pipefail", "-c", block),
                                                        env=env)
        self.assertEqual(code, 0, (out, err))
        yield eventually(lambda: self.values(name) == [42], message="docs example reading not delivered")

    @defer.inlineCallbacks
    def test_wrong_secret_refused_at_connect(self):
        """A wrong password (and an unknown key) get CONNACK 'bad user name or password': nothing
        published."""
        name, (key, _) = yield self.device("wrong")
        out, err, code = yield mosquitto_pub(self.port, (key, "not-the-secret"), mqtt_topic(name), reading(1))
        self.assertNotEqual(code, 0)
        self.assertIn(b"bad user name or password", (out + err).lower())
        out, err, code = yield mosquitto_pub(self.port, ("dk" + "0" * 24, "x"), mqtt_topic(name), reading(2))
        self.assertNotEqual(code, 0)
        self.assertIn(b"bad user name or password", (out + err).lower())
        yield self.marker()
        self.assertEqual(self.states(name), [])

    @defer.inlineCallbacks
    def test_mqtt5_closed(self):
        """A CONNECT of MQTT 5 (right credentials) closes the connection: only MQTT 3.1.1 is served."""
        name, credentials = yield self.device("v5")
        args = pub_args(self.port, credentials, mqtt_topic(name))
        args[args.index("mqttv311")] = "mqttv5"
        out, err, code = yield getProcessOutputAndValue(MOSQUITTO_PUB, args + ["-m", reading(5)],
                                                        env=os.environ)
        self.assertNotEqual(code, 0, (out, err))
        yield self.marker()
        self.assertEqual(self.states(name), [])

    @defer.inlineCallbacks
    def test_other_device_topic_refused(self):
        """A PUBLISH on another device's topic (or outside iot/device/) closes the connection (the device
        goes offline: no DISCONNECT); nothing of it is published, on either topic."""
        name, credentials = yield self.device("intruder")
        victim, _ = yield self.device("victim")
        out, err, code = yield mosquitto_pub(self.port, credentials, mqtt_topic(name), reading(1))
        self.assertEqual(code, 0, (out, err))
        for number, topic in enumerate((mqtt_topic(victim), "iot/serial/reader"), 1):
            yield mosquitto_pub(self.port, credentials, topic, reading(666))
            yield eventually(lambda: len(self.states(name)) == 2 * number, message="connection not closed")
            self.assertTrue(self.states(name)[-1]["stale"])
            out, err, code = yield mosquitto_pub(self.port, credentials, mqtt_topic(name), reading(1))
            self.assertEqual(code, 0, (out, err))
            yield eventually(lambda: len(self.states(name)) == 2 * number + 1,
                             message="reading not delivered")
        yield self.marker()
        self.assertEqual(self.states(victim), [])
        self.assertEqual(self.values(name), [1, 1, 1])

    @defer.inlineCallbacks
    def test_over_rate_dropped(self):
        """Beyond DEVICE_BURST readings at once a device's readings are dropped: no subscriber, no history."""
        name, credentials = yield self.device("flood")
        publisher = line_publisher(self, self.port, credentials, mqtt_topic(name))
        for value in range(BURST + 4):
            publisher.send(reading(value))
        publisher.transport.closeStdin()  # mosquitto_pub sends what it read, then DISCONNECT
        code = yield publisher.ended
        self.assertEqual(code, 0, publisher.output)
        yield self.marker()
        self.assertEqual(self.values(name), list(range(BURST)))
        answer = yield self.client.session.call(HISTORY, device_topic(name))
        self.assertEqual([state["value"] for state in answer["states"]], list(range(BURST)))

    @defer.inlineCallbacks
    def test_revoked_key_disconnected(self):
        """Revoking a device closes its open MQTT connection (its device goes offline); a rotated-away key
        too."""
        registry = node_registry(self, self.node)
        for action in ("revoke", "rotate"):
            name, credentials = yield self.device(action)
            publisher = line_publisher(self, self.port, credentials, mqtt_topic(name))
            publisher.send(reading(1))
            yield eventually(lambda: self.values(name) == [1], message="reading not delivered")
            yield getattr(registry, action)(name)
            yield eventually(lambda: any(state.get("stale") for state in self.states(name)),
                             message="{}: connection not closed".format(action))
            publisher.send(reading(2))  # mosquitto_pub reconnects: refused with the old key
            yield self.marker()
            self.assertEqual(self.values(name), [1])

    @defer.inlineCallbacks
    def test_killed_client_marks_device_offline(self):
        """A client killed without DISCONNECT: a stale state of the device and live false in iot.sources;
        its next reading brings it back (live, not stale)."""
        name, credentials = yield self.device("killed")
        publisher = line_publisher(self, self.port, credentials, mqtt_topic(name))
        publisher.send(reading(7))
        yield eventually(lambda: self.values(name) == [7], message="reading not delivered")
        publisher.transport.signalProcess("KILL")
        yield publisher.ended
        yield eventually(lambda: [s.get("stale", False) for s in self.states(name)] == [False, True],
                         message="no offline state")
        offline = self.states(name)[-1]
        self.assertEqual((offline["value"], offline["device"]), (7, name))
        self.assertGreater(offline["seq"], self.states(name)[0]["seq"])

        @defer.inlineCallbacks
        def listed():
            sources = yield self.client.session.call(SOURCES)
            return {entry["source"]: entry["live"] for entry in sources}.get(device_topic(name))
        yield eventually(listed, check=lambda live: live is False, message="still live")
        out, err, code = yield mosquitto_pub(self.port, credentials, mqtt_topic(name), reading(8))
        self.assertEqual(code, 0, (out, err))
        yield eventually(lambda: self.values(name) == [7, 8], message="back online")
        self.assertFalse(self.states(name)[-1].get("stale", False))
        yield eventually(listed, check=lambda live: live is True, message="not live again")

    @defer.inlineCallbacks
    def test_network_loss_marks_device_offline_and_frees_its_place(self):
        """A device whose network goes away (keep-alive 1 s, then nothing: no PINGREQ, no DISCONNECT, its socket
        left open) is closed after 1.5 s and marked offline; it connects and publishes again afterwards."""
        name, credentials = yield self.device("netloss")
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        silent = yield endpoints.connectProtocol(endpoint, protocol.Protocol())
        self.addCleanup(silent.transport.abortConnection)
        silent.transport.write(raw_connect(credentials, keep_alive=1) + raw_publish(mqtt_topic(name), reading(5)))
        yield eventually(lambda: [s.get("stale", False) for s in self.states(name)] == [False, True],
                         timeout=20, message="the silent device was not marked offline",
                         details=lambda: repr(self.states(name)) + "\n" + self.node.log_tail(20))
        self.assertNotIn("AlreadyCalled", self.node.log_text())
        out, err, code = yield mosquitto_pub(self.port, credentials, mqtt_topic(name), reading(6))
        self.assertEqual(code, 0, (out, err))
        yield eventually(lambda: self.values(name) == [5, 6], message="the device did not come back")

    @defer.inlineCallbacks
    def test_clean_disconnect_stays_online(self):
        """A client that sends DISCONNECT leaves its device online."""
        name, credentials = yield self.device("clean")
        publisher = line_publisher(self, self.port, credentials, mqtt_topic(name))
        publisher.send(reading(3))
        yield eventually(lambda: self.values(name) == [3], message="reading not delivered")
        publisher.transport.closeStdin()
        yield publisher.ended
        yield self.marker()
        self.assertEqual([state.get("stale", False) for state in self.states(name)], [False])


def self_signed(directory):
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files in ``directory``: (cert, key)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    paths = os.path.join(directory, "mqtt-cert.pem"), os.path.join(directory, "mqtt-key.pem")
    with open(paths[0], "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return paths


class MqttTlsAndSilenceTests(unittest.TestCase):
    """A node with MQTT over TLS and IOT_STALE_AFTER 1 s: TLS readings; silent HTTP devices go offline."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.port = getattr(MqttTlsAndSilenceTests, "mqtt_port", None) or free_port()
        MqttTlsAndSilenceTests.mqtt_port = self.port
        if getattr(MqttTlsAndSilenceTests, "pem", None) is None:
            MqttTlsAndSilenceTests.pem = self_signed(tempfile.mkdtemp(prefix="hub-mqtt-tls-"))
        cert, key = self.pem
        self.node = yield shared_node("mqtt-tls", env={
            "MQTT_PORT": str(self.port), "MQTT_TLS_CERT": cert, "MQTT_TLS_KEY": key,
            "PUBLIC_URL": "https://hub.example.org", "IOT_STALE_AFTER": "1",
            "HISTORY_FLUSH_INTERVAL": "0.05"})
        self.client = yield connect(self, self.node)
        self.events = []
        yield subscribe_devices(self.client.session, self.events)

    def states(self, name):
        return [state for topic, state in self.events if topic == device_topic(name)]

    @defer.inlineCallbacks
    def test_tls_readings(self):
        """mosquitto_pub over TLS (the node's certificate as CA) publishes; plain MQTT gets no CONNACK."""
        name = fresh_name("tls")
        credentials = yield register(self, self.node, name)
        args = pub_args(self.port, credentials, mqtt_topic(name)) + ["--cafile", self.pem[0], "-m",
                                                                     reading(5)]
        out, err, code = yield getProcessOutputAndValue(MOSQUITTO_PUB, args, env=os.environ)
        self.assertEqual(code, 0, (out, err))
        yield eventually(lambda: [state["value"] for state in self.states(name)][:1] == [5],
                         message="TLS reading not delivered")
        out, err, code = yield mosquitto_pub(self.port, credentials, mqtt_topic(name), reading(6))
        self.assertNotEqual(code, 0)
        self.assertNotIn(6, [state["value"] for state in self.states(name)])

    @defer.inlineCallbacks
    def test_silent_http_device_offline_and_back(self):
        """An HTTP device silent for IOT_STALE_AFTER gets a stale state (live false in iot.sources); its
        next post is online again."""
        name = fresh_name("http")
        credentials = yield register(self, self.node, name)
        status, body, _ = yield post(self.node, credentials, name, 11)
        self.assertEqual(status, 200, body)
        yield eventually(lambda: [s.get("stale", False) for s in self.states(name)] == [False, True],
                         message="no offline state")
        self.assertEqual(self.states(name)[-1]["value"], 11)
        sources = yield self.client.session.call(SOURCES)
        self.assertFalse({entry["source"]: entry["live"] for entry in sources}[device_topic(name)])
        status, body, _ = yield post(self.node, credentials, name, 12)
        self.assertEqual(status, 200, body)
        yield eventually(lambda: len(self.states(name)) >= 3, message="reading not delivered")
        back = self.states(name)[2]
        self.assertEqual((back["value"], back.get("stale", False)), (12, False))


class PlainRefusedTests(unittest.TestCase):
    """Plain MQTT on a node whose PUBLIC_URL is https: the node refuses to start with one line naming
    MQTT_ALLOW_PLAIN."""

    timeout = 120

    @defer.inlineCallbacks
    def test_refused(self):
        node = RouterNode(name="mqtt-plain", env={"MQTT_PORT": str(free_port()),
                                                  "PUBLIC_URL": "https://hub.example.org"})
        self.addCleanup(node.cleanup)
        code, lines, log = yield refused(node)
        self.assertNotEqual(code, 0, node.log_tail(30))
        self.assertEqual(len(lines), 1, node.log_tail(30))
        self.assertIn("MQTT_ALLOW_PLAIN", lines[0])
