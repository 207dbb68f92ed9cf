"""
Devices publishing through the HTTP bridge at /publish of a real router,
each with its own key from the device registry: a device's signed post
reaches WAMP subscribers on its own topic iot.device.<name> only, as the
hub's state dict (its seq, never the device's); a post naming another device
is refused and reaches nobody; unsigned, wrongly signed, unknown-key,
expired, replayed, malformed and non-device posts are refused and publish
nothing; a device token publishes on its own topic only and only while it is
registered; the CLI adds, lists, rotates and revokes; the deprecated shared
key works only with DEVICE_SHARED_KEY=on; rotate, revoke and replays take
effect on a second node sharing the PostgreSQL client database; no CORS
headers unless configured; the curl example of docs/iot.md works.
"""

import json
import os
import re
import secrets
import sqlite3
import sys
import tempfile
import time
from urllib.parse import urlsplit

import treq
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions
from twisted.internet import defer, threads, utils
from twisted.trial import unittest

from components.e2e.envelope import b64encode
from components.iot import DEVICE_PREFIX, DEVICE_PUBLISH, DEVICE_TOPIC, ODATA_TOPIC, SERIAL_TOPIC, device_simulator, \
    device_topic
from tests.support.clients import connect
from tests.support.databases import postgres_url
from tests.support.devices import node_registry, register
from tests.support.node import REPO, shared_node
from tests.support.polling import eventually

# a key change reaches every node within the registry's cache (1 s, exact in tests.iot.test_registry);
# the rest is slack for a loaded machine: an answer cached for good still fails
CHANGE_REACHES = 5.0
SHARED_KEY = "test-device"
SHARED_SECRET = "device-secret-" + "y" * 24
SHARED_ENV = {"DEVICE_KEY": SHARED_KEY, "DEVICE_SECRET": SHARED_SECRET}
# what froze every dashboard on main: a reading no device made, with a seq no genuine reading can beat
FORGED = {"value": "FORGED", "seq": 9007199254740991, "ts": 1}


def readings(events):
    """``(topic, device, value)`` of each event (the rest is the hub's seq and ts)."""
    return [(topic, event["device"], event["value"]) for topic, event in events]


def run_module(module, *args, env=None):
    """Run ``python -m MODULE ARGS``; fire with (stdout, stderr, code)."""
    environ = dict(os.environ, **(env or {}))
    return utils.getProcessOutputAndValue(sys.executable, ("-m", module) + args, env=environ, path=REPO)


def fresh_nonce():
    return int(time.monotonic_ns() % 2 ** 31)


def send(url, raw):
    """Send raw request bytes (in a thread); fire with (status, body)."""
    return threads.deferToThread(device_simulator.send, url, raw)


def signed(url, key, secret, payload, stamp=None, nonce=None, seq=1):
    """One request signed the way the sketch signs it, to ``url``; fire with (status, body)."""
    raw = device_simulator.request_bytes(urlsplit(url).netloc, "/publish", key, secret, stamp or device_simulator.timestamp(), seq,
                               fresh_nonce() if nonce is None else nonce, payload)
    return send(url, raw)


@defer.inlineCallbacks
def subscribe_devices(session, events):
    """Collect ``(topic, state)`` of every event under iot.device. on ``session``."""
    yield session.subscribe(lambda state, details=None: events.append((details.topic, state)), DEVICE_PREFIX,
                            options=SubscribeOptions(match="prefix", details_arg="details"))


class DeviceBridgeTests(unittest.TestCase):
    """Registered devices posting to a node that also has DEVICE_KEY/DEVICE_SECRET set, but not DEVICE_SHARED_KEY."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("devices", env=SHARED_ENV)
        self.url = self.node.http + "/publish"
        self.rig = yield register(self, self.node, "rig-a")
        self.other = yield register(self, self.node, "rig-b")
        self.client = yield connect(self, self.node)
        self.events = []
        yield subscribe_devices(self.client.session, self.events)

    def post(self, payload=None, credentials=None, name="rig-a", value=1, **options):
        """Send one request signed with ``credentials`` (rig-a's by default); fire with (status, body)."""
        key, secret = credentials or self.rig
        payload = device_simulator.body(name, value) if payload is None else payload
        return signed(self.url, key, secret, payload, **options)

    @defer.inlineCallbacks
    def test_simulator_posts_reach_own_topic(self):
        """Two values posted by the device simulator CLI arrive in order on iot.device.rig-a, named rig-a."""
        key, secret = self.rig
        out, err, code = yield run_module("components.iot.device_simulator", "--url", self.url, "--value", "42", "--value",
                                          "43", env={"DEVICE_NAME": "rig-a", "DEVICE_KEY": key,
                                                     "DEVICE_SECRET": secret})
        self.assertEqual(code, 0, out.decode() + err.decode())
        yield eventually(lambda: len(self.events) >= 2, message="device readings not delivered")
        self.assertEqual(readings(self.events), [("iot.device.rig-a", "rig-a", 42), ("iot.device.rig-a", "rig-a", 43)])
        self.assertEqual(set(self.events[-1][1]), {"device", "value", "seq", "ts"})
        self.assertLess(self.events[0][1]["seq"], self.events[1][1]["seq"])

    @defer.inlineCallbacks
    def test_impersonation_refused(self):
        """
        Signed with rig-a's key, a post on rig-b's topic, naming rig-b, on
        the shared topic or the old shared body gets 403 and reaches nobody;
        rig-b's own post lands on rig-b's topic only.
        """
        refused = []
        for payload in (device_simulator.body("rig-b", 1), json.dumps({"topic": device_topic("rig-a"),
                                                               "args": [{"device": "rig-b", "value": 2}]}).encode(),
                        device_simulator.shared_body("rig-a", 3), device_simulator.shared_body("rig-b", 4)):
            status, text = yield self.post(payload=payload)
            refused.append((status, json.loads(text)["error"]))
        self.assertEqual(refused, [(403, "reactive.error.not_authorized")] * 4)
        status, _ = yield self.post(credentials=self.other, name="rig-b", value=9)
        self.assertEqual(status, 200)
        yield eventually(lambda: self.events, message="rig-b's own post not delivered")
        self.assertEqual(readings(self.events), [("iot.device.rig-b", "rig-b", 9)])

    @defer.inlineCallbacks
    def test_refused_posts_publish_nothing(self):
        """Unsigned, wrongly signed, unknown-key, shared-key (off here), expired and non-iot posts are refused."""
        unsigned = yield treq.post(self.url, device_simulator.body("rig-a", 1),
                                   headers={"Content-Type": ["application/json"]}, persistent=False)
        yield unsigned.content()
        answers = {"unsigned": unsigned.code}
        answers["wrong secret"], _ = yield self.post(credentials=(self.rig[0], "not-the-secret-at-all"))
        answers["other's secret"], _ = yield self.post(credentials=(self.rig[0], self.other[1]))
        answers["unknown key"], _ = yield self.post(credentials=("dk" + "0" * 24, self.rig[1]))
        answers["shared key"], _ = yield self.post(payload=device_simulator.shared_body("x", 1),
                                                   credentials=(SHARED_KEY, SHARED_SECRET))
        answers["old timestamp"], _ = yield self.post(stamp=device_simulator.timestamp(time.time() - 600))
        answers["future timestamp"], _ = yield self.post(stamp=device_simulator.timestamp(time.time() + 600))
        forged = {"value": "00:00:00", "seq": 1, "ts": 1}
        answers["non-iot topic"], text = yield self.post(payload=json.dumps({"topic": "time.tic",
                                                                             "args": [forged]}).encode())
        self.assertEqual(answers, {"unsigned": 400, "wrong secret": 401, "other's secret": 401, "unknown key": 401,
                                   "shared key": 401, "old timestamp": 400, "future timestamp": 400,
                                   "non-iot topic": 403})
        self.assertIn("reactive.error.not_authorized", text)
        status, _ = yield self.post(value=77)  # a good post after the refused ones: only it is delivered
        self.assertEqual(status, 200)
        yield eventually(lambda: self.events, message="good post not delivered")
        self.assertEqual(readings(self.events), [("iot.device.rig-a", "rig-a", 77)])

    @defer.inlineCallbacks
    def test_replayed_request_refused(self):
        """The same signed request sent twice is delivered once; the replay gets 401."""
        key, secret = self.rig
        raw = device_simulator.request_bytes(urlsplit(self.url).netloc, "/publish", key, secret, device_simulator.timestamp(),
                                   5, 12345, device_simulator.body("rig-a", 9))
        first, _ = yield send(self.url, raw)
        second, text = yield send(self.url, raw)
        self.assertEqual((first, second), (200, 401))
        self.assertIn("reactive.error.device.replayed", text)
        yield eventually(lambda: self.events, message="first post not delivered")
        self.assertEqual(readings(self.events), [("iot.device.rig-a", "rig-a", 9)])

    @defer.inlineCallbacks
    def test_device_token_publishes_own_topic(self):
        """
        A WAMP session with a device token publishes nothing itself (not
        even under iot.device.: a forged huge seq could freeze a client that
        keeps the newest state, nor the components' topics); its
        iot.device.publish(value) goes out on iot.device.<sub> with the hub's
        seq. Another device's topic, extra arguments and an unregistered
        sub are refused.
        """
        watcher = (yield connect(self, self.node)).session
        forged_seen = []
        for topic in (SERIAL_TOPIC, ODATA_TOPIC):
            yield watcher.subscribe(forged_seen.append, topic)
        session = (yield connect(self, self.node, sub="rig-a", role="device")).session
        acknowledged = PublishOptions(acknowledge=True)
        refused = {}
        for topic in (SERIAL_TOPIC, ODATA_TOPIC, device_topic("rig-a"), DEVICE_TOPIC, "iot.sensor.value", "time.tic"):
            with self.assertRaises(ApplicationError) as raised:
                yield session.publish(topic, dict(FORGED), options=acknowledged)
            refused[topic] = raised.exception.error
        self.assertEqual(set(refused.values()), {ApplicationError.NOT_AUTHORIZED}, refused)
        answer = yield session.call(DEVICE_PUBLISH, 3)
        yield eventually(lambda: self.events, message="device reading over WAMP not delivered")
        self.assertEqual(readings(self.events), [("iot.device.rig-a", "rig-a", 3)])
        self.assertEqual(self.events[0][1]["seq"], answer["seq"])
        self.assertLess(self.events[0][1]["seq"], FORGED["seq"])
        errors_seen = []
        for args, kwargs in (((4,), {"seq": FORGED["seq"]}), ((5,), {"topic": device_topic("rig-b")}), (([1],), {})):
            with self.assertRaises(ApplicationError) as raised:
                yield session.call(DEVICE_PUBLISH, *args, **kwargs)
            errors_seen.append(raised.exception.error)
        self.assertEqual(errors_seen, ["reactive.error.invalid_argument", "reactive.error.not_authorized",
                                       "reactive.error.invalid_argument"])
        stranger = (yield connect(self, self.node, sub="never-added", role="device")).session
        with self.assertRaises(ApplicationError) as raised:
            yield stranger.call(DEVICE_PUBLISH, 6)
        self.assertEqual(raised.exception.error, "reactive.error.not_authorized")
        self.assertEqual(len(self.events), 1)
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
        status, text = yield self.post(seq=9007199254740991, value=1)
        self.assertEqual(status, 200, text)
        forged = json.loads(device_simulator.body("rig-a", 2))
        forged["args"][0]["seq"] = 9007199254740991
        status, text = yield self.post(payload=json.dumps(forged).encode())
        self.assertEqual(status, 400, text)
        self.assertIn("reactive.error.invalid_argument", text)
        status, text = yield self.post(value=3)
        self.assertEqual(status, 200, text)
        yield eventually(lambda: len(self.events) >= 2, message="readings not delivered")
        self.assertEqual([value for _, _, value in readings(self.events)], [1, 3])
        first, second = [state for _, state in self.events]
        self.assertLess(first["seq"], second["seq"])
        self.assertEqual(second["seq"], json.loads(text)["seq"])
        after_ms = int(time.time() * 1000)
        for state in (first, second):
            self.assertTrue(before_ms <= state["ts"] <= after_ms, state)
            self.assertTrue(before_ms <= state["seq"] < after_ms + 1000, state)

    @defer.inlineCallbacks
    def test_bad_topics_invalid_argument(self):
        """Topics that are no WAMP URI (iot., iot..x, iot.device.) get 400 invalid_argument, never 500."""
        for topic in ("iot.", "iot..x", "iot.device.", "iot.device..x"):
            payload = json.dumps({"topic": topic, "args": [{"value": 1}]}).encode()
            status, text = yield self.post(payload=payload)
            self.assertEqual((status, json.loads(text)["error"]), (400, "reactive.error.invalid_argument"), topic)
        status, _ = yield self.post(value=6)
        self.assertEqual(status, 200)
        yield eventually(lambda: self.events, message="good post not delivered")
        self.assertEqual(readings(self.events), [("iot.device.rig-a", "rig-a", 6)])

    @defer.inlineCallbacks
    def test_usage_recorded(self):
        """Each accepted post counts as a reading of its device, with its last-seen time, in the registry."""
        registry = node_registry(self, self.node)
        name = "counted-" + secrets.token_hex(3)
        credentials = yield registry.add(name)
        before_ms = int(time.time() * 1000)
        for value in range(3):
            status, _ = yield self.post(credentials=credentials, name=name, value=value)
            self.assertEqual(status, 200)
        # usage is written in batches, after the answer
        found = yield eventually(
            lambda: registry.list().addCallback(lambda items: {item["name"]: item for item in items}[name]),
            check=lambda found: found["readings"] == 3, message="the 3 readings not counted")
        self.assertGreaterEqual(found["last_seen_ms"], before_ms)

    @defer.inlineCallbacks
    def test_no_cors_headers_by_default(self):
        """Without DEVICE_CORS_ORIGINS neither a preflight nor a post from a page's origin gets CORS headers."""
        origin = {"Origin": ["https://evil.example"], "Access-Control-Request-Method": ["POST"]}
        answers = []
        for method in ("OPTIONS", "POST"):
            response = yield treq.request(method, self.url, data=device_simulator.body("x", 1),
                                          headers=dict(origin, **{"Content-Type": ["application/json"]}),
                                          persistent=False)
            yield response.content()
            answers.append(response)
        for response in answers:
            cors = [name for name, _ in response.headers.getAllRawHeaders()
                    if name.lower().startswith(b"access-control-")]
            self.assertEqual(cors, [], response.request.method)


class DeviceCommandTests(unittest.TestCase):
    """python -m components.iot device add/list/rotate/revoke against a running node's registry."""

    timeout = 180

    @defer.inlineCallbacks
    def test_add_list_rotate_revoke(self):
        """
        add --json gives key and secret (stored wrapped, not in plain), the
        key posts at once; list --json shows the readings; after rotate the
        old key is refused and the new one works; after revoke the device is
        refused and listed as revoked; a duplicate add exits 1, an unknown
        device 3.
        """
        node = yield shared_node("devices", env=SHARED_ENV)
        url = node.http + "/publish"

        def cli(*args):
            return run_module("components.iot", "device", *args, "--cbdir", node.directory, env=node.env)

        def post(credentials, value):
            return signed(url, credentials["key"], credentials["secret"], device_simulator.body("cli-1", value))

        out, err, code = yield cli("add", "cli-1", "--json")
        self.assertEqual(code, 0, err.decode())
        first = json.loads(out)
        self.assertEqual(set(first), {"name", "key", "secret"})
        self.assertEqual(first["name"], "cli-1")
        with sqlite3.connect(os.path.join(node.directory, "client.db")) as db:
            stored = repr(db.execute("SELECT * FROM iot_device WHERE name = 'cli-1'").fetchall())
        self.assertIn(first["key"], stored)
        self.assertNotIn(first["secret"], stored)
        self.assertEqual((yield post(first, 1))[0], 200)
        _, err, code = yield cli("add", "cli-1")
        self.assertEqual(code, 1, err.decode())
        self.assertIn(b"already exists", err)

        out, _, code = yield cli("rotate", "cli-1", "--json")
        self.assertEqual(code, 0)
        second = json.loads(out)
        self.assertNotEqual((second["key"], second["secret"]), (first["key"], first["secret"]))
        rotated_at = time.monotonic()
        status, text = yield self.refused_soon(post, first)
        self.assertLess(time.monotonic() - rotated_at, CHANGE_REACHES)
        self.assertEqual(status, 401, text)
        self.assertEqual((yield post(second, 2))[0], 200)

        out, _, code = yield cli("list", "--json")
        self.assertEqual(code, 0)
        listed = {item["name"]: item for item in json.loads(out)}["cli-1"]
        self.assertEqual((listed["state"], listed["key"]), ("active", second["key"]))
        self.assertIsNotNone(listed["rotated"])

        out, _, code = yield cli("revoke", "cli-1")
        self.assertEqual((code, out), (0, b"device cli-1 revoked\n"))
        status, text = yield self.refused_soon(post, second)
        self.assertEqual(status, 401, text)
        out, _, code = yield cli("list", "--json")
        listed = {item["name"]: item for item in json.loads(out)}["cli-1"]
        self.assertEqual(listed["state"], "revoked")
        self.assertGreaterEqual(listed["readings"], 1)
        _, err, code = yield cli("revoke", "no-such-device")
        self.assertEqual(code, 3, err.decode())

    def refused_soon(self, post, credentials, limit=None):
        """Post fresh readings with ``credentials`` until refused; fire with the refusal (fails after ``limit``)."""
        return eventually(lambda: post(credentials, 0), check=lambda answer: answer[0] != 200,
                          timeout=limit or CHANGE_REACHES,
                          message="still accepted after the change")



class SharedKeyTests(unittest.TestCase):
    """The deprecated shared key: only with DEVICE_SHARED_KEY=on, on iot.device.reading only, with a warning."""

    timeout = 180

    @defer.inlineCallbacks
    def test_shared_key_when_on(self):
        """With DEVICE_SHARED_KEY=on the shared key posts on iot.device.reading as the named device; it cannot
        reach a registered device's topic; the node logs the deprecation."""
        node = yield shared_node("devices-shared", env=dict(SHARED_ENV, DEVICE_SHARED_KEY="on"))
        url = node.http + "/publish"
        yield register(self, node, "rig-a")
        client = yield connect(self, node)
        events = []
        yield subscribe_devices(client.session, events)
        status, text = yield signed(url, SHARED_KEY, SHARED_SECRET, device_simulator.shared_body("old-1", 12))
        self.assertEqual(status, 200, text)
        status, text = yield signed(url, SHARED_KEY, SHARED_SECRET, device_simulator.body("rig-a", 13))
        self.assertEqual(status, 403, text)
        yield eventually(lambda: events, message="shared-key post not delivered")
        self.assertEqual(readings(events), [(DEVICE_TOPIC, "old-1", 12)])
        yield node.logged("DEVICE_SHARED_KEY is on (deprecated)")
        self.assertNotIn(SHARED_SECRET, node.log_text())

    @defer.inlineCallbacks
    def test_dev_shared_credentials(self):
        """With DEVICE_SHARED_KEY=on and no DEVICE_KEY the node makes dev credentials; the simulator's --shared
        finds them. Without the setting no such file is made."""
        plain = yield shared_node()
        self.assertFalse(os.path.exists(os.path.join(plain.directory, device_simulator.SECRET_FILE)))
        node = yield shared_node("devices-dev-shared", env={"DEVICE_SHARED_KEY": "on"})
        self.assertTrue(os.path.exists(os.path.join(node.directory, device_simulator.SECRET_FILE)))
        out, err, code = yield run_module("components.iot.device_simulator", "--url", node.http + "/publish", "--shared",
                                          "--cbdir", node.directory, "--value", "5",
                                          env={"DEVICE_KEY": "", "DEVICE_SECRET": ""})
        self.assertEqual(code, 0, out.decode() + err.decode())
        self.assertIn(b"5 200", out)


def docs_curl_example():
    """The shell block of docs/iot.md that signs with openssl and posts with curl, as written there."""
    with open(os.path.join(REPO, "docs", "iot.md")) as handle:
        blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", handle.read(), re.S)
    found = [block for block in blocks if "openssl dgst" in block and "curl " in block]
    assert len(found) == 1, "docs/iot.md has {} curl + openssl blocks".format(len(found))
    return found[0]


class DocsCurlExampleTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_curl_example(self):
        """The curl + openssl example of docs/iot.md, run by bash with a registered device's DEVICE_NAME, DEVICE_KEY
        and DEVICE_SECRET: 200, and the reading arrives on the device's topic."""
        node = yield shared_node()
        key, secret = yield register(self, node, "curl-1")
        client = yield connect(self, node)
        events = []
        yield subscribe_devices(client.session, events)
        workdir = tempfile.mkdtemp(prefix="hub-curl-")
        env = dict(os.environ, HUB=node.http, DEVICE_NAME="curl-1", DEVICE_KEY=key, DEVICE_SECRET=secret)
        out, err, code = yield utils.getProcessOutputAndValue("/bin/bash", ("-c", docs_curl_example()), env=env,
                                                              path=workdir)
        self.assertEqual(code, 0, err.decode())
        self.assertTrue(out.decode().rstrip().endswith(" 200"), out.decode() + err.decode())
        yield eventually(lambda: events, message="the curl post was not delivered")
        self.assertEqual(readings(events), [("iot.device.curl-1", "curl-1", 42)])


_linked = {}


@defer.inlineCallbacks
def two_nodes():
    """Two nodes on one PostgreSQL client database with one E2E_KEK, started once per test process."""
    if "env" not in _linked:
        _linked["env"] = {"DATABASE_URL": postgres_url(None), "E2E_KEK": b64encode(secrets.token_bytes(32))}
    nodes = yield defer.gatherResults([shared_node("pg-{}".format(index), env=_linked["env"])
                                       for index in range(2)])
    return nodes


class TwoNodeTests(unittest.TestCase):
    """Two nodes sharing the PostgreSQL client database: each refuses what the other (or the CLI) changed."""

    timeout = 120

    @defer.inlineCallbacks
    def refused_within(self, node, credentials, name, limit=None):
        """Seconds until ``node`` refuses fresh posts signed with ``credentials`` (fails after ``limit``)."""
        started = time.monotonic()
        # 4 posts a second, under the device's rate limit (a 429 is the limit, not the change: not yet)
        status, text = yield eventually(
            lambda: signed(node.http + "/publish", *credentials, device_simulator.body(name, 1)),
            check=lambda answer: answer[0] not in (200, 429), timeout=limit or CHANGE_REACHES, interval=0.25,
            message="{} still accepts the key after the change".format(node.directory))
        self.assertEqual(status, 401, text)
        self.assertNotIn("replayed", text)
        return time.monotonic() - started

    @defer.inlineCallbacks
    def test_rotate_and_revoke_reach_the_other_node(self):
        """
        A device posting through both nodes: after a rotate the old key is
        refused on the second node within its 1 s cache (CHANGE_REACHES on a loaded machine)
        and the new key works there; after a revoke the new key is refused
        there as soon.
        """
        first, second = yield two_nodes()
        registry = node_registry(self, first)
        name = "linked-" + secrets.token_hex(3)
        old = yield registry.add(name)
        for node in (first, second):  # both nodes have the key in their cache now
            status, text = yield signed(node.http + "/publish", *old, device_simulator.body(name, 1))
            self.assertEqual(status, 200, text)
        new = yield registry.rotate(name)
        elapsed = yield self.refused_within(second, old, name)
        self.assertLess(elapsed, CHANGE_REACHES)
        status, text = yield signed(second.http + "/publish", *new, device_simulator.body(name, 2))
        self.assertEqual(status, 200, text)
        yield registry.revoke(name)
        elapsed = yield self.refused_within(second, new, name)
        self.assertLess(elapsed, CHANGE_REACHES)

    @defer.inlineCallbacks
    def test_replay_refused_on_other_node(self):
        """A signed request accepted by one node is refused (401 replayed) by the other, in both directions."""
        nodes = yield two_nodes()
        name = "replay-" + secrets.token_hex(3)
        key, secret = yield node_registry(self, nodes[0]).add(name)
        events = []
        for node in nodes:
            client = yield connect(self, node)
            yield client.session.subscribe(lambda state: events.append((device_topic(name), state)),
                                           device_topic(name))
        answers = []
        for first, second, value in ((nodes[0], nodes[1], 1), (nodes[1], nodes[0], 2)):
            raw = device_simulator.request_bytes("127.0.0.1", "/publish", key, secret, device_simulator.timestamp(), value,
                                       1000 + value, device_simulator.body(name, value))
            accepted, _ = yield send(first.http + "/publish", raw)
            replayed, text = yield send(second.http + "/publish", raw)
            again, _ = yield send(first.http + "/publish", raw)
            answers.append((accepted, replayed, again))
            self.assertIn("reactive.error.device.replayed", text)
        self.assertEqual(answers, [(200, 401, 401), (200, 401, 401)])
        # the nodes are not linked: each node's subscriber hears the post that node accepted
        yield eventually(lambda: len(events) >= 2, message="accepted posts not delivered")
        self.assertEqual(sorted(value for _, _, value in readings(events)), [1, 2])
