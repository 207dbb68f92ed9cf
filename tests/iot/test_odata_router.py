"""
The OData poller through a real router against a real local HTTP server
(Twisted) that switches between OData v2 and v4 answers, 500s, a hanging
request (timeout), garbage and 401, and back to good data.
"""

import base64
import json

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.support.clients import connect
from tests.support.node import RouterNode
from tests.support.polling import eventually

USER, PASSWORD = "iot-reader", "s3cret pass"


class IoTService(Resource):
    """The SCP IoT service's OData entity set; ``mode`` says how it answers."""

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.mode, self.value = "v2", 10
        self.hits = {}
        self.queries = []
        self.open = 0
        self.most_open = 0
        self.transports = set()

    def render_GET(self, request):
        self.hits[self.mode] = self.hits.get(self.mode, 0) + 1
        self.transports.add(request.transport)
        self.queries.append({key.decode(): values[0].decode() for key, values in request.args.items()})
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        request.notifyFinish().addBoth(self._closed)
        authorization = request.getHeader("authorization") or ""
        expected = "Basic " + base64.b64encode("{}:{}".format(USER, PASSWORD).encode()).decode()
        if self.mode == "401" or authorization != expected:
            request.setResponseCode(401)
            return b'{"error": "unauthorized"}'
        if self.mode == "500":
            request.setResponseCode(500)
            return b"internal error"
        if self.mode == "hang":
            return NOT_DONE_YET
        if self.mode == "garbage":
            return b"\x00\xff not json {"
        if self.mode == "v4":
            answer = {"@odata.context": "$metadata#T", "value": [{"C_PERCENT": self.value}]}
        else:
            answer = {"d": {"results": [{"G_CREATED": "/Date(1)/", "C_PERCENT": str(self.value)}]}}
        return json.dumps(answer).encode()

    def _closed(self, _):
        self.open -= 1


class ODataThroughRouterTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.service = IoTService()
        port = reactor.listenTCP(0, Site(self.service, timeout=None), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(self._close_connections)
        url = "http://127.0.0.1:{}/iot/odata.svc/T_IOT_DATA".format(port.getHost().port)
        self.node = RouterNode(name="odata", env={
            "ODATA_URL": url, "ODATA_USER": USER, "ODATA_PASSWORD": PASSWORD, "ODATA_FIELD": "C_PERCENT",
            "ODATA_INTERVAL": "0.1", "ODATA_TIMEOUT": "0.5", "ODATA_BACKOFF_MAX": "0.4"})
        self.addCleanup(self.node.cleanup)
        yield self.node.start()
        self.client = yield connect(self, self.node)
        self.events = []
        yield self.client.session.subscribe(self.events.append, "iot.odata.value")

    @defer.inlineCallbacks
    def _close_connections(self):
        def open_transports():
            return [transport for transport in self.service.transports if not transport.disconnected]

        for transport in open_transports():
            transport.abortConnection()
        yield eventually(lambda: not open_transports(), message="server connections still open")

    def last(self):
        return (self.events[-1]["value"], self.events[-1]["stale"]) if self.events else None

    def get_until(self, expected):
        """Call iot.odata.get until it answers ``(value, stale) == expected``; fire with that state."""
        return eventually(lambda: self.client.session.call("iot.odata.get"),
                          check=lambda state: (state["value"], state["stale"]) == expected,
                          message="iot.odata.get never answered {}".format(expected))

    @defer.inlineCallbacks
    def switch(self, mode, polls=2):
        """Serve ``mode`` until the poller has asked ``polls`` times."""
        self.service.mode = mode
        yield eventually(lambda: self.service.hits.get(mode, 0) >= polls, timeout=15,
                         message="poller did not poll in mode {}".format(mode))

    @defer.inlineCallbacks
    def test_v2_v4_failures_and_recovery(self):
        """v2 and v4 values are published; failures keep the last value as stale; good data recovers."""
        yield self.get_until(("10", False))
        self.assertEqual(self.service.queries[0], {"$top": "1", "$orderby": "G_CREATED desc"})

        self.service.value = 20
        yield self.switch("v4")
        yield eventually(lambda: self.last() == (20, False), message="v4 value not published")

        published = len(self.events)
        for mode in ("500", "hang", "garbage", "401"):
            yield self.switch(mode)
        state = yield self.client.session.call("iot.odata.get")
        self.assertEqual((state["value"], state["stale"]), (20, True))
        self.assertEqual([(e["value"], e["stale"]) for e in self.events[published:]], [(20, True)])
        self.assertEqual(self.service.most_open, 1)

        self.service.value = 30
        yield self.switch("v2", polls=3)
        yield eventually(lambda: self.last() == ("30", False), message="no recovery after good data")
        seqs = [event["seq"] for event in self.events]
        self.assertEqual(seqs, sorted(set(seqs)))
        log = self.node.log_text()
        self.assertEqual(log.count("OData poll of"), 1, "one warning for the whole failure streak")
        self.assertIn("OData poll recovered", log)
