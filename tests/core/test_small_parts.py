"""
Unit tests of components.core.ratelimit and components.core.state.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from components.core.ratelimit import RateLimiter
from components.core.state import TopicState


class RateLimiterTests(SynchronousTestCase):
    """Token bucket per key."""

    def test_burst_then_rate(self):
        """burst events pass at once, the next waits 1/rate seconds, keys are independent."""
        clock = task.Clock()
        limiter = RateLimiter(rate=2, burst=3, clock=clock.seconds)
        self.assertEqual([limiter.check("a")[0] for _ in range(3)], [True] * 3)
        allowed, retry = limiter.check("a")
        self.assertFalse(allowed)
        self.assertAlmostEqual(retry, 0.5)
        self.assertTrue(limiter.check("b")[0])
        clock.advance(0.5)
        self.assertTrue(limiter.check("a")[0])
        self.assertFalse(limiter.check("a")[0])

    def test_memory_bounded(self):
        """The number of tracked keys stays under max_keys."""
        clock = task.Clock()
        limiter = RateLimiter(rate=1, burst=1, clock=clock.seconds, max_keys=100)
        for key in range(1000):
            limiter.check(key)
        self.assertLessEqual(len(limiter._buckets), 100)


class TopicStateTests(SynchronousTestCase):
    """The contract's state dict."""

    def test_snapshot(self):
        """No state before the first value; then value, seq, ts and extra keys."""
        clock = task.Clock()
        clock.advance(100)
        state = TopicState(clock.seconds)
        self.assertIsNone(state.snapshot())
        first = state.update(42, stale=False)
        self.assertEqual(first, {"value": 42, "seq": 100000, "ts": 100000, "stale": False})
        second = state.mark(stale=True)
        self.assertEqual((second["value"], second["stale"]), (42, True))
        self.assertGreater(second["seq"], first["seq"])
