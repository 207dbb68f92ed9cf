"""
Operations: liveness and readiness probes, the Prometheus metrics endpoint,
the peer authenticator's policy and the user relay.
"""

import json
import uuid

import treq
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from components.auth import peerauth
from components.core.settings import SettingsError
from components.counter import NAMED_TOPIC_PREFIX
from components.node import assembly, topology
from components.ops import metrics, monitor, promtext
from components.usersync import user_event_relay
from components.ops.meters import RateMeter
from tests.support.clients import connect
from tests.support.node import RouterNode, free_port, load_config, router_worker, shared_node
from tests.support.polling import eventually

KEY_A = "a" * 64
KEY_B = "0123456789abcdef" * 4
METRICS_TOKEN = "metrics-test-token-" + "m" * 24
BEARER = {"Authorization": "Bearer " + METRICS_TOKEN}
NO_METRICS_TOKEN = {"METRICS_TOKEN": ""}


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


class UserSyncCheckTests(unittest.SynchronousTestCase):
    """The ``usersync`` readiness check: converging fails, behind warns, in sync holds."""

    def status(self, state, ok=False):
        return {"state": state, "ok": ok, "mark": 3, "high": 5, "missing": 2, "requested": True, "heard_s": 1.0}

    def test_converging_is_not_ready(self):
        """A client whose first sync is not complete cannot serve its users: the check fails with the reason."""
        check = monitor.MonitorComponent._usersync_checks(self.status("converging"), None)["usersync"]
        self.assertFalse(check["ok"])
        self.assertIn("2 of the master's messages missing", check["error"])

    def test_behind_stays_ready_with_a_warning(self):
        """A hole after a complete sync is reported but keeps the node in the balancer."""
        check = monitor.MonitorComponent._usersync_checks(self.status("behind"), None)["usersync"]
        self.assertTrue(check["ok"])
        self.assertNotIn("error", check)
        self.assertIn("user sync behind", check["warning"])

    def test_in_sync_holds(self):
        check = monitor.MonitorComponent._usersync_checks(self.status("in sync", ok=True), None)["usersync"]
        self.assertEqual((check["ok"], "error" in check, "warning" in check), (True, False, False))


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
        self.assertEqual(user_event_relay.relay_message("ann", {"seq": 1}), {"username": "ann", "event": {"seq": 1}})
        self.assertRaises(ValueError, user_event_relay.relay_message, "", {})
        self.assertRaises(ValueError, user_event_relay.relay_message, None, {})


@defer.inlineCallbacks
def _get(url, headers=None):
    response = yield treq.get(url, headers=headers, persistent=False)
    text = yield response.text()
    return response.code, text, response


def _samples(text):
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def _label_values(text, family, label):
    """The values of ``label`` in the samples of ``family``."""
    prefix = family + "{" + label + '="'
    return {line[len(prefix):].split('"', 1)[0] for line in text.splitlines() if line.startswith(prefix)}


def _with_internal_transport(config):
    # the client node's internal /metrics service (as topology marks it) on a second web transport
    internal = topology.client_config(load_config())
    service = topology._router(internal)["transports"][2]["paths"]["metrics"]
    router_worker(config)["transports"].append(
        {"id": "internal", "type": "web", "endpoint": {"type": "tcp", "port": free_port()},
         "paths": {"/": {"type": "json", "value": {"transport": "internal"}}, "metrics": service}})
    return config


def _internal_http(node):
    transport = next(item for item in router_worker(node.config)["transports"] if item.get("id") == "internal")
    return "http://127.0.0.1:{}".format(transport["endpoint"]["port"])


def metrics_node():
    """A node with METRICS_TOKEN set, METRICS_INTERVAL 1 s and an internal transport (``_internal_http``)."""
    return shared_node("metrics", env={"METRICS_TOKEN": METRICS_TOKEN, "METRICS_INTERVAL": "1"},
                       transform=_with_internal_transport)


def _without_usersync(config):
    # the user-sync client cannot start without its database (it would stop the node before it is ready)
    worker = router_worker(config)
    worker["components"] = [item for item in worker["components"] if not item["id"].startswith("usersync")]
    return config


class ProbeTests(unittest.TestCase):
    """/health, /health/live, /health/ready and /metrics on a dev node."""

    timeout = 180

    @defer.inlineCallbacks
    def test_live_and_ready(self):
        """Liveness answers ok; readiness checks the router (authenticator registered) and the database."""
        node = yield shared_node(env=NO_METRICS_TOKEN)
        for path in ("/health", "/health/live"):
            code, text, _ = yield _get(node.http + path)
            self.assertEqual((code, json.loads(text)), (200, {"status": "ok"}))
        code, text, response = yield _get(node.http + "/health/ready")
        body = json.loads(text)
        self.assertEqual((code, body["status"]), (200, "ready"), text)
        self.assertEqual(set(body["checks"]), {"router", "database"})
        self.assertTrue(all(check["ok"] for check in body["checks"].values()))
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-store"])
        code, text, _ = yield _get(node.http + "/health/nonsense")
        self.assertEqual((code, json.loads(text)), (404, {
            "error": "reactive.error.not_found", "message": "unknown probe: use /health/live or /health/ready",
            "details": {"probes": ["live", "ready"]}}))

    @defer.inlineCallbacks
    def test_metrics(self):
        """/metrics is Prometheus text: sessions, subscribers per topic, events sent, publications/s, process."""
        node = yield metrics_node()
        client = yield connect(self, node, sub="metrics-watcher")
        tics = []
        yield client.session.subscribe(tics.append, "time.tic")
        yield eventually(lambda: len(tics) >= 1)

        def scrape():
            return _get(node.http + "/metrics", BEARER)
        # the metrics are rendered once per interval: wait for one made after the subscription
        code, text, response = yield eventually(
            scrape, check=lambda answer: _samples(answer[1]).get('hub_topic_subscribers{topic="time.tic"}', 0) >= 1,
            interval=0.25, message="no time.tic subscriber in /metrics")
        self.assertEqual(code, 200)
        self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith("text/plain; version=0.0.4"))
        values = _samples(text)
        self.assertGreaterEqual(values["hub_sessions"], 1)
        self.assertGreaterEqual(values['hub_topic_subscribers{topic="time.tic"}'], 1)
        self.assertGreater(values['hub_wamp_messages_total{direction="sent",type="event"}'], 0)
        self.assertGreater(values['hub_process_resident_memory_bytes'], 1000000)
        self.assertIn("# TYPE hub_wamp_messages_total counter", text)

        # the rate needs two samples of the router's counters (METRICS_INTERVAL, 1 s on this node)
        _, text, _ = yield eventually(scrape, check=lambda answer: 'hub_rate_per_second{kind="publish"}' in answer[1],
                                      interval=0.5, message="no publish rate in /metrics")
        self.assertGreater(_samples(text)['hub_rate_per_second{kind="publish"}'], 0)

    @defer.inlineCallbacks
    def test_draining(self):
        """While <node dir>/draining exists, /health/ready is 503 draining and /health/live stays 200."""
        import os
        node = yield shared_node(env=NO_METRICS_TOKEN)
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
            "AWS_ENDPOINT_URL": "http://127.0.0.1:{}".format(dead), "METRICS_INTERVAL": "0.5",
            "METRICS_TOKEN": METRICS_TOKEN},
            transform=_without_usersync)
        self.addCleanup(node.cleanup)
        yield node.start()
        code, text, _ = yield _get(node.http + "/health/ready")
        body = json.loads(text)
        self.assertEqual((code, body["status"]), (503, "not ready"), text)
        self.assertTrue(body["checks"]["router"]["ok"])
        self.assertFalse(body["checks"]["database"]["ok"])
        self.assertFalse(body["checks"]["queue"]["ok"])
        # /health is public: the database check says it is down, the log says which server
        self.assertEqual(body["checks"]["database"]["error"], "The hub's database is unavailable; try again shortly.")
        self.assertRegex(node.log_text(), r"readiness check database: .*port {}".format(dead))
        code, _, _ = yield _get(node.http + "/health")
        self.assertEqual(code, 200)
        code, text, _ = yield _get(node.http + "/metrics", BEARER)
        self.assertEqual(code, 200)
        self.assertIn('hub_queue_messages{state="visible"} NaN', text)


class _FakeMonitor:
    """What MetricsResource uses of the monitor: ``latest``, ``rendered()``, ``reactor``; collections counted."""

    def __init__(self, clock, latest=None):
        self.reactor = clock
        self.latest = latest
        self.collections = 0
        self.waiting = []

    def rendered(self):
        d = defer.Deferred()
        self.waiting.append(d)
        return d

    def collect(self):
        self.collections += 1
        return defer.succeed([])


def _render(resource, headers=None):
    request = DummyRequest([b""])
    for name, value in (headers or {}).items():
        request.requestHeaders.setRawHeaders(name.encode("ascii"), [value.encode("ascii")])
    body = resource.render(request)
    if body is not NOT_DONE_YET:
        request.write(body)
        request.finish()
    return request


def _text(request):
    return b"".join(request.written).decode("utf-8")


class MetricsAccessTests(unittest.SynchronousTestCase):
    """Who may read /metrics, and that it serves the monitor's latest rendering."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(100)
        self.monitor = _FakeMonitor(self.clock, monitor.Rendered(b"# TYPE hub_x gauge\nhub_x 1\n", 97.5))

    def resource(self, **options):
        return metrics.MetricsResource(lambda: self.monitor, reactor=self.clock, **options)

    def test_public_without_token_setting_is_off(self):
        """Without METRICS_TOKEN a public /metrics answers 404 for everyone, saying how to turn it on."""
        for headers in (None, BEARER):
            request = _render(self.resource(), headers)
            self.assertEqual(request.responseCode, 404)
            self.assertIn("METRICS_TOKEN", _text(request))

    def test_token_required(self):
        """No header, another scheme, a wrong token or a prefix of the right one: 401 with a Bearer challenge."""
        resource = self.resource(token=METRICS_TOKEN)
        for headers in (None, {"Authorization": "Basic " + METRICS_TOKEN},
                        {"Authorization": "Bearer wrong-" + METRICS_TOKEN},
                        {"Authorization": "Bearer " + METRICS_TOKEN[:-1]}, {"Authorization": "Bearer "}):
            request = _render(resource, headers)
            self.assertEqual(request.responseCode, 401, headers)
            self.assertTrue(request.responseHeaders.getRawHeaders(b"www-authenticate")[0].startswith(b"Bearer"))
            self.assertNotIn("hub_x", _text(request))

    def test_right_token_gets_latest_with_age(self):
        """The right token gets the latest rendering unchanged plus its age (header and gauge)."""
        request = _render(self.resource(token=METRICS_TOKEN), BEARER)
        self.assertEqual(request.responseCode, None)  # 200: DummyRequest leaves the default unset
        self.assertEqual(_text(request).splitlines()[:2], ["# TYPE hub_x gauge", "hub_x 1"])
        self.assertIn("hub_metrics_age_seconds 2.5", _text(request))
        self.assertEqual(request.responseHeaders.getRawHeaders(b"age"), [b"2"])
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"), [promtext.CONTENT_TYPE])

    def test_bearer_comparison(self):
        """The scheme is case-insensitive; the token must match exactly; an empty token never matches."""
        token = METRICS_TOKEN
        self.assertTrue(metrics.bearer_matches(b"bearer " + token.encode(), token))
        self.assertFalse(metrics.bearer_matches(b"Bearer " + token.upper().encode(), token))
        self.assertFalse(metrics.bearer_matches(None, token))
        self.assertFalse(metrics.bearer_matches(b"Bearer ", ""))

    def test_internal_is_open(self):
        """On an internal transport /metrics needs no token."""
        request = _render(self.resource(internal=True))
        self.assertEqual(request.responseCode, None)
        self.assertIn("hub_x 1", _text(request))

    def test_requests_never_collect(self):
        """Any number of requests serve the stored rendering: the monitor collects nothing for them."""
        resource = self.resource(internal=True)
        for _ in range(40):
            _render(resource)
        self.assertEqual(self.monitor.collections, 0)

    def test_first_request_waits_for_first_rendering(self):
        """Before the first rendering a request waits for it; past first_wait it gets 503."""
        self.monitor.latest = None
        resource = self.resource(internal=True, first_wait=5)
        waiting = _render(resource)
        self.assertEqual(waiting.finished, 0)
        self.monitor.waiting.pop().callback(monitor.Rendered(b"hub_y 2\n", 100))
        self.assertEqual((waiting.finished, waiting.responseCode), (1, 200))
        self.assertIn("hub_y 2", _text(waiting))
        late = _render(resource)
        self.clock.advance(5)
        self.assertEqual((late.finished, late.responseCode), (1, 503))

    def test_short_token_refused(self):
        """A METRICS_TOKEN shorter than 16 characters is a settings error, not a weak lock."""
        self.assertRaises(SettingsError, metrics.MetricsResource, lambda: None, token="short")

    def test_factory_reads_the_transport_marker(self):
        """The assembly's factory: open only where the config marks the service internal; else METRICS_TOKEN."""
        internal = assembly.MetricsResource({"transport": "internal", "METRICS_TOKEN": METRICS_TOKEN})
        self.assertEqual((internal.internal, internal.token), (True, ""))
        public = assembly.MetricsResource({"METRICS_TOKEN": METRICS_TOKEN})
        self.assertEqual((public.internal, public.token), (False, METRICS_TOKEN))


class _StubMonitor(monitor.MonitorComponent):
    """The monitor's rendering loop with ``collect`` replaced by ``outcomes`` (families or an exception)."""

    def __init__(self, clock, outcomes):
        monitor.MonitorComponent.__init__(self)
        self.reactor = clock
        self.outcomes = list(outcomes)
        self.latest = None
        self._waiting = []

    def collect(self):
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            return defer.fail(outcome)
        return defer.succeed(outcome)


class MonitorRenderingTests(unittest.SynchronousTestCase):
    """The monitor renders its families once per refresh and keeps the last good rendering."""

    def test_refresh_renders_and_wakes_waiters(self):
        """A waiter gets the first rendering; a failed collection keeps the previous one."""
        clock = task.Clock()
        stub = _StubMonitor(clock, [[promtext.Family("hub_a", "gauge", "a").add(1)], RuntimeError("router gone")])
        waiting = stub.rendered()
        self.assertNoResult(waiting)
        clock.advance(7)
        stub.refresh()
        rendered = self.successResultOf(waiting)
        self.assertEqual((rendered.at, rendered.body), (7, b"# HELP hub_a a\n# TYPE hub_a gauge\nhub_a 1\n"))
        clock.advance(5)
        self.successResultOf(stub.refresh())
        self.assertIs(stub.latest, rendered)
        self.assertIs(self.successResultOf(stub.rendered()), rendered)


class MetricsTopologyTests(unittest.SynchronousTestCase):
    """Where the production configs serve /metrics."""

    def test_client_internal_open_public_guarded(self):
        """Client node: the internal /metrics is marked internal; the proxies' public /metrics goes to the
        token-guarded copy, never to the open one."""
        config = topology.client_config(load_config())
        internal = topology._router(config)["transports"][2]
        self.assertEqual(internal["id"], "internal")
        self.assertEqual(internal["paths"]["metrics"]["extra"], {"transport": "internal"})
        guarded = internal["paths"][topology.PUBLIC_METRICS]
        self.assertEqual(guarded["extra"], {"METRICS_TOKEN": "${METRICS_TOKEN}"})
        proxy = next(worker for worker in config["workers"] if worker["type"] == "proxy")
        self.assertEqual(proxy["transports"][0]["paths"]["metrics"]["path"], "/" + topology.PUBLIC_METRICS)

    def test_public_transports_not_internal(self):
        """The dev node, the master and the router replicas serve /metrics on their public port with the token."""
        dev = load_config()
        configs = [dev, topology.master_config(dev), topology.router_replicas_config(dev, routers=2)]
        for config in configs:
            for worker in config["workers"]:
                for transport in worker.get("transports", []):
                    service = transport.get("paths", {}).get("metrics")
                    if service is not None:
                        self.assertEqual(service["extra"], {"METRICS_TOKEN": "${METRICS_TOKEN}"})


class MetricsEndpointTests(unittest.TestCase):
    """/metrics on a real node: the token on the public port, the internal port, the cache, bounded labels."""

    timeout = 120

    @defer.inlineCallbacks
    def test_public_port_needs_the_token(self):
        """No token or a wrong one: 401 without metrics; the right one: 200 with them."""
        node = yield metrics_node()
        for headers in (None, {"Authorization": "Bearer not-the-token-at-all"}):
            code, text, response = yield _get(node.http + "/metrics", headers)
            self.assertEqual(code, 401, text)
            self.assertNotIn("hub_sessions", text)
            self.assertEqual(response.headers.getRawHeaders("www-authenticate")[0][:6], "Bearer")
        code, text, _ = yield _get(node.http + "/metrics", BEARER)
        self.assertEqual(code, 200)
        self.assertIn("hub_sessions", text)

    @defer.inlineCallbacks
    def test_public_port_off_without_token_setting(self):
        """Without METRICS_TOKEN the public /metrics is off (404 saying how to turn it on), even with a header."""
        node = yield shared_node(env=NO_METRICS_TOKEN)
        for headers in (None, BEARER):
            code, text, _ = yield _get(node.http + "/metrics", headers)
            self.assertEqual(code, 404)
            self.assertIn("METRICS_TOKEN", text)
            self.assertNotIn("hub_sessions", text)

    @defer.inlineCallbacks
    def test_internal_transport_open(self):
        """The internal transport's /metrics (as the client topology marks it) answers without a token."""
        node = yield metrics_node()
        code, text, _ = yield _get(_internal_http(node) + "/metrics")
        self.assertEqual(code, 200)
        self.assertIn("hub_sessions", text)

    @defer.inlineCallbacks
    def test_concurrent_requests_share_one_collection(self):
        """40 concurrent scrapes cause at most one collection per METRICS_INTERVAL and all get a stored rendering."""
        node = yield metrics_node()
        interval = 1.0
        code, text, _ = yield _get(node.http + "/metrics", BEARER)
        before = _samples(text)["hub_metrics_collections_total"]
        started = reactor.seconds()
        answers = yield defer.gatherResults([_get(node.http + "/metrics", BEARER) for _ in range(40)])
        code, text, _ = yield _get(node.http + "/metrics", BEARER)
        elapsed = reactor.seconds() - started
        after = _samples(text)["hub_metrics_collections_total"]
        self.assertEqual({answer[0] for answer in answers}, {200})
        self.assertLessEqual(after - before, elapsed // interval + 1, (before, after, elapsed))
        renderings = {_samples(answer[1])["hub_metrics_collections_total"] for answer in answers}
        self.assertLessEqual(len(renderings), after - before + 1)

    @defer.inlineCallbacks
    def test_topic_labels_bounded(self):
        """200 subscriptions to counter.changed.<random> add no label values: they are summed as topic="other"."""
        node = yield metrics_node()
        client = yield connect(self, node, sub="label-flooder")
        for _ in range(200):
            yield client.session.subscribe(lambda *args, **kwargs: None, NAMED_TOPIC_PREFIX + uuid.uuid4().hex)
        # rendered after the subscriptions
        _, text, _ = yield eventually(
            lambda: _get(node.http + "/metrics", BEARER),
            check=lambda answer: _samples(answer[1]).get('hub_topic_subscribers{topic="other"}', 0) >= 200,
            interval=0.25, message="the 200 subscriptions not summed as topic=other")
        labels = _label_values(text, "hub_topic_subscribers", "topic")
        self.assertLessEqual(labels, set(monitor.TOPICS) | {monitor.OTHER})
        self.assertFalse([line for line in text.splitlines() if NAMED_TOPIC_PREFIX in line])
