"""
The per-device rate limit through a real router (DEVICE_RATE 0.05/s and
DEVICE_BURST 3 here, so a test's posts never earn a new token): a device's
signed posts beyond its burst get 429 with Retry-After and
reactive.error.rate_limited, reach no subscriber and no history;
iot.device.publish beyond it answers reactive.error.rate_limited; both
paths draw on one bucket per device; another device is not affected; a
replayed request costs the device nothing.
"""

import itertools
import json
import secrets
from urllib.parse import urlencode

import treq
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest

from components.core import errors
from components.iot import DEVICE_PUBLISH, DEVICE_REPLAYED, HISTORY, device_simulator, device_topic, request_signing
from tests.iot.test_devices_router import subscribe_devices
from tests.support.clients import connect
from tests.support.devices import register
from tests.support.node import shared_node
from tests.support.polling import eventually

BURST = 3
ENV = {"DEVICE_RATE": "0.05", "DEVICE_BURST": str(BURST), "HISTORY_FLUSH_INTERVAL": "0.05"}
_names = itertools.count(1)


def fresh_name(prefix):
    """A device name no other test of this process used (each device has its own bucket)."""
    return "{}-{}-{}".format(prefix, next(_names), secrets.token_hex(3))


@defer.inlineCallbacks
def post(node, credentials, name, value, nonce=None, stamp=None):
    """One signed reading of ``name``; fire with ``(status, decoded body, Retry-After or None)``."""
    key, secret = credentials
    payload = device_simulator.body(name, value)
    stamp = stamp or request_signing.timestamp()
    nonce = secrets.randbelow(2 ** 31) if nonce is None else nonce
    query = urlencode({"key": key, "timestamp": stamp, "seq": 1, "nonce": nonce,
                       "signature": request_signing.sign(secret, key, stamp, 1, nonce, payload)})
    url = node.http + "/publish?" + query
    response = yield treq.post(url, payload, headers={b"Content-Type": [b"application/json"]}, persistent=False)
    body = yield response.text()
    retry_after = response.headers.getRawHeaders(b"retry-after", [None])[0]
    return response.code, json.loads(body), retry_after


class DeviceRateLimitTests(unittest.TestCase):
    """One node with a tight device limit; every test uses devices of its own."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("device-rate", env=ENV)
        self.client = yield connect(self, self.node)
        self.events = []
        yield subscribe_devices(self.client.session, self.events)

    def delivered(self, name):
        return [state["value"] for topic, state in self.events if topic == device_topic(name)]

    @defer.inlineCallbacks
    def stored(self, name):
        answer = yield self.client.session.call(HISTORY, device_topic(name))
        return [state["value"] for state in answer["states"]]

    @defer.inlineCallbacks
    def assertPublished(self, expected):
        """
        ``expected`` (device name -> values) is exactly what reached the
        subscriber and (for the first device) the history: checked after a
        marker reading of a fresh device arrived, which the one publisher
        sent after every reading before it.
        """
        marker = fresh_name("marker")
        credentials = yield register(self, self.node, marker)
        status, body, _ = yield post(self.node, credentials, marker, "marker")
        self.assertEqual(status, 200, body)
        yield eventually(lambda: self.delivered(marker) == ["marker"], message="marker not delivered")
        for name, values in expected.items():
            self.assertEqual(self.delivered(name), values, name)
        name, values = next(iter(expected.items()))
        stored = yield self.stored(name)
        self.assertEqual(stored, values)

    @defer.inlineCallbacks
    def test_http_posts_over_the_limit(self):
        """
        After its burst a device's posts get 429 reactive.error.rate_limited
        with Retry-After; the refused readings reach neither the subscriber
        nor the history, while another device still posts.
        """
        name, other = fresh_name("flood"), fresh_name("calm")
        credentials = yield register(self, self.node, name)
        other_credentials = yield register(self, self.node, other)
        answers = []
        for value in range(BURST + 4):
            answers.append((yield post(self.node, credentials, name, value)))
        self.assertEqual([status for status, _, _ in answers], [200] * BURST + [429] * 4, answers)
        for status, body, retry_after in answers[BURST:]:
            self.assertEqual(body["error"], errors.RATE_LIMITED)
            self.assertGreater(body["details"]["retry_after"], 0)
            self.assertGreaterEqual(int(retry_after), 1)
        status, body, _ = yield post(self.node, other_credentials, other, 99)
        self.assertEqual(status, 200, body)
        yield self.assertPublished({name: list(range(BURST)), other: [99]})

    @defer.inlineCallbacks
    def test_wamp_readings_over_the_limit(self):
        """
        iot.device.publish past the burst answers reactive.error.rate_limited
        (with retry_after) and publishes nothing; the same device's HTTP post
        is refused too (one bucket), another device's call is answered.
        """
        name, other = fresh_name("wamp"), fresh_name("wamp-calm")
        credentials = yield register(self, self.node, name)
        yield register(self, self.node, other)
        session = (yield connect(self, self.node, sub=name, role="device")).session
        for value in range(BURST):
            yield session.call(DEVICE_PUBLISH, value)
        for value in (BURST, BURST + 1):
            with self.assertRaises(ApplicationError) as caught:
                yield session.call(DEVICE_PUBLISH, value)
            self.assertEqual(caught.exception.error, errors.RATE_LIMITED)
            self.assertGreater(caught.exception.kwargs["retry_after"], 0)
        status, body, retry_after = yield post(self.node, credentials, name, 50)
        self.assertEqual((status, body["error"]), (429, errors.RATE_LIMITED))
        calm = (yield connect(self, self.node, sub=other, role="device")).session
        answer = yield calm.call(DEVICE_PUBLISH, 7)
        self.assertIn("seq", answer)
        yield self.assertPublished({name: list(range(BURST)), other: [7]})

    @defer.inlineCallbacks
    def test_http_burst_then_wamp_refused(self):
        """A device that spent its burst over HTTP is refused over WAMP too."""
        name = fresh_name("both")
        credentials = yield register(self, self.node, name)
        for value in range(BURST):
            status, body, _ = yield post(self.node, credentials, name, value)
            self.assertEqual(status, 200, body)
        session = (yield connect(self, self.node, sub=name, role="device")).session
        with self.assertRaises(ApplicationError) as caught:
            yield session.call(DEVICE_PUBLISH, 9)
        self.assertEqual(caught.exception.error, errors.RATE_LIMITED)

    @defer.inlineCallbacks
    def test_replays_cost_nothing(self):
        """Replaying one accepted request is refused as a replay and does not use up the device's burst: the
        device still has exactly its burst of readings."""
        name = fresh_name("replayed")
        credentials = yield register(self, self.node, name)
        stamp = request_signing.timestamp()
        status, body, _ = yield post(self.node, credentials, name, 0, nonce=12345, stamp=stamp)
        self.assertEqual(status, 200, body)
        for _ in range(BURST + 2):
            status, body, _ = yield post(self.node, credentials, name, 0, nonce=12345, stamp=stamp)
            self.assertEqual((status, body["error"]), (401, DEVICE_REPLAYED))
        for value in range(1, BURST):
            status, body, _ = yield post(self.node, credentials, name, value)
            self.assertEqual(status, 200, body)
        status, body, _ = yield post(self.node, credentials, name, BURST)
        self.assertEqual((status, body.get("error")), (429, errors.RATE_LIMITED))
