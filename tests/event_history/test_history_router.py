"""
The stored event history on a real node: events an application publishes
(over HTTP and over WAMP) arrive on ``hub.feed.<topic>`` with their stored
position, ``hub.history`` answers the same messages in order after a
position, per-user events only for their user (live and from history), and
pruning flags a reader whose position is older than what is kept.
"""

import base64
import json

import treq
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest

from components.event_history import HISTORY, feed_topic
from tests.applications.test_wamp_gate import AppJoins
from tests.support.clients import connect
from tests.support.node import shared_node
from tests.support.polling import eventually

ENV = {"HISTORY_TOPIC_MAX_EVENTS": "4", "HISTORY_TOPIC_PRUNE_INTERVAL": "0.2"}
WAIT = 30.0


class HistoryRouterTests(unittest.TestCase):
    timeout = 180
    # joining as an application, without AppJoins' own tests
    open_registry = AppJoins.open_registry
    join = AppJoins.join

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("event-history", env=ENV)
        self.open_registry()

    @defer.inlineCallbacks
    def app(self, name):
        key, secret = yield self.registry.add(name)
        return key, secret, "Basic " + base64.b64encode("{}:{}".format(key, secret).encode()).decode()

    @defer.inlineCallbacks
    def post(self, auth, body):
        response = yield treq.post(self.node.http + "/apps/publish", data=json.dumps(body).encode(),
                                   headers={b"Content-Type": [b"application/json"],
                                            b"Authorization": [auth.encode()]}, persistent=False, timeout=30)
        answer = yield response.json()
        self.assertEqual(response.code, 200, answer)
        return answer

    @defer.inlineCallbacks
    def feed(self, client, topic):
        got = []
        yield client.session.subscribe(lambda message: got.append(message), feed_topic(topic))
        return got

    @defer.inlineCallbacks
    def test_feed_and_history_agree_and_personal_events_stay_personal(self):
        """Three events for all and one for alice: alice's feed and history hold four, bob's three, in the
        same order with the same positions; after a position only what followed it."""
        _, _, auth = yield self.app("news")
        topic = "app.news.items"
        alice = yield connect(self, self.node, sub="alice")
        bob = yield connect(self, self.node, sub="bob")
        alice_feed = yield self.feed(alice, topic)
        bob_feed = yield self.feed(bob, topic)
        yield self.post(auth, {"topic": topic, "args": [1]})
        yield self.post(auth, {"topic": topic, "args": [2], "to_users": ["alice"]})
        yield self.post(auth, {"topic": topic, "args": [3], "kwargs": {"k": "v"}})
        yield eventually(lambda: len(alice_feed) == 3 and len(bob_feed) == 2, timeout=WAIT,
                         message="feeds incomplete", details=lambda: (alice_feed, bob_feed))
        # the personal event is stored by the application bridge's recorder, the others by the event history's:
        # positions order them, the feed may deliver them out of it (hub.js orders by position)
        alice_feed.sort(key=lambda message: message["publication"])
        bob_feed.sort(key=lambda message: message["publication"])
        self.assertEqual(sorted(message["args"] for message in alice_feed), [[1], [2], [3]])
        self.assertEqual([message["args"] for message in bob_feed], [[1], [3]])
        positions = [message["publication"] for message in alice_feed]
        self.assertEqual(len(set(positions)), 3)
        self.assertEqual(next(message for message in alice_feed if message["args"] == [3])["kwargs"], {"k": "v"})
        page = yield alice.session.call(HISTORY, topic)
        self.assertEqual(page["events"], alice_feed)
        self.assertEqual((page["topic"], page["more"], page["pruned"]), (topic, False, False))
        self.assertGreaterEqual(page["last"], positions[-1])
        page = yield bob.session.call(HISTORY, topic)
        self.assertEqual(page["events"], bob_feed)
        page = yield alice.session.call(HISTORY, topic, after_publication=positions[0], limit=1)
        self.assertEqual((page["events"], page["more"]), ([alice_feed[1]], True))

    @defer.inlineCallbacks
    def test_wamp_application_events_are_recorded(self):
        """An application publishing over WAMP: its events are stored and fed like those over HTTP."""
        key, secret, _ = yield self.app("sensorco")
        application = yield self.join(key, secret)
        topic = "app.sensorco.readings"
        carol = yield connect(self, self.node, sub="carol")
        got = yield self.feed(carol, topic)
        application.publish(topic, 21.5, unit="C")
        yield eventually(lambda: got, timeout=WAIT, message="the feed never came")
        self.assertEqual((got[0]["args"], got[0]["kwargs"]), ([21.5], {"unit": "C"}))
        page = yield carol.session.call(HISTORY, topic)
        self.assertEqual(page["events"], got)

    @defer.inlineCallbacks
    def test_pruning_flags_an_old_position(self):
        """Past HISTORY_TOPIC_MAX_EVENTS (4 here) the oldest go; a reader after the first learns it."""
        _, _, auth = yield self.app("ticker")
        topic = "app.ticker.prices"
        dave = yield connect(self, self.node, sub="dave")
        got = yield self.feed(dave, topic)
        for n in range(7):
            yield self.post(auth, {"topic": topic, "args": [n]})
        yield eventually(lambda: len(got) == 7, timeout=WAIT, message="feed incomplete")
        first = got[0]["publication"]

        @defer.inlineCallbacks
        def pruned():
            page = yield dave.session.call(HISTORY, topic, after_publication=first)
            return page
        # pruning runs every 0.2 s, also while the seven are posted: wait for the one after the last
        page = yield eventually(pruned, timeout=WAIT, check=lambda page: page["pruned"] and len(page["events"]) == 4,
                                message="never pruned to the last 4")
        self.assertEqual([event["args"] for event in page["events"]], [[3], [4], [5], [6]])
        page = yield dave.session.call(HISTORY, topic, after_publication=got[4]["publication"])
        self.assertEqual(([event["args"] for event in page["events"]], page["pruned"]), ([[5], [6]], False))

    @defer.inlineCallbacks
    def test_refusals(self):
        """A topic without history is invalid_argument; a device may not call hub.history at all."""
        erin = yield connect(self, self.node, sub="erin")
        with self.assertRaises(ApplicationError) as caught:
            yield erin.session.call(HISTORY, "counter.changed")
        self.assertEqual(caught.exception.error, "reactive.error.invalid_argument")
        device = yield connect(self, self.node, sub="sensor-1", role="device")
        with self.assertRaises(ApplicationError) as caught:
            yield device.session.call(HISTORY, "app.news.items")
        self.assertEqual(caught.exception.error, "wamp.error.not_authorized")
