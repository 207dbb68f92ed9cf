"""
``hub.presence`` through a real router: counts go up and down as sessions
subscribe, unsubscribe and leave; a user gets counts only, an admin also the
names; a topic the caller's role may not subscribe is refused. On the dev
node and on the production client config (users through a proxy worker).
"""

import uuid

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest

from components.core import errors
from components.presence import PRESENCE
from tests.support.clients import connect
from tests.support.node import shared_node
from tests.support.polling import eventually
from tests.support.rawwebsocket import proxied_node

WAIT = 45.0


class PresenceChecks:
    """The checks; ``node_under_test()`` gives the node they run on."""

    timeout = 240

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield self.node_under_test()
        # a topic of its own (users may subscribe counter.changed.*), so other tests' sessions do not count
        self.topic = "counter.changed.presence{}".format(uuid.uuid4().hex[:10])
        self.admin = yield connect(self, self.node, sub="boss", role="admin")

    def presence(self, client=None, topic=None):
        return (client or self.admin).session.call(PRESENCE, topic or self.topic)

    @defer.inlineCallbacks
    def shows(self, sessions, users):
        """Poll the admin's answer until it shows ``sessions`` sessions of ``users`` (a list of names)."""
        wanted = {"topic": self.topic, "sessions": sessions, "users": len(users), "names": sorted(users)}
        result = yield eventually(self.presence, timeout=WAIT, check=lambda answer: answer == wanted,
                                  message="presence never became {}".format(wanted),
                                  details=self.node.log_tail)
        return result

    @defer.inlineCallbacks
    def subscriber(self, name):
        client = yield connect(self, self.node, sub=name, role="user")
        subscription = yield client.session.subscribe(lambda *args, **kwargs: None, self.topic)
        return client, subscription

    @defer.inlineCallbacks
    def test_counts_follow_sessions(self):
        """Counts rise with subscribers (two sessions of one user: one user), fall on unsubscribe, leave."""
        yield self.shows(0, [])
        anna, anna_subscription = yield self.subscriber("anna")
        yield self.shows(1, ["anna"])
        bert1, _ = yield self.subscriber("bert")
        bert2, _ = yield self.subscriber("bert")
        yield self.shows(3, ["anna", "bert"])
        yield anna_subscription.unsubscribe()
        yield self.shows(2, ["bert"])
        yield bert1.close()
        yield self.shows(1, ["bert"])
        yield bert2.close()
        yield self.shows(0, [])

    @defer.inlineCallbacks
    def test_user_gets_counts_only(self):
        """A user's answer carries the counts and no names."""
        yield self.subscriber("carl")
        yield self.shows(1, ["carl"])
        user = yield connect(self, self.node, sub="dora", role="user")
        answer = yield self.presence(user)
        self.assertEqual(answer, {"topic": self.topic, "sessions": 1, "users": 1})

    @defer.inlineCallbacks
    def test_topic_the_role_may_not_subscribe_is_refused(self):
        """A topic users may not subscribe: not_authorized for a user; an admin may ask about time.tic."""
        user = yield connect(self, self.node, sub="eve", role="user")
        for topic in ("master.users.secret", "wamp.session.on_join"):
            error = yield self.assertFailure(self.presence(user, topic), ApplicationError)
            self.assertEqual(error.error, errors.NOT_AUTHORIZED)
        answer = yield self.presence(topic="time.tic")
        self.assertEqual(answer["topic"], "time.tic")

    @defer.inlineCallbacks
    def test_bad_topic_is_invalid_argument(self):
        """A topic that is not a URI answers invalid_argument."""
        error = yield self.assertFailure(self.presence(topic="not a topic"), ApplicationError)
        self.assertEqual(error.error, errors.INVALID_ARGUMENT)


class PresenceRouterTests(PresenceChecks, unittest.TestCase):
    """On the dev node (one router worker, users on its WebSocket)."""

    def node_under_test(self):
        return shared_node()


class ProxiedPresenceTests(PresenceChecks, unittest.TestCase):
    """On the production client config: users join through a proxy, presence runs in the router worker."""

    def node_under_test(self):
        return proxied_node("presence-proxied", env={"REVOCATION_DATABASE": "master"})
