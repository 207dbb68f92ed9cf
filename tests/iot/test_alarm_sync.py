"""
Two alarm evaluators on one database (as on two router workers or two
linked client nodes), on SQLite and PostgreSQL: fed the same readings, each
change is stored and published once, the other evaluator adopts it, seq
keeps increasing, and an acknowledgement on one reaches the other.
"""

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.trial import unittest

from components.db.database import Database
from components.iot.alarm_rules import AlarmStore
from components.iot.alarm_sync import SharedAlarms
from tests.support.databases import OnPostgreSQL, OnSQLite

T0 = 1_700_000_000
DEVICE = "iot.device.pump-1"


class SharedMixin:
    """Evaluators ``a`` and ``b`` on the database of ``database_url()``; ``published`` holds both's events."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.published = []
        self.url = self.database_url()
        rule = yield self.store().add(DEVICE, "above", 80, 5, T0 * 1000)
        self.rule = rule["id"]
        self.a = yield self.evaluator("a")
        self.b = yield self.evaluator("b")

    def store(self):
        database = Database(self.url)
        self.addCleanup(database.close)
        return AlarmStore(database)

    @defer.inlineCallbacks
    def evaluator(self, name):
        shared = SharedAlarms(self.clock, self.store(), lambda event: self.published.append((name, event)),
                              Logger())
        yield shared.reload()
        self.addCleanup(shared.evaluator.stop)
        return shared

    def feed(self, number):
        """The same reading to both evaluators, before either stores anything."""
        self.clock.advance(0.5)
        for shared in (self.a, self.b):
            shared.evaluator.state(DEVICE, {"value": number, "seq": 1, "ts": 1})

    @defer.inlineCallbacks
    def settle(self):
        for shared in (self.a, self.b):
            yield shared._serial(lambda: None)

    def changes(self):
        return [event["change"] for _, event in self.published]

    @defer.inlineCallbacks
    def test_each_change_published_once(self):
        """Raised, cleared and raised again: one event each, both evaluators agree on the stored state."""
        self.feed(90)
        self.feed(95)
        yield self.settle()
        self.assertEqual(self.changes(), ["raised"])
        self.feed(70)
        yield self.settle()
        self.feed(85)
        yield self.settle()
        self.assertEqual(self.changes(), ["raised", "cleared", "raised"])
        seqs = [event["seq"] for _, event in self.published]
        self.assertEqual(seqs, sorted(set(seqs)))
        stored = yield self.a.store.alarms()
        self.assertEqual([(alarm["state"], alarm["seq"]) for alarm in stored], [("raised", seqs[-1])])
        for shared in (self.a, self.b):
            self.assertEqual([(alarm["state"], alarm["seq"]) for alarm in shared.evaluator.listed()],
                             [("raised", seqs[-1])])
            self.assertEqual(shared.evaluator.seq, seqs[-1])

    @defer.inlineCallbacks
    def test_ack_on_one_reaches_the_other(self):
        """An acknowledgement stored by ``b`` is adopted by ``a`` (its event); the clear is published once."""
        self.feed(90)
        yield self.settle()
        self.b.evaluator.ack(self.rule, "root")
        yield self.settle()
        self.assertEqual(self.changes(), ["raised", "acked"])
        acked = self.published[-1][1]
        self.a.heard(acked)
        self.assertEqual(self.a.evaluator.alarms[self.rule]["acked_by"], "root")
        self.feed(70)
        yield self.settle()
        yield self.a.reload()
        self.assertEqual(self.changes(), ["raised", "acked", "cleared"])
        self.assertEqual(self.a.evaluator.listed(), [])
        self.assertEqual(self.b.evaluator.listed(), [])


class SQLiteSharedTests(OnSQLite, SharedMixin, unittest.TestCase):
    """On one SQLite file."""


class PostgreSQLSharedTests(OnPostgreSQL, SharedMixin, unittest.TestCase):
    """On PostgreSQL (GREATEST, row locks)."""
