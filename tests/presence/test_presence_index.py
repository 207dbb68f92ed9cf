"""The presence index kept from meta events, and the answer built from it."""

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from components.core.errors import InvalidArgument
from components.presence import NAMES_ROLES, PEOPLE_ROLES
from components.presence.component import _EVENTS, PresenceComponent, answer, check_topic
from components.presence.index import PresenceIndex, wildcard_matches


def indexed():
    index = PresenceIndex(PEOPLE_ROLES)
    index.created(10, "time.tic", "exact")
    return index


class PresenceIndexTests(SynchronousTestCase):

    def test_counts_follow_subscribe_and_unsubscribe(self):
        """Subscribers count; one unsubscribing no longer does; two sessions of one user are one user."""
        index = indexed()
        index.joined(1, "alice", "user")
        index.joined(2, "alice", "user")
        index.joined(3, "bob", "admin")
        for session in (1, 2, 3):
            index.subscribed(session, 10)
        self.assertEqual(index.presence("time.tic"), (3, {"alice", "bob"}))
        index.unsubscribed(3, 10)
        self.assertEqual(index.presence("time.tic"), (2, {"alice"}))

    def test_leave_removes_the_session_everywhere(self):
        """A session that leaves counts on no topic any more (no unsubscribe event comes for it)."""
        index = indexed()
        index.created(11, "counter.changed", "exact")
        index.joined(1, "alice", "user")
        index.subscribed(1, 10)
        index.subscribed(1, 11)
        index.left(1)
        self.assertEqual(index.presence("time.tic"), (0, set()))
        self.assertEqual(index.presence("counter.changed"), (0, set()))
        self.assertEqual(index.of_session, {})

    def test_service_sessions_are_not_presence(self):
        """A backend or router-link subscriber is not counted: only people's roles are."""
        index = indexed()
        index.joined(1, "clock", "backend")
        index.joined(2, "peer", "rlink")
        index.subscribed(1, 10)
        index.subscribed(2, 10)
        self.assertEqual(index.presence("time.tic"), (0, set()))

    def test_subscribe_before_join_counts_once_joined(self):
        """A subscriber whose join is learnt later (start-up snapshot) counts from then on."""
        index = indexed()
        index.subscribed(1, 10)
        self.assertEqual(index.presence("time.tic"), (0, set()))
        index.joined(1, "alice", "user")
        self.assertEqual(index.presence("time.tic"), (1, {"alice"}))

    def test_prefix_and_wildcard_subscriptions_match(self):
        """A topic reaches prefix and wildcard subscribers too; deleted subscriptions match nothing."""
        index = PresenceIndex(PEOPLE_ROLES)
        index.created(20, "counter.changed.", "prefix")
        index.created(21, "iot..value", "wildcard")
        index.joined(1, "alice", "user")
        index.joined(2, "bob", "user")
        index.subscribed(1, 20)
        index.subscribed(2, 21)
        self.assertEqual(index.presence("counter.changed.a"), (1, {"alice"}))
        self.assertEqual(index.presence("iot.odata.value"), (1, {"bob"}))
        self.assertEqual(index.presence("iot.odata.other"), (0, set()))
        index.deleted(20)
        self.assertEqual(index.presence("counter.changed.a"), (0, set()))
        self.assertEqual(index.matching("counter.changed.a"), [])

    def test_delete_forgets_the_exact_uri(self):
        """A deleted exact subscription no longer matches; a new one on the same URI does."""
        index = indexed()
        index.joined(1, "alice", "user")
        index.subscribed(1, 10)
        index.unsubscribed(1, 10)
        index.deleted(10)
        index.created(12, "time.tic", "exact")
        index.subscribed(1, 12)
        self.assertEqual(index.matching("time.tic"), [12])
        self.assertEqual(index.presence("time.tic"), (1, {"alice"}))

    def test_wildcard_matching(self):
        """Empty components of a wildcard match any one component, and lengths must agree."""
        self.assertTrue(wildcard_matches("a..c", "a.b.c"))
        self.assertFalse(wildcard_matches("a..c", "a.b.d"))
        self.assertFalse(wildcard_matches("a..c", "a.b.c.d"))

    def test_four_thousand_subscribers(self):
        """A topic with 4,000 subscribers of 1,000 users: the counts and names (its time: bench/presence.py)."""
        index = indexed()
        for session in range(4000):
            index.joined(session, "user{}".format(session % 1000), "user")
            index.subscribed(session, 10)
        result = answer(index, "time.tic", "admin")
        self.assertEqual((result["sessions"], result["users"], len(result["names"])), (4000, 1000, 1000))


class AnswerTests(SynchronousTestCase):

    def test_users_get_counts_admins_get_names(self):
        """A user's answer has counts only; an admin's also the sorted names."""
        index = indexed()
        index.joined(1, "bob", "user")
        index.joined(2, "alice", "admin")
        index.subscribed(1, 10)
        index.subscribed(2, 10)
        self.assertEqual(answer(index, "time.tic", "user"), {"topic": "time.tic", "sessions": 2, "users": 2})
        self.assertIn("admin", NAMES_ROLES)
        self.assertEqual(answer(index, "time.tic", "admin")["names"], ["alice", "bob"])

    def test_bad_topics_are_refused(self):
        """A topic that is not a URI string is invalid_argument."""
        for bad in (None, 3, "", "a b", "a#b", "x" * 300):
            self.assertRaises(InvalidArgument, check_topic, bad)
        self.assertEqual(check_topic("time.tic"), "time.tic")


class SnapshotAndEventTests(SynchronousTestCase):
    """The component's start-up snapshot and its meta event handlers, with the meta API answered in memory."""

    def component(self, answers):
        component = PresenceComponent()
        component.index = PresenceIndex(PEOPLE_ROLES)

        def call(procedure, *args):
            answer = answers[procedure]
            answer = answer(*args) if callable(answer) else answer
            if isinstance(answer, Exception):
                return defer.fail(answer)
            return defer.succeed(answer)
        component.call = call
        return component

    def test_snapshot_reads_existing_sessions_and_subscriptions(self):
        """Sessions and subscribers already there count; one gone meanwhile is skipped."""
        gone = ApplicationError(ApplicationError.NO_SUCH_SESSION, "gone")
        sessions = {1: {"session": 1, "authid": "alice", "authrole": "user"}, 2: gone}
        subscriptions = {10: {"id": 10, "uri": "time.tic", "match": "exact"},
                         20: {"id": 20, "uri": "counter.changed.", "match": "prefix"}}
        component = self.component({
            "wamp.session.list": [1, 2],
            "wamp.session.get": sessions.get,
            "wamp.subscription.list": {"exact": [10], "prefix": [20, 30], "wildcard": []},
            "wamp.subscription.get": lambda sub: subscriptions.get(
                sub, ApplicationError(ApplicationError.NO_SUCH_SUBSCRIPTION, "gone")),
            "wamp.subscription.list_subscribers": lambda sub: [1, 2],
        })
        self.successResultOf(component.read_snapshot())
        self.assertEqual(component.index.presence("time.tic"), (1, {"alice"}))
        self.assertEqual(component.index.presence("counter.changed.x"), (1, {"alice"}))
        self.assertNotIn(30, component.index.subscriptions)

    def test_snapshot_fails_on_other_errors(self):
        """A meta API refusal other than 'gone' fails the start (the component then leaves, loudly)."""
        component = self.component({
            "wamp.session.list": [1],
            "wamp.session.get": lambda session: ApplicationError(ApplicationError.NOT_AUTHORIZED, "no"),
        })
        self.failureResultOf(component.read_snapshot(), ApplicationError)

    def test_meta_events_update_the_index(self):
        """The payloads of Crossbar's meta events, applied in order, give the expected counts."""
        component = self.component({})
        apply = {topic: component._applier(update) for topic, update in _EVENTS.items()}
        apply["wamp.session.on_join"]({"session": 5, "authid": "zoe", "authrole": "user"})
        apply["wamp.subscription.on_create"](5, {"id": 10, "uri": "time.tic", "match": "exact"})
        apply["wamp.subscription.on_subscribe"](5, 10)
        self.assertEqual(component.index.presence("time.tic"), (1, {"zoe"}))
        apply["wamp.subscription.on_unsubscribe"](5, 10)
        apply["wamp.subscription.on_delete"](5, 10)
        self.assertEqual(component.index.presence("time.tic"), (0, set()))
        apply["wamp.session.on_leave"](5)
        self.assertEqual(component.index.sessions, {})
