"""
An application's WAMP publications are rate bounded at the router, on a
real node with small bounds (``SESSION_PUBLISH_RATE`` 5 per second,
``SESSION_PUBLISH_BURST`` 10): of 1,000 events an application publishes as
fast as it can, a subscriber gets the burst and at most what the rate
allows over the time taken; acknowledged publications past the bucket are
answered ``reactive.error.rate_limited``; after a wait the application
publishes again; the node logs a bounded number of warnings. The hub's
own embedded publishers are not bounded: the HTTP bridge delivers every
publication of ``/apps/publish`` past the WAMP burst.
"""

import base64
import json

import treq
from autobahn.wamp import types
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, reactor
from twisted.trial import unittest

from components.core import errors
from tests.applications.test_wamp_gate import AppJoins
from tests.support.clients import connect
from tests.support.node import shared_node
from tests.support.polling import eventually

RATE, BURST = 5, 10
# slack: the marker publication and a token or two of clock granularity
SLACK = 3
FLOOD = 1000
ENV = {"SESSION_PUBLISH_RATE": str(RATE), "SESSION_PUBLISH_BURST": str(BURST), "APPS_RATE": "1000",
       "APPS_BURST": "1000"}
WARNING = "publish rate bound:"
ACK = types.PublishOptions(acknowledge=True)


class WampPublishRateTests(unittest.TestCase):

    timeout = 180
    open_registry = AppJoins.open_registry
    join = AppJoins.join

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("apps-publish-rate", env=ENV)
        self.open_registry()

    @defer.inlineCallbacks
    def subscriber(self, topic, sub):
        """A user session counting the events on ``topic``: fire with the list they are appended to."""
        got = []
        client = yield connect(self, self.node, sub=sub)
        yield client.session.subscribe(lambda value: got.append(value), topic)
        return got

    @defer.inlineCallbacks
    def publish_once(self, app, topic, value, refused):
        """Publish ``value`` acknowledged: True when the router took it; a refusal is kept in ``refused``."""
        try:
            yield app.publish(topic, value, options=ACK)
        except ApplicationError as error:
            refused.append(error.error)
            if error.error != errors.RATE_LIMITED:
                raise
            return False
        return True

    @defer.inlineCallbacks
    def test_flood_is_bounded_and_publishing_resumes(self):
        key, secret = yield self.registry.add("flooder")
        app = yield self.join(key, secret)
        got = yield self.subscriber("app.flooder.x", "flood-watcher")
        offset = len(self.node.log_text())
        started = reactor.seconds()
        for number in range(FLOOD):
            app.publish("app.flooder.x", number)  # no acknowledgement: the router drops what is past the bucket
        # acknowledged ones right behind the flood: at 5 per second, 20 sent at once are not all taken
        attempts = yield defer.DeferredList([app.publish("app.flooder.x", "ack", options=ACK) for _ in range(20)],
                                            consumeErrors=True)
        refused = [failure.value.error for ok, failure in attempts if not ok]
        self.assertTrue(refused, "every acknowledged publication past the flood was taken")
        self.assertEqual(set(refused), {errors.RATE_LIMITED})
        # after a wait the application publishes again; the router keeps the session's order, so the
        # marker reaches the subscriber after every flood event the router took
        yield eventually(lambda: self.publish_once(app, "app.flooder.x", "end", refused), interval=0.25,
                         message="publishing never worked again")
        elapsed = reactor.seconds() - started
        yield eventually(lambda: "end" in got, message="the event published after the wait never arrived",
                         details=lambda: repr(got[-5:]))
        delivered = sum(1 for value in got if value != "ack" and value != "end")
        taken = sum(1 for value in got if value != "end")
        self.assertGreaterEqual(delivered, BURST, got)
        self.assertLessEqual(taken, BURST + RATE * elapsed + SLACK,
                             "{} events in {:.2f} s".format(taken, elapsed))
        # bounded logging: one line at once, then at most one per 10 s
        lines = [line for line in self.node.log_text()[offset:].splitlines() if WARNING in line and key in line]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 2 + int(elapsed / 10), lines)

    @defer.inlineCallbacks
    def test_embedded_http_bridge_is_not_bounded(self):
        key, secret = yield self.registry.add("bridged")
        got = yield self.subscriber("app.bridged.x", "bridge-watcher")
        authorization = b"Basic " + base64.b64encode("{}:{}".format(key, secret).encode("ascii"))
        count = 3 * BURST
        for number in range(count):
            response = yield treq.post(self.node.http + "/apps/publish", persistent=False, timeout=30,
                                       data=json.dumps({"topic": "app.bridged.x", "args": [number]}).encode(),
                                       headers={b"Content-Type": [b"application/json"],
                                                b"Authorization": [authorization]})
            yield response.content()
            self.assertEqual(response.code, 200)
        yield eventually(lambda: len(got) == count, message="the bridge's publications were bounded",
                         details=lambda: "{} of {}".format(len(got), count))
        self.assertEqual(got, list(range(count)))
