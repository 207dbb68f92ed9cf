"""
The per-session publication bound of components.node.patches.session_bounds
without a node: a client session gets its burst at once and then its rate,
an acknowledged publication past the bucket is answered
``reactive.error.rate_limited`` and one without acknowledgement is dropped,
the bucket lives on the session, the hub's own sessions (``trusted``,
``rlink``, ``backend``, components embedded in the router worker) are not
bounded, and refusals are logged at most once per session per interval.
"""

from autobahn.wamp import message
from crossbar.router.session import RouterApplicationSession
from twisted.internet import task
from twisted.logger import Logger
from twisted.trial import unittest

from components.core import errors
from components.core.settings import Settings
from components.node.patches import session_bounds

RATE, BURST = 5.0, 10


class _Router:
    def __init__(self):
        self.sent = []

    def send(self, session, msg):
        self.sent.append((session, msg))


class _Broker:
    """What the wrapper reads of Crossbar's broker; the wrapped handler records what reached it."""

    def __init__(self):
        self._router = _Router()
        self.processed = []


def _original(broker, session, publish):
    broker.processed.append((session, publish.request))


class _Session:
    """What the wrapper reads of a router-side session."""

    def __init__(self, authrole="app", authid="ak01", session_id=7, transport=None):
        self._authrole, self._authid, self._session_id = authrole, authid, session_id
        self._transport = transport if transport is not None else object()


def _embedded(authrole):
    """A component's session as the broker gets it: its transport is Crossbar's pass-through session."""
    return _Session(authrole=authrole, transport=RouterApplicationSession.__new__(RouterApplicationSession))


class PublishRateTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.events = []
        self.patch(session_bounds, "log", Logger(observer=self.events.append))
        bounds = session_bounds.SessionBounds(publish_rate=RATE, publish_burst=BURST)
        self.process = session_bounds.bounded_publish(_original, bounds, clock=self.clock.seconds)
        self.broker = _Broker()
        self.requests = 0

    def publish(self, session, count=1, acknowledge=False):
        for _ in range(count):
            self.requests += 1
            self.process(self.broker, session, message.Publish(self.requests, "app.shop.x",
                                                              acknowledge=acknowledge or None))

    def passed(self, session):
        return sum(1 for who, _ in self.broker.processed if who is session)

    def refusals(self):
        return [(msg.request_type, msg.request, msg.error, msg.args) for _, msg in self.broker._router.sent]

    def warnings(self):
        return [event for event in self.events if "publish rate bound" in event.get("log_format", "")]

    def test_burst_then_rate(self):
        session = _Session()
        self.publish(session, 3 * BURST)
        self.assertEqual(self.passed(session), BURST)
        self.clock.advance(1.0)
        self.publish(session, 3 * BURST)
        self.assertEqual(self.passed(session), BURST + RATE)
        self.clock.advance(0.1)
        self.publish(session)
        self.assertEqual(self.passed(session), BURST + RATE)  # half a token
        self.clock.advance(0.1)
        self.publish(session)
        self.assertEqual(self.passed(session), BURST + RATE + 1)
        self.assertEqual(self.broker._router.sent, [])  # unacknowledged: dropped without an answer

    def test_idle_time_refills_no_more_than_the_burst(self):
        session = _Session()
        self.publish(session, BURST)
        self.clock.advance(3600)
        self.publish(session, 5 * BURST)
        self.assertEqual(self.passed(session), 2 * BURST)

    def test_acknowledged_publication_past_the_bucket_is_refused(self):
        session = _Session()
        self.publish(session, BURST, acknowledge=True)
        self.publish(session, 1, acknowledge=True)
        self.assertEqual(self.passed(session), BURST)
        [(request_type, request, error, args)] = self.refusals()
        self.assertEqual((request_type, request, error), (message.Publish.MESSAGE_TYPE, BURST + 1,
                                                          errors.RATE_LIMITED))
        self.assertEqual(error, "reactive.error.rate_limited")
        self.assertIn("per second", args[0])

    def test_each_session_has_its_own_bucket_on_the_session(self):
        first, second = _Session(session_id=1), _Session(session_id=2)
        self.publish(first, 2 * BURST)
        self.publish(second, 2 * BURST)
        self.assertEqual((self.passed(first), self.passed(second)), (BURST, BURST))
        bucket = getattr(first, session_bounds.BUCKET)
        self.assertIsInstance(bucket, session_bounds.PublishBucket)
        self.assertIsNot(bucket, getattr(second, session_bounds.BUCKET))

    def test_the_hubs_own_sessions_are_not_bounded(self):
        sessions = [_Session(authrole=role) for role in ("trusted", "rlink", "backend")]
        sessions += [_embedded(role) for role in ("app_bridge", "device_bridge", "event_history", "presence")]
        for session in sessions:
            self.publish(session, 20 * BURST, acknowledge=True)
            self.assertEqual(self.passed(session), 20 * BURST, session._authrole)
        self.assertEqual(self.refusals(), [])
        self.assertEqual(self.warnings(), [])

    def test_refusals_logged_once_per_interval_with_the_count(self):
        session = _Session(authrole="app", authid="ak-flood")
        self.publish(session, BURST + 500)
        self.assertEqual(len(self.warnings()), 1)
        first = self.warnings()[0]
        self.assertEqual((first["authrole"], first["authid"], first["refused"]), ("app", "ak-flood", 1))
        for _ in range(9):
            self.clock.advance(1.0)
            self.publish(session, 100)
        self.assertEqual(len(self.warnings()), 1)
        self.clock.advance(1.0)
        self.publish(session, 100)
        second = self.warnings()[1]
        # every refusal after the first line: 499 of the first flood, 95 in each of the next 9 seconds and
        # the first one 10 s after the first line, which logs
        self.assertEqual(second["refused"], 499 + 9 * (100 - RATE) + 1)
        self.assertEqual(len(self.warnings()), 2)

    def test_over_long_topics_still_refused_first(self):
        session = _Session()
        bounds = session_bounds.SessionBounds(publish_rate=RATE, publish_burst=BURST)
        self.process(self.broker, session, message.Publish(1, "app.shop." + "x" * bounds.uri_length,
                                                           acknowledge=True))
        self.assertEqual([error for _, _, error, _ in self.refusals()], [session_bounds.INVALID_URI])


class SettingsTests(unittest.SynchronousTestCase):

    def test_bounds_from_settings(self):
        bounds = session_bounds.SessionBounds.from_settings(
            Settings(environ={"SESSION_PUBLISH_RATE": "2.5", "SESSION_PUBLISH_BURST": "7"}))
        self.assertEqual((bounds.publish_rate, bounds.publish_burst), (2.5, 7))
        self.assertIn("2.5 publications per second per client session (bursts of 7)", bounds.describe())

    def test_defaults(self):
        bounds = session_bounds.SessionBounds.from_settings(Settings(environ={}))
        self.assertEqual((bounds.publish_rate, bounds.publish_burst), (100.0, 200))
