"""
The clock's state with an injected clock: value format, time zone, seq.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from components.clock.component import Clock, resolve_zone
from components.core.settings import SettingsError

NOON_UTC = 1_800_000_000 - (1_800_000_000 % 86400) + 12 * 3600


class ClockTests(SynchronousTestCase):
    """Clock.tick() reads the injected time and keeps seq strictly increasing."""

    def test_value_in_zone(self):
        """The value is HH:MM:SS in the configured zone, with an ISO string."""
        clock = task.Clock()
        clock.advance(NOON_UTC)
        state = Clock(resolve_zone("Europe/Madrid"), clock=clock.seconds).tick()
        self.assertIn(state["value"], ("13:00:00", "14:00:00"))
        self.assertTrue(state["iso"].endswith(("+01:00", "+02:00")))
        utc = Clock(resolve_zone("UTC"), clock=clock.seconds).tick()
        self.assertEqual(utc["value"], "12:00:00")
        self.assertEqual(utc["ts"], NOON_UTC * 1000)

    def test_seq_increases_each_tick(self):
        """seq grows with every tick, even when time does not move."""
        clock = task.Clock()
        clock.advance(NOON_UTC)
        subject = Clock(resolve_zone("UTC"), clock=clock.seconds)
        seqs = [subject.tick()["seq"]]
        seqs.append(subject.tick()["seq"])
        clock.advance(0.5)
        seqs.append(subject.tick()["seq"])
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertEqual(seqs[2], (NOON_UTC + 0.5) * 1000)

    def test_seq_survives_restart(self):
        """A new clock (a restarted hub) starts above the old one's seq."""
        clock = task.Clock()
        clock.advance(NOON_UTC)
        old = Clock(None, clock=clock.seconds)
        for _ in range(5):
            last = old.tick()["seq"]
        clock.advance(0.01)
        self.assertGreater(Clock(None, clock=clock.seconds).tick()["seq"], last)

    def test_current_without_tick(self):
        """current() answers before the first published tick."""
        clock = task.Clock()
        clock.advance(NOON_UTC)
        self.assertEqual(Clock(resolve_zone("UTC"), clock=clock.seconds).current()["value"], "12:00:00")

    def test_unknown_zone(self):
        """An unknown TZ is a settings error naming it."""
        self.assertRaises(SettingsError, resolve_zone, "Mars/Olympus")
        self.assertIsNone(resolve_zone(""))
