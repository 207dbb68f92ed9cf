"""
Unit tests of components.core.inflight and the per-session bound of
HubComponent (a fake transport, invocations handed to ``onMessage``).
"""

from autobahn.wamp import message
from autobahn.wamp.request import Endpoint, Registration
from autobahn.wamp.types import ComponentConfig
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from components.core import errors
from components.core.component import HubComponent
from components.core.inflight import CallsInFlight

REGISTRATION = 7


class CallsInFlightTests(SynchronousTestCase):

    def test_bound_per_caller(self):
        """``limit`` calls per caller are admitted, one more is not; another caller is; leaving frees a place."""
        bound = CallsInFlight(2)
        self.assertEqual([bound.enter("a"), bound.enter("a"), bound.enter("a")], [True, True, False])
        self.assertTrue(bound.enter("b"))
        bound.leave("a")
        self.assertTrue(bound.enter("a"))
        bound.leave("a")
        bound.leave("a")
        bound.leave("b")
        self.assertEqual(bound._counts, {})

    def test_refusal_is_rate_limited(self):
        refusal = CallsInFlight(3).refusal()
        self.assertEqual(refusal.error, errors.RATE_LIMITED)
        self.assertIn("at most 3", refusal.message)
        self.assertIn("retry_after", refusal.kwargs)


class _Transport:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


class _Bounded(HubComponent):
    bounded_procedures = frozenset(["some.procedure"])

    def start(self):
        pass


class SessionBoundTests(SynchronousTestCase):
    """HubComponent answers a caller past SESSION_MAX_CALLS_IN_FLIGHT rate_limited at once."""

    def setUp(self):
        self.pending = []
        self.session = _Bounded(ComponentConfig("reactive", {}), environ={"SESSION_MAX_CALLS_IN_FLIGHT": "2"})
        self.session.onJoin(None)
        self.session._session_id = 1
        self.session._transport = self.transport = _Transport()
        self.session._registrations[REGISTRATION] = Registration(
            self.session, REGISTRATION, "some.procedure", Endpoint(self._slow, None, None))

    def _slow(self):
        d = defer.Deferred()
        self.pending.append(d)
        return d

    def _invoke(self, request, caller):
        self.session.onMessage(message.Invocation(request, REGISTRATION, args=[], caller=caller))

    def _answers(self):
        return [(type(msg).__name__, getattr(msg, "error", None)) for msg in self.transport.sent]

    def test_bound(self):
        """Two calls of session 100 run, the third is refused; session 200 still calls; an answer frees a place."""
        self._invoke(1, 100)
        self._invoke(2, 100)
        self._invoke(3, 100)
        self.assertEqual(self._answers(), [("Error", errors.RATE_LIMITED)])
        self._invoke(4, 200)
        self.assertEqual(len(self.pending), 3)
        self.pending[0].callback("done")
        self.assertEqual(self._answers()[-1], ("Yield", None))
        self._invoke(5, 100)
        self.assertEqual(len(self.pending), 4)
        self._invoke(6, 100)
        self.assertEqual(self._answers()[-1], ("Error", errors.RATE_LIMITED))

    def test_failed_and_synchronous_calls_free_their_place(self):
        """A failed call frees its place; so does a call answered at once (its place is never held)."""
        self._invoke(1, 100)
        self._invoke(2, 100)
        self.pending[0].errback(errors.InvalidArgument("bad"))
        self.pending[1].callback("done")
        self.assertEqual(self.session.calls_in_flight._counts, {})
        self.session._registrations[REGISTRATION].endpoint = Endpoint(lambda: "now", None, None)
        for request in range(10, 15):
            self._invoke(request, 100)
        self.assertEqual([name for name, _ in self._answers()[2:]], ["Yield"] * 5)

    def test_unbounded_component_and_undisclosed_caller(self):
        """Calls without a disclosed caller, other procedures, components without bounded procedures: not counted."""
        for request in range(1, 5):
            self._invoke(request, None)
        self.assertEqual(self._answers(), [])
        self.assertEqual(len(self.pending), 4)
        self.session._registrations[REGISTRATION + 1] = Registration(
            self.session, REGISTRATION + 1, "other.procedure", Endpoint(self._slow, None, None))
        for request in range(5, 9):
            self.session.onMessage(message.Invocation(request, REGISTRATION + 1, args=[], caller=100))
        self.assertEqual(self._answers(), [])
        self.assertEqual(len(self.pending), 8)
        self.assertIsNone(HubComponent(ComponentConfig("reactive", {}), environ={}).calls_in_flight)
