"""
Devices publishing through the HTTP bridge at /publish of a real router:
the device simulator's signed posts reach WAMP subscribers as the hub's state
dicts (its seq, never the device's); unsigned, wrongly signed, expired,
replayed, malformed and non-device posts are refused and publish nothing;
devices (HTTP or a device token over WAMP) cannot publish the components'
topics; a replay is refused across nodes sharing the client database; no
CORS headers unless configured; the README's curl example works.
"""

import json
import os
import re
import sys
import tempfile
import time
from urllib.parse import urlsplit

import treq
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions
from twisted.internet import defer, threads, utils
from twisted.trial import unittest

from components.iot import DEVICE_PUBLISH, ODATA_TOPIC, SERIAL_TOPIC, device
from tests.support.clients import connect, eventually
from tests.support.databases import postgres_url
from tests.support.node import REPO, RouterNode, shared_node

KEY = "test-device"
SECRET = "device-secret-" + "y" * 24
ENV = {"DEVICE_KEY": KEY, "DEVICE_SECRET": SECRET}
# what froze every dashboard on main: a reading no device made, with a seq no genuine reading can beat
FORGED = {"value": "FORGED", "seq": 9007199254740991, "ts": 1}


def readings(events):
    """``(device, value)`` of each event (the rest is the hub's seq and ts)."""
    return [(event["device"], event["value"]) for event in events]


def run_cli(*args, env=None):
    """Run ``python -m components.iot.device ARGS``; fire with (stdout, stderr, code)."""
    environ = dict(os.environ, **(env or {}))
    return utils.getProcessOutputAndValue(sys.executable, ("-m", "components.iot.device") + args, env=environ,
                                          path=REPO)


class DeviceBridgeTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("devices", env=ENV)
        self.url = self.node.http + "/publish"
        self.client = yield connect(self, self.node)
        self.events = []
        yield self.client.session.subscribe(self.events.append, device.TOPIC)

    def post(self, payload=None, key=KEY, secret=SECRET, stamp=None, nonce=None, value=1):
        """Send one signed request the way the sketch does (in a thread); fire with (status, body)."""
        payload = device.body("test-rig", value) if payload is None else payload
        stamp = stamp or device.timestamp()
        nonce = nonce if nonce is not None else int(time.monotonic_ns() % 2 ** 31)
        host = urlsplit(self.url).netloc
        raw = device.request_bytes(host, "/publish", key, secret, stamp, 1, nonce, payload)
        return self.send(raw)

    def send(self, raw):
        return threads.deferToThread(device.send, self.url, raw)

    @defer.inlineCallbacks
    def test_simulator_posts_reach_subscribers(self):
        """Two values posted by the device simulator CLI arrive at a WAMP subscriber in order."""
        out, err, code = yield run_cli("--url", self.url, "--value", "42", "--value", "43",
                                       "--device", "sim-1", env=ENV)
        self.assertEqual(code, 0, err.decode())
        yield eventually(lambda: len(self.events) >= 2, message="device readings not delivered")
        self.assertEqual(readings(self.events[-2:]), [("sim-1", 42), ("sim-1", 43)])
        self.assertEqual(set(self.events[-1]), {"device", "value", "seq", "ts"})
        self.assertLess(self.events[-2]["seq"], self.events[-1]["seq"])

    @defer.inlineCallbacks
    def test_refused_posts_publish_nothing(self):
        """Unsigned, wrongly signed, expired and non-iot posts are refused and publish nothing."""
        unsigned = yield treq.post(self.url, device.body("x", 1),
                                   headers={"Content-Type": ["application/json"]}, persistent=False)
        yield unsigned.content()
        answers = {"unsigned": unsigned.code}
        answers["wrong secret"], _ = yield self.post(secret="not-the-secret-at-all")
        answers["unknown key"], _ = yield self.post(key="someone-else")
        answers["old timestamp"], _ = yield self.post(stamp=device.timestamp(time.time() - 600))
        answers["future timestamp"], _ = yield self.post(stamp=device.timestamp(time.time() + 600))
        forged = {"value": "00:00:00", "seq": 1, "ts": 1}
        payload = json.dumps({"topic": "time.tic", "args": [forged]}).encode()
        answers["non-iot topic"], text = yield self.post(payload=payload)
        self.assertEqual(answers, {"unsigned": 400, "wrong secret": 401, "unknown key": 401,
                                   "old timestamp": 400, "future timestamp": 400, "non-iot topic": 403})
        self.assertIn("reactive.error.not_authorized", text)
        status, _ = yield self.post(value=77)  # a good post after the refused ones: only it is delivered
        self.assertEqual(status, 200)
        yield eventually(lambda: self.events, message="good post not delivered")
        self.assertEqual(readings(self.events), [("test-rig", 77)])

    @defer.inlineCallbacks
    def test_replayed_request_refused(self):
        """The same signed request sent twice is delivered once; the replay gets 401."""
        raw = device.request_bytes(urlsplit(self.url).netloc, "/publish", KEY, SECRET, device.timestamp(),
                                   5, 12345, device.body("replay-rig", 9))
        first, _ = yield self.send(raw)
        second, text = yield self.send(raw)
        self.assertEqual((first, second), (200, 401))
        self.assertIn("reactive.error.device.replayed", text)
        yield eventually(lambda: self.events, message="first post not delivered")
        self.assertEqual(readings(self.events), [("replay-rig", 9)])

    @defer.inlineCallbacks
    def test_device_token_reports_through_the_bridge(self):
        """
        A WAMP session with a device token publishes nothing itself, not
        even on iot.device.* (a forged huge seq could freeze a client that
        keeps the newest state) and not the components' topics: it calls
        iot.device.publish, and the bridge publishes the reading under the
        token's subject with the hub's own seq; extra arguments are refused.
        """
        watcher = (yield connect(self, self.node)).session
        forged_seen = []
        for topic in (SERIAL_TOPIC, ODATA_TOPIC):
            yield watcher.subscribe(forged_seen.append, topic)
        session = (yield connect(self, self.node, sub="nodemcu-9", role="device")).session
        acknowledged = PublishOptions(acknowledge=True)
        refused = {}
        for topic in (SERIAL_TOPIC, ODATA_TOPIC, device.TOPIC, "iot.sensor.value", "time.tic"):
            with self.assertRaises(ApplicationError) as raised:
                yield session.publish(topic, dict(FORGED), options=acknowledged)
            refused[topic] = raised.exception.error
        self.assertEqual(set(refused.values()), {ApplicationError.NOT_AUTHORIZED}, refused)
        answer = yield session.call(DEVICE_PUBLISH, 3)
        yield eventually(lambda: self.events, message="device reading over WAMP not delivered")
        self.assertEqual(readings(self.events), [("nodemcu-9", 3)])
        self.assertEqual(self.events[0]["seq"], answer["seq"])
        self.assertLess(self.events[0]["seq"], FORGED["seq"])
        with self.assertRaises(ApplicationError) as raised:
            yield session.call(DEVICE_PUBLISH, 4, seq=FORGED["seq"])
        self.assertEqual(raised.exception.error, "reactive.error.invalid_argument")
        self.assertEqual(forged_seen, [])

    @defer.inlineCallbacks
    def test_forged_component_topics_refused(self):
        """Signed posts on iot.serial.reader / iot.odata.value with a huge seq get 403 and reach nobody."""
        watcher = (yield connect(self, self.node)).session
        forged_seen = []
        for topic in (SERIAL_TOPIC, ODATA_TOPIC):
            yield watcher.subscribe(forged_seen.append, topic)
        for topic in (SERIAL_TOPIC, ODATA_TOPIC):
            status, text = yield self.post(payload=json.dumps({"topic": topic, "args": [FORGED]}).encode())
            self.assertEqual(status, 403, text)
            self.assertIn("reactive.error.not_authorized", text)
        status, _ = yield self.post(value=5)  # delivered after the refused ones
        self.assertEqual(status, 200)
        yield eventually(lambda: self.events, message="good post not delivered")
        self.assertEqual(forged_seen, [])

    @defer.inlineCallbacks
    def test_hub_sets_seq(self):
        """
        The event's seq and ts are the hub's: a huge signed query seq changes
        nothing, a body carrying its own seq is refused (400), and the next
        reading has a higher seq, as the 200 answer says.
        """
        before_ms = int(time.time() * 1000)
        raw = device.request_bytes(urlsplit(self.url).netloc, "/publish", KEY, SECRET, device.timestamp(),
                                   9007199254740991, 4242, device.body("seq-rig", 1))
        status, text = yield self.send(raw)
        self.assertEqual(status, 200, text)
        forged = json.loads(device.body("seq-rig", 2))
        forged["args"][0]["seq"] = 9007199254740991
        status, text = yield self.post(payload=json.dumps(forged).encode())
        self.assertEqual(status, 400, text)
        self.assertIn("reactive.error.invalid_argument", text)
        status, text = yield self.post(device.body("seq-rig", 3))
        self.assertEqual(status, 200, text)
        yield eventually(lambda: len(self.events) >= 2, message="readings not delivered")
        self.assertEqual(readings(self.events), [("seq-rig", 1), ("seq-rig", 3)])
        first, second = self.events
        self.assertLess(first["seq"], second["seq"])
        self.assertEqual(second["seq"], json.loads(text)["seq"])
        after_ms = int(time.time() * 1000)
        for event in self.events:
            self.assertTrue(before_ms <= event["ts"] <= after_ms, event)
            self.assertTrue(before_ms <= event["seq"] < after_ms + 1000, event)

    @defer.inlineCallbacks
    def test_bad_topics_invalid_argument(self):
        """Topics that are no WAMP URI (iot., iot..x, iot.device.) get 400 invalid_argument, never 500."""
        for topic in ("iot.", "iot..x", "iot.device.", "iot.device..x"):
            payload = json.dumps({"topic": topic, "args": [{"device": "bad", "value": 1}]}).encode()
            status, text = yield self.post(payload=payload)
            self.assertEqual((status, json.loads(text)["error"]), (400, "reactive.error.invalid_argument"), topic)
        status, _ = yield self.post(value=6)
        self.assertEqual(status, 200)
        yield eventually(lambda: self.events, message="good post not delivered")
        self.assertEqual(readings(self.events), [("test-rig", 6)])

    @defer.inlineCallbacks
    def test_no_cors_headers_by_default(self):
        """Without DEVICE_CORS_ORIGINS neither a preflight nor a post from a page's origin gets CORS headers."""
        origin = {"Origin": ["https://evil.example"], "Access-Control-Request-Method": ["POST"]}
        answers = []
        for method in ("OPTIONS", "POST"):
            response = yield treq.request(method, self.url, data=device.body("x", 1),
                                          headers=dict(origin, **{"Content-Type": ["application/json"]}),
                                          persistent=False)
            yield response.content()
            answers.append(response)
        for response in answers:
            cors = [name for name, _ in response.headers.getAllRawHeaders()
                    if name.lower().startswith(b"access-control-")]
            self.assertEqual(cors, [], response.request.method)


class DevCredentialTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_dev_credentials_in_node_dir(self):
        """Without DEVICE_KEY/DEVICE_SECRET the node makes dev credentials; the simulator finds them."""
        node = yield shared_node()
        self.assertTrue(os.path.exists(os.path.join(node.directory, device.SECRET_FILE)))
        out, err, code = yield run_cli("--url", node.http + "/publish", "--cbdir", node.directory,
                                       "--value", "5")
        self.assertEqual(code, 0, out.decode() + err.decode())
        self.assertIn(b"5 200", out)


def readme_curl_example():
    """The README's shell block that signs with openssl and posts with curl, as written there."""
    with open(os.path.join(REPO, "README.md")) as handle:
        blocks = re.findall(r"```sh\n(.*?)```", handle.read(), re.S)
    found = [block for block in blocks if "openssl dgst" in block and "curl " in block]
    assert len(found) == 1, "README has {} curl + openssl blocks".format(len(found))
    return found[0]


class ReadmeCurlExampleTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_curl_example(self):
        """The README's curl + openssl example, run by bash in a directory whose .crossbar is the node's: 200."""
        node = yield shared_node()  # dev credentials in <node dir>/secrets
        client = yield connect(self, node)
        events = []
        yield client.session.subscribe(events.append, device.TOPIC)
        workdir = tempfile.mkdtemp(prefix="hub-curl-")
        os.symlink(node.directory, os.path.join(workdir, ".crossbar"))
        out, err, code = yield utils.getProcessOutputAndValue(
            "/bin/bash", ("-c", readme_curl_example()), env=dict(os.environ, HUB=node.http), path=workdir)
        self.assertEqual(code, 0, err.decode())
        self.assertTrue(out.decode().rstrip().endswith(" 200"), out.decode() + err.decode())
        yield eventually(lambda: events, message="the curl post was not delivered")
        self.assertEqual(readings(events), [("curl-1", 42)])


class SharedReplayMemoryTests(unittest.TestCase):
    """Two nodes on one PostgreSQL client database refuse each other's replays."""

    timeout = 120

    @defer.inlineCallbacks
    def test_replay_refused_on_other_node(self):
        """A signed request accepted by one node is refused (401 replayed) by the other, in both directions."""
        env = dict(ENV, DATABASE_URL=postgres_url(self))
        nodes = [RouterNode(env=env, name="replay-{}".format(index)) for index in range(2)]
        for node in nodes:
            self.addCleanup(node.cleanup)
        yield defer.gatherResults([node.start() for node in nodes])
        events = []
        for node in nodes:
            client = yield connect(self, node)
            yield client.session.subscribe(events.append, device.TOPIC)

        def send(node, raw):
            return threads.deferToThread(device.send, node.http + "/publish", raw)

        answers = []
        for first, second, value in ((nodes[0], nodes[1], 1), (nodes[1], nodes[0], 2)):
            raw = device.request_bytes("127.0.0.1", "/publish", KEY, SECRET, device.timestamp(), value,
                                       1000 + value, device.body("shared-rig", value))
            accepted, _ = yield send(first, raw)
            replayed, text = yield send(second, raw)
            again, _ = yield send(first, raw)
            answers.append((accepted, replayed, again))
            self.assertIn("reactive.error.device.replayed", text)
        self.assertEqual(answers, [(200, 401, 401), (200, 401, 401)])
        yield eventually(lambda: len(events) >= 2, message="accepted posts not delivered")
        self.assertEqual(sorted(readings(events)), [("shared-rig", 1), ("shared-rig", 2)])
