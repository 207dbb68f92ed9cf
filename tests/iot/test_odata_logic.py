"""
The OData poller's logic: reading v2 and v4 answers, the query, and the poll
schedule (interval, backoff, no overlap, log once per failure streak) with an
in-memory HTTP server (treq's StubTreq) on an injected clock.
"""

import base64
import json

from treq.testing import StubTreq
from twisted.internet import task
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from components.core.backoff import Backoff
from components.iot.odata import ODataPoller, PollError, extract_value, query_url


class ExtractValueTests(SynchronousTestCase):
    """extract_value reads the first row's field from v2 and v4 shapes and rejects the rest."""

    def test_v2_and_v4(self):
        """d.results[0], d[0] (v2 without results) and value[0] (v4) are read with the given field."""
        rows = [{"C_VALUE": "42"}, {"C_VALUE": "1"}]
        self.assertEqual(extract_value({"d": {"results": rows}}, "C_VALUE"), "42")
        self.assertEqual(extract_value({"d": [{"C_VALUE": 7}]}, "C_VALUE"), 7)
        self.assertEqual(extract_value({"@odata.context": "x", "value": [{"temp": 21.5}]}, "temp"), 21.5)

    def test_unexpected_shapes(self):
        """Other shapes, no rows, a missing field or a non-scalar value are PollErrors."""
        for document in ([], {"error": "x"}, {"d": {"results": []}}, {"value": {"C_VALUE": 1}},
                         {"value": [{"other": 1}]}, {"value": [{"C_VALUE": {"nested": 1}}]},
                         {"value": ["x"]}):
            self.assertRaises(PollError, extract_value, document, "C_VALUE")

    def test_query(self):
        """$top=1 and $orderby are added, existing parameters are kept and not doubled."""
        self.assertEqual(query_url("http://h/odata/T"), "http://h/odata/T?$top=1&$orderby=G_CREATED%20desc")
        self.assertEqual(query_url("http://h/T?$top=5&sap-client=100", "TS desc"),
                         "http://h/T?$top=5&sap-client=100&$orderby=TS%20desc")


class Scripted(Resource):
    """Answers each GET with the next scripted (status, body); None holds the request open."""

    isLeaf = True

    def __init__(self, script):
        Resource.__init__(self)
        self.script = list(script)
        self.requests = []
        self.open = 0
        self.most_open = 0

    def render_GET(self, request):
        self.requests.append(request)
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if answer is None:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            request.notifyFinish().addBoth(lambda _: setattr(self, "open", self.open - 1))
            return NOT_DONE_YET
        status, body = answer
        request.setResponseCode(status)
        return body if isinstance(body, bytes) else json.dumps(body).encode()


def v2(value):
    return 200, {"d": {"results": [{"C_VALUE": value}]}}


class PollerTests(SynchronousTestCase):
    """ODataPoller polls on schedule, keeps the last value on failure and backs off."""

    def make(self, script, **options):
        self.resource = Scripted(script)
        self.stub = StubTreq(self.resource)
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.events = []
        self.logged = []
        poller = ODataPoller(self.stub, self.clock, "http://iot.example/odata/T", self.events.append,
                             user="u", password="p", interval=1.0, timeout=2.0, backoff_max=8.0,
                             backoff=Backoff(2.0, 8.0, random=lambda: 1.0),
                             **options)
        poller.log = Logger(observer=self.logged.append)
        poller.start()
        self.addCleanup(poller.stop)
        return poller

    def step(self, seconds):
        self.clock.advance(seconds)
        self.stub.flush()

    def test_publishes_changes_only(self):
        """Equal answers are not republished; a change is, with basic auth and the query sent."""
        self.make([v2("10"), v2("10"), v2("11")])
        for _ in range(3):
            self.step(1.0)
        self.assertEqual([e["value"] for e in self.events], ["10", "11"])
        request = self.resource.requests[0]
        expected = b"Basic " + base64.b64encode(b"u:p")
        self.assertEqual(request.requestHeaders.getRawHeaders(b"authorization"), [expected])
        self.assertEqual(request.args[b"$top"], [b"1"])
        self.assertEqual(request.args[b"$orderby"], [b"G_CREATED desc"])

    def test_failures_back_off_log_once_and_recover(self):
        """500, 401 and garbage keep the value stale, back off 2-4-8-8 s, log once, then recover."""
        poller = self.make([v2(5), (500, b"oops"), (401, b""), (200, b"<html>"), (200, {"d": 1}), v2(5)])
        self.step(0)
        times = []
        for _ in range(6):
            before = len(self.resource.requests)
            waited = 0.0
            while len(self.resource.requests) == before:
                self.step(0.5)
                waited += 0.5
            times.append(waited)
        self.assertEqual(times[:5], [1.0, 2.0, 4.0, 8.0, 8.0])
        self.assertEqual([(e["value"], e["stale"]) for e in self.events], [(5, False), (5, True), (5, False)])
        warnings = [e for e in self.logged if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["reason"], "HTTP 500")
        self.assertTrue(any("recovered" in e["log_format"] for e in self.logged))
        self.assertEqual(poller.failures, 0)

    def test_no_overlap_when_slow(self):
        """A request that never answers times out; no second request starts while it is open."""
        poller = self.make([None])
        for _ in range(10):
            self.step(0.5)
        self.assertEqual(self.resource.most_open, 1)
        self.assertGreaterEqual(len(self.resource.requests), 2)
        self.assertEqual(poller.failures, len(self.resource.requests) - 1)
