"""
Devices publishing through the HTTP bridge at /publish of a real router:
the device simulator's signed posts reach WAMP subscribers; unsigned, wrongly
signed, expired, replayed and non-iot posts are refused and publish nothing.
"""

import json
import os
import sys
import time
from urllib.parse import urlsplit

import treq
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions
from twisted.internet import defer, threads, utils
from twisted.trial import unittest

from components.iot import device
from tests.support.clients import connect, eventually
from tests.support.node import REPO, shared_node

KEY = "test-device"
SECRET = "device-secret-" + "y" * 24
ENV = {"DEVICE_KEY": KEY, "DEVICE_SECRET": SECRET}


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
        self.assertEqual(self.events[-2:],
                         [{"device": "sim-1", "value": 42}, {"device": "sim-1", "value": 43}])

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
        self.assertEqual(self.events, [{"device": "test-rig", "value": 77}])

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
        self.assertEqual(self.events, [{"device": "replay-rig", "value": 9}])

    @defer.inlineCallbacks
    def test_device_role_publishes_iot_only(self):
        """A WAMP session with a device token may publish iot.* but not other topics."""
        session = (yield connect(self, self.node, sub="nodemcu-9", role="device")).session
        acknowledged = PublishOptions(acknowledge=True)
        yield session.publish(device.TOPIC, {"device": "wamp", "value": 3}, options=acknowledged)
        with self.assertRaises(ApplicationError) as raised:
            yield session.publish("time.tic", {"value": "x"}, options=acknowledged)
        self.assertEqual(raised.exception.error, ApplicationError.NOT_AUTHORIZED)
        yield eventually(lambda: self.events, message="device WAMP publish not delivered")
        self.assertEqual(self.events, [{"device": "wamp", "value": 3}])


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
