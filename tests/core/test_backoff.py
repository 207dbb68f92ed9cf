"""
Unit tests of components.core.backoff: the backoff every retry loop uses
(capped exponential ceilings, full jitter below them) and the Alarm sleep.
"""

from twisted.internet import task
from twisted.trial import unittest

from components.core.backoff import Alarm, Backoff, persist


def CEILING():
    """A "random" source that always gives the top of the range: the delays are the ceilings."""
    return 1.0


class TimingTests(unittest.SynchronousTestCase):
    """The one backoff rule and the interruptible sleep."""

    def test_backoff_doubles_up_to_the_cap_and_resets(self):
        """0.2, 0.4, 0.8 ... capped; a success starts over."""
        for initial, maximum, ceilings in ((0.2, 1.0, [0.2, 0.4, 0.8, 1.0, 1.0]), (0.5, 3, [0.5, 1, 2, 3, 3])):
            backoff = Backoff(initial, maximum, random=CEILING)
            self.assertEqual([backoff.next() for _ in range(5)], ceilings)
            backoff.reset()
            self.assertEqual(backoff.next(), initial)

    def test_alarm_sleeps_until_timeout_or_ring(self):
        """A sleep ends at its timeout or early at a ring; a ring with no sleeper ends the next sleep."""
        clock = task.Clock()
        alarm = Alarm(clock)
        results = []
        alarm.sleep(5).addCallback(results.append)
        clock.advance(4.9)
        self.assertEqual(results, [])
        clock.advance(0.1)
        self.assertEqual(results, [False])
        alarm.sleep(5).addCallback(results.append)
        clock.advance(1)
        alarm.ring()
        self.assertEqual(results, [False, True])
        self.assertEqual(clock.getDelayedCalls(), [])
        alarm.ring()
        alarm.sleep(5).addCallback(results.append)
        self.assertEqual(results, [False, True, True])

    def test_full_jitter_spreads_delays_below_the_ceiling(self):
        """With the real random source every delay lies in [0, ceiling) and retries do not line up."""
        delays = []
        for _ in range(200):
            backoff = Backoff(1.0, 8.0)
            delays.append([backoff.next() for _ in range(5)])
        for series in delays:
            for delay, ceiling in zip(series, [1.0, 2.0, 4.0, 8.0, 8.0]):
                self.assertTrue(0 <= delay <= ceiling, (delay, ceiling))
        third = sorted(series[2] for series in delays)
        self.assertGreater(third[-1] - third[0], 2.0, "200 clients retried in lockstep")
        self.assertEqual(len(set(third)), len(third))

    def test_persist_retries_with_the_backoff_until_success(self):
        """persist() waits the backoff's delays between failed attempts and fires with the first success."""
        clock = task.Clock()
        attempts = []

        def attempt():
            attempts.append(clock.seconds())
            if len(attempts) < 3:
                raise OSError("not yet")
            return "done"
        logged = []

        class Log:
            def info(self, *args, **kwargs):
                logged.append(kwargs)
        d = persist(clock, attempt, Log(), "thing", backoff=Backoff(0.5, 10.0, random=CEILING), quiet=0)
        clock.advance(0.5)
        clock.advance(1.0)
        self.assertEqual(self.successResultOf(d), "done")
        self.assertEqual(attempts, [0, 0.5, 1.5])
        self.assertEqual([entry["delay"] for entry in logged if "delay" in entry], [0.5, 1.0])
        self.assertEqual(logged[-1]["seconds"], 1.5)  # the success after failures it told about

    def test_persist_quiet_during_the_start_up_race(self):
        """Failures in the first ``quiet`` seconds are debug lines; the first later one is info, then the success."""
        clock, log, attempt = task.Clock(), Levels(), Failing(times=4)
        d = persist(clock, attempt, log, "thing", backoff=Backoff(1.0, 1.0, random=CEILING), quiet=3)
        clock.advance(1)
        clock.advance(1)
        self.assertEqual(log.levels, ["debug"] * 3)
        clock.advance(1)  # 3 s in: told from here on
        clock.advance(1)
        self.assertEqual(self.successResultOf(d), "done")
        self.assertEqual(log.levels, ["debug"] * 3 + ["info", "info"])

    def test_persist_silent_when_ready_within_quiet(self):
        """A start-up race won within ``quiet``: no info line at all."""
        clock, log, attempt = task.Clock(), Levels(), Failing(times=2)
        d = persist(clock, attempt, log, "thing", backoff=Backoff(0.5, 10.0, random=CEILING))
        clock.advance(0.5)
        clock.advance(1.0)
        self.assertEqual(self.successResultOf(d), "done")
        self.assertEqual(log.levels, ["debug", "debug"])


class Levels:
    """A stand-in log: the level of each line."""

    def __init__(self):
        self.levels = []

    def debug(self, *args, **kwargs):
        self.levels.append("debug")

    def info(self, *args, **kwargs):
        self.levels.append("info")


class Failing:
    """An attempt that fails ``times`` times, then gives "done"."""

    def __init__(self, times):
        self.left = times

    def __call__(self):
        if self.left:
            self.left -= 1
            raise OSError("not yet")
        return "done"
