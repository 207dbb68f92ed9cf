"""
The per-device rate limit without a router: the token bucket's refund, the
settings and their defaults, the bridge session's admit (one bucket per
device, a refusal carrying retry_after, one warning per streak) and the
429 answer with Retry-After, all on an injected clock.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from components.core import errors
from components.core.ratelimit import RateLimiter
from components.core.settings import Settings, SettingsError
from components.iot import http_publish
from components.iot.http_publish import DeviceBridgeSession
from components.iot.device_rate import DEFAULT_BURST, DEFAULT_RATE, device_limiter


def session_on(clock, environ=None):
    """A bridge session (not joined) whose limiter runs on ``clock``."""
    session = DeviceBridgeSession(environ=environ or {})
    session.reactor = clock
    session.limiter = device_limiter(session.settings, clock.seconds)
    session._limited = set()
    return session


class RefundTests(SynchronousTestCase):
    """RateLimiter.refund gives back what an allowed check took, never more than the burst."""

    def test_refund(self):
        """A refunded token can be spent again at once; refunds never lift a bucket above its burst."""
        clock = task.Clock()
        limiter = RateLimiter(rate=1, burst=2, clock=clock.seconds)
        self.assertEqual([limiter.check("a")[0] for _ in range(3)], [True, True, False])
        limiter.refund("a")
        self.assertTrue(limiter.check("a")[0])
        self.assertFalse(limiter.check("a")[0])
        for _ in range(5):
            limiter.refund("a")
        self.assertEqual([limiter.check("a")[0] for _ in range(3)], [True, True, False])
        limiter.refund("never-seen")
        self.assertNotIn("never-seen", limiter._buckets)


class LimiterSettingsTests(SynchronousTestCase):
    """DEVICE_RATE and DEVICE_BURST."""

    def test_defaults(self):
        """Unset: 10 readings/s with a burst of 20, well under the 50/s the issue allows."""
        limiter = device_limiter(Settings(environ={}), task.Clock().seconds)
        self.assertEqual((limiter.rate, limiter.burst), (DEFAULT_RATE, DEFAULT_BURST))
        self.assertEqual((DEFAULT_RATE, DEFAULT_BURST), (10.0, 20))

    def test_configured_and_malformed(self):
        """The environment sets them; out-of-range or malformed values name the setting."""
        limiter = device_limiter(Settings(environ={"DEVICE_RATE": "0.5", "DEVICE_BURST": "3"}), task.Clock().seconds)
        self.assertEqual((limiter.rate, limiter.burst), (0.5, 3))
        for environ in ({"DEVICE_RATE": "0"}, {"DEVICE_RATE": "fast"}, {"DEVICE_BURST": "0"}):
            with self.assertRaises(SettingsError) as caught:
                device_limiter(Settings(environ=environ), task.Clock().seconds)
            self.assertIn(list(environ)[0], str(caught.exception))


class AdmitTests(SynchronousTestCase):
    """The bridge session's one bucket per device, shared by /publish and iot.device.publish."""

    def test_burst_then_rate_per_device(self):
        """20 readings at once, the 21st refused with retry_after 0.1 s; another device unaffected; one more
        after 0.1 s."""
        clock = task.Clock()
        session = session_on(clock)
        for _ in range(DEFAULT_BURST):
            session.admit("a")
        with self.assertRaises(errors.RateLimited) as caught:
            session.admit("a")
        self.assertEqual(caught.exception.error, errors.RATE_LIMITED)
        self.assertAlmostEqual(caught.exception.kwargs["retry_after"], 0.1)
        session.admit("b")
        clock.advance(0.1)
        session.admit("a")
        self.assertRaises(errors.RateLimited, session.admit, "a")

    def test_sustained_rate(self):
        """Over 10 s of a flood a device gets its burst plus 10 readings a second, no more."""
        clock = task.Clock()
        session = session_on(clock)
        admitted = 0
        for _ in range(10000):  # 1,000 attempts a second
            try:
                session.admit("flood")
                admitted += 1
            except errors.RateLimited:
                pass
            clock.advance(0.001)
        # attempts from 0 to 9.999 s: the tokens of 9.9 s at most (a step's float error may cost one)
        self.assertIn(admitted, (DEFAULT_BURST + 98, DEFAULT_BURST + 99))

    def test_give_back(self):
        """A reading given back (a replay, a failed claim) frees its token."""
        clock = task.Clock()
        session = session_on(clock, {"DEVICE_BURST": "1"})
        session.admit("a")
        session.give_back("a")
        session.admit("a")
        self.assertRaises(errors.RateLimited, session.admit, "a")

    def test_one_warning_per_streak(self):
        """The first refusal of a streak is logged, the rest are not; an admitted reading ends the streak."""
        clock = task.Clock()
        session = session_on(clock, {"DEVICE_BURST": "1", "DEVICE_RATE": "1"})
        warnings = []
        self.patch(session, "log", type("Log", (), {"warn": lambda self, *a, **k: warnings.append(k)})())
        session.admit("a")
        for _ in range(5):
            self.assertRaises(errors.RateLimited, session.admit, "a")
        self.assertEqual(len(warnings), 1)
        clock.advance(1)
        session.admit("a")
        self.assertRaises(errors.RateLimited, session.admit, "a")
        self.assertEqual([item["device"] for item in warnings], ["a", "a"])


class TooManyRequestsTests(SynchronousTestCase):
    """The HTTP answer of a refusal."""

    def test_429_with_retry_after(self):
        """rate_limited is 429 with Retry-After in whole seconds (at least 1) and retry_after in kwargs."""
        for retry_after, header in ((0.1, b"1"), (2.5, b"3")):
            request = DummyRequest([b"publish"])
            body = http_publish._refuse(request, errors.RateLimited("slow down", retry_after=retry_after))
            self.assertEqual(request.responseCode, 429)
            self.assertEqual(request.responseHeaders.getRawHeaders(b"retry-after"), [header])
            self.assertIn(b'"retry_after": ' + str(retry_after).encode(), body)
            self.assertIn(errors.RATE_LIMITED.encode(), body)
