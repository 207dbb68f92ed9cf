"""
Operations: liveness and readiness probes, the Prometheus metrics endpoint,
the peer authenticator's policy and the user relay.
"""

import json

import treq
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from components.auth import peerauth
from components.ops import promtext
from components.usersync import userrelay
from components.ops.meters import RateMeter
from tests.support.clients import connect, eventually
from tests.support.node import RouterNode, free_port, router_worker, shared_node

KEY_A = "a" * 64
KEY_B = "0123456789abcdef" * 4


class PromTextTests(unittest.SynchronousTestCase):
    """The Prometheus text format."""

    def test_render(self):
        """HELP and TYPE lines, sorted escaped labels, integers and floats as Prometheus reads them."""
        gauge = promtext.Family("hub_x", "gauge", "An x").add(3, b="2", a='q"\\\n').add(0.5)
        text = promtext.render([gauge, promtext.Family("hub_empty", "counter", "left out")])
        self.assertEqual(text, '# HELP hub_x An x\n# TYPE hub_x gauge\nhub_x{a="q\\"\\\\\\n",b="2"} 3\nhub_x 0.5\n')

    def test_special_numbers(self):
        """NaN and infinities use Prometheus' spelling; booleans are 1 and 0."""
        family = promtext.Family("hub_y", "gauge", "y")
        for value in (float("nan"), float("inf"), float("-inf"), True):
            family.add(value)
        self.assertEqual(promtext.render([family]).splitlines()[2:], ["hub_y NaN", "hub_y +Inf", "hub_y -Inf", "hub_y 1"])

    def test_kind_checked(self):
        """Only counters and gauges exist here."""
        self.assertRaises(ValueError, promtext.Family, "hub_z", "histogram", "z")


class RateMeterTests(unittest.SynchronousTestCase):
    """Per-second rates between samples."""

    def test_rates(self):
        """No rate before the second sample; then the growth per second; a counter reset gives 0, not negative."""
        meter = RateMeter()
        self.assertEqual(meter.sample(10.0, {"event": 100}), {})
        self.assertEqual(meter.sample(12.0, {"event": 500}), {"event": 200.0})
        self.assertEqual(meter.sample(13.0, {"event": 0}), {"event": 0.0})


class PeerPolicyTests(unittest.SynchronousTestCase):
    """Who may open a router-to-router link."""

    def test_parse_keys(self):
        """Keys are 64 hex digits, comma or space separated, case-insensitive; anything else is refused."""
        self.assertEqual(peerauth.parse_keys(KEY_A.upper() + ", " + KEY_B + "\n"), {KEY_A, KEY_B})
        self.assertEqual(peerauth.parse_keys(""), set())
        self.assertRaises(ValueError, peerauth.parse_keys, "abc")

    def test_accepted_key_gets_rlink_role(self):
        """A listed key joins as role rlink with an authid derived from the key."""
        principal = peerauth.PeerPolicy({KEY_A}).authenticate("reactive", None, {"authextra": {"pubkey": KEY_A}})
        self.assertEqual((principal["role"], principal["authid"], principal["pubkey"]),
                         ("rlink", "peer-" + KEY_A[:16], KEY_A))

    def test_unknown_key_refused(self):
        """An unlisted key, or none, is refused with an error URI."""
        policy = peerauth.PeerPolicy({KEY_A})
        for details in ({"authextra": {"pubkey": KEY_B}}, {"authextra": {}}, {}, None):
            with self.assertRaises(ApplicationError) as caught:
                policy.authenticate("reactive", None, details)
            self.assertEqual(caught.exception.error, "reactive.error.auth.invalid_token")

    def test_node_public_key(self):
        """The node's own key is read from key.pub; a directory without one gives None."""
        directory = self.mktemp()
        import os
        os.makedirs(directory)
        self.assertIsNone(peerauth.node_public_key(directory))
        with open(os.path.join(directory, "key.pub"), "w") as handle:
            handle.write("Crossbar.io node public key\n\npublic-key-ed25519: {}\n".format(KEY_B.upper()))
        self.assertEqual(peerauth.node_public_key(directory), KEY_B)


class UserRelayTests(unittest.SynchronousTestCase):
    """The users.relay payload."""

    def test_message(self):
        """The relay message names the user and carries the event unchanged; a user is required."""
        self.assertEqual(userrelay.relay_message("ann", {"seq": 1}), {"username": "ann", "event": {"seq": 1}})
        self.assertRaises(ValueError, userrelay.relay_message, "", {})
        self.assertRaises(ValueError, userrelay.relay_message, None, {})


@defer.inlineCallbacks
def _get(url):
    response = yield treq.get(url, persistent=False)
    text = yield response.text()
    return response.code, text, response


def _samples(text):
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def _without_usersync(config):
    # the user-sync client cannot start without its database (it would stop the node before it is ready)
    worker = router_worker(config)
    worker["components"] = [item for item in worker["components"] if not item["id"].startswith("usersync")]
    return config


class ProbeTests(unittest.TestCase):
    """/health, /health/live, /health/ready and /metrics on a dev node."""

    timeout = 90

    @defer.inlineCallbacks
    def test_live_and_ready(self):
        """Liveness answers ok; readiness checks the router (authenticator registered) and the database."""
        node = yield shared_node()
        for path in ("/health", "/health/live"):
            code, text, _ = yield _get(node.http + path)
            self.assertEqual((code, json.loads(text)), (200, {"status": "ok"}))
        code, text, response = yield _get(node.http + "/health/ready")
        body = json.loads(text)
        self.assertEqual((code, body["status"]), (200, "ready"), text)
        self.assertEqual(set(body["checks"]), {"router", "database"})
        self.assertTrue(all(check["ok"] for check in body["checks"].values()))
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])
        code, _, _ = yield _get(node.http + "/health/nonsense")
        self.assertEqual(code, 404)

    @defer.inlineCallbacks
    def test_metrics(self):
        """/metrics is Prometheus text: sessions, subscribers per topic, events sent, publications/s, process."""
        node = yield shared_node()
        client = yield connect(self, node, sub="metrics-watcher")
        tics = []
        yield client.session.subscribe(tics.append, "time.tic")
        yield eventually(lambda: len(tics) >= 1)
        state = {}

        @defer.inlineCallbacks
        def scrape():
            code, text, response = yield _get(node.http + "/metrics")
            state.update(code=code, text=text, type=response.headers.getRawHeaders("content-type")[0])
        yield scrape()
        self.assertEqual(state["code"], 200)
        self.assertTrue(state["type"].startswith("text/plain; version=0.0.4"))
        values = _samples(state["text"])
        self.assertGreaterEqual(values["hub_sessions"], 1)
        self.assertGreaterEqual(values['hub_topic_subscribers{topic="time.tic"}'], 1)
        self.assertGreater(values['hub_wamp_messages_total{direction="sent",type="event"}'], 0)
        self.assertGreater(values['hub_process_resident_memory_bytes'], 1000000)
        self.assertIn("# TYPE hub_wamp_messages_total counter", state["text"])

        # the rate needs two samples of the router's counters (METRICS_INTERVAL, 5 s by default)
        for _ in range(40):
            yield scrape()
            if 'hub_rate_per_second{kind="publish"}' in state["text"]:
                break
            yield task.deferLater(reactor, 0.5, lambda: None)  # poll interval
        self.assertGreater(_samples(state["text"])['hub_rate_per_second{kind="publish"}'], 0)

    @defer.inlineCallbacks
    def test_draining(self):
        """While <node dir>/draining exists, /health/ready is 503 draining and /health/live stays 200."""
        import os
        node = yield shared_node()
        flag = os.path.join(node.directory, "draining")
        with open(flag, "w"):
            pass
        self.addCleanup(lambda: os.path.exists(flag) and os.remove(flag))
        code, text, _ = yield _get(node.http + "/health/ready")
        self.assertEqual((code, json.loads(text)), (503, {"status": "draining"}))
        code, _, _ = yield _get(node.http + "/health/live")
        self.assertEqual(code, 200)
        os.remove(flag)
        code, _, _ = yield _get(node.http + "/health/ready")
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_not_ready_when_dependencies_down(self):
        """With the database and the SQS queue unreachable, /health/ready is 503 naming both; /health stays 200."""
        dead = free_port()
        node = RouterNode(name="notready", env={
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:{}/nothing".format(dead),
            "SQS_QUEUE_URL": "http://127.0.0.1:{}/000000000000/nothing".format(dead),
            "AWS_ENDPOINT_URL": "http://127.0.0.1:{}".format(dead), "METRICS_INTERVAL": "0.5"},
            transform=_without_usersync)
        self.addCleanup(node.cleanup)
        yield node.start()
        code, text, _ = yield _get(node.http + "/health/ready")
        body = json.loads(text)
        self.assertEqual((code, body["status"]), (503, "not ready"), text)
        self.assertTrue(body["checks"]["router"]["ok"])
        self.assertFalse(body["checks"]["database"]["ok"])
        self.assertFalse(body["checks"]["queue"]["ok"])
        code, _, _ = yield _get(node.http + "/health")
        self.assertEqual(code, 200)
        code, text, _ = yield _get(node.http + "/metrics")
        self.assertEqual(code, 200)
        self.assertIn('hub_queue_messages{state="visible"} NaN', text)
