"""
Alarm rules without a router: the evaluator on an injected clock (above and
below with hysteresis, silence, removal, acknowledgement, restore after a
restart), the rule store on a real SQLite file (run on the test's thread)
and the rule checks.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from components.core.errors import InvalidArgument, NotFound
from components.iot.alarm_cli import source_of
from components.iot.alarm_logic import Evaluator, reading
from components.iot.alarm_rules import AlarmStore, check_rule, condition
from tests.iot.test_history import SyncSQLite

T0 = 1_700_000_000
DEVICE = "iot.device.pump-1"


def rule(rule_id, kind, threshold, hysteresis=0.0, source=DEVICE):
    made = {"id": rule_id, "source": source, "kind": kind, "threshold": float(threshold),
            "hysteresis": float(hysteresis), "created_ms": 0}
    made["condition"] = condition(made)
    return made


def value(number, **extra):
    return dict({"value": number, "seq": 1, "ts": 1}, **extra)


class EvaluatorTests(SynchronousTestCase):

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.events = []
        self.evaluator = Evaluator(self.clock, self.events.append)

    def changes(self):
        return [(event["rule"], event["state"], event["change"], event["value"]) for event in self.events]

    def feed(self, *numbers, source=DEVICE):
        for number in numbers:
            self.clock.advance(0.1)
            self.evaluator.state(source, value(number))

    def test_above_with_hysteresis(self):
        """Raised above 80 once; 78 to 80 keep it raised; 78 clears it; above 80 raises it again."""
        self.evaluator.set_rules([rule(1, "above", 80, 2)])
        self.feed(50, 80, 81, 85, 79, 78.5)
        self.assertEqual(self.changes(), [(1, "raised", "raised", 81)])
        self.feed(78, 70, 79.9)
        self.assertEqual(self.changes()[1:], [(1, "cleared", "cleared", 78)])
        self.feed(80.5)
        self.assertEqual(self.changes()[2:], [(1, "raised", "raised", 80.5)])

    def test_below_with_hysteresis(self):
        """Raised below 10; cleared only at 10 + 5; OData's numeric text counts as a reading."""
        self.evaluator.set_rules([rule(2, "below", 10, 5)])
        self.feed(12, "9", 11, 14.9)
        self.assertEqual(self.changes(), [(2, "raised", "raised", 9.0)])
        self.feed(15)
        self.assertEqual(self.changes()[1:], [(2, "cleared", "cleared", 15)])

    def test_no_hysteresis_clears_at_the_threshold(self):
        self.evaluator.set_rules([rule(1, "above", 80)])
        self.feed(81, 80)
        self.assertEqual([change[1] for change in self.changes()], ["raised", "cleared"])

    def test_not_readings(self):
        """Stale or offline states, text, booleans and other sources change nothing."""
        self.evaluator.set_rules([rule(1, "above", 80)])
        self.evaluator.state(DEVICE, value(99, stale=True))
        self.evaluator.state(DEVICE, value(99, live=False))
        self.feed("high", True, None, float("nan"))
        self.feed(99, source="iot.device.other")
        self.assertEqual(self.events, [])
        self.assertIsNone(reading(value(True)))
        self.assertEqual(reading(value(" 42 ")), 42.0)

    def test_silent_for(self):
        """Raised S seconds after the last reading (not before), cleared by the next one; timer restarts."""
        self.evaluator.set_rules([rule(3, "silent", 30)])
        self.clock.advance(29)
        self.feed(5)
        self.clock.advance(29.8)
        self.assertEqual(self.events, [])
        self.clock.advance(0.2)
        self.assertEqual(self.changes(), [(3, "raised", "raised", 5)])
        self.clock.advance(300)
        self.assertEqual(len(self.events), 1)
        self.feed(6)
        self.assertEqual(self.changes()[1:], [(3, "cleared", "cleared", 6)])
        self.clock.advance(30)
        self.assertEqual(self.changes()[2:], [(3, "raised", "raised", 6)])

    def test_silent_ignores_stale_states(self):
        """A source that keeps publishing stale states is silent."""
        self.evaluator.set_rules([rule(3, "silent", 10)])
        for _ in range(5):
            self.clock.advance(3)
            self.evaluator.state(DEVICE, value(1, stale=True))
        self.assertEqual(self.changes(), [(3, "raised", "raised", None)])

    def test_seq_and_ts(self):
        """Each event has its own seq (strictly increasing, at least the epoch ms) and ts."""
        self.evaluator.set_rules([rule(1, "above", 80)])
        self.feed(90, 10, 90, 10)
        seqs = [event["seq"] for event in self.events]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertGreaterEqual(seqs[0], T0 * 1000)
        self.assertTrue(all(T0 * 1000 < event["ts"] <= event["seq"] for event in self.events))

    def test_removed_rule_clears_its_alarm(self):
        self.evaluator.set_rules([rule(1, "above", 80), rule(2, "silent", 5)])
        self.feed(90)
        gone = self.evaluator.set_rules([rule(2, "silent", 5)])
        self.assertEqual(gone, [1])
        self.assertEqual(self.changes(), [(1, "raised", "raised", 90), (1, "cleared", "removed", 90)])
        self.evaluator.set_rules([])
        self.clock.advance(10)
        self.assertEqual(len(self.events), 2)  # the silent rule's timer went with it

    def test_ack_and_listing(self):
        """Listed while raised, and after clearing until acknowledged; a new raise needs a new ack."""
        self.evaluator.set_rules([rule(1, "above", 80)])
        self.assertRaises(NotFound, self.evaluator.ack, 1, "root")
        self.feed(90)
        acked = self.evaluator.ack(1, "root")
        self.assertEqual((acked["change"], acked["state"], acked["acked_by"]), ("acked", "raised", "root"))
        self.assertEqual(len(self.events), 2)
        self.evaluator.ack(1, "other")
        self.assertEqual(len(self.events), 2)  # already acknowledged: nothing published
        self.feed(10)
        self.assertEqual(self.evaluator.listed(), [])
        self.feed(95)
        self.assertEqual([(alarm["state"], alarm["acked_by"]) for alarm in self.evaluator.listed()],
                         [("raised", None)])
        self.feed(5)
        self.assertEqual([alarm["state"] for alarm in self.evaluator.listed()], ["cleared"])
        self.evaluator.ack(1, "root")
        self.assertEqual(self.evaluator.listed(), [])

    def test_restore_does_not_raise_again(self):
        """After a restart a raised alarm stays raised (no new event), and clears as usual; seq goes on."""
        self.evaluator.set_rules([rule(1, "above", 80), rule(3, "silent", 5)])
        self.feed(90)
        self.clock.advance(5)
        self.assertEqual(self.changes(), [(1, "raised", "raised", 90), (3, "raised", "raised", 90)])
        stored = [dict(alarm) for alarm in self.evaluator.alarms.values()]
        last_seq = self.evaluator.seq
        restarted = []
        evaluator = Evaluator(self.clock, restarted.append)
        evaluator.restore(stored)
        evaluator.set_rules([rule(1, "above", 80), rule(3, "silent", 5)])
        self.clock.advance(60)
        self.assertEqual(restarted, [])  # both stay raised, neither is raised again
        evaluator.state(DEVICE, value(95))
        self.assertEqual(restarted[0]["change"], "cleared")  # the silence ends; above 80 stays raised
        self.assertEqual([alarm["rule"] for alarm in evaluator.listed()], [1, 3])
        evaluator.state(DEVICE, value(10))
        self.assertEqual([(event["rule"], event["change"]) for event in restarted],
                         [(3, "cleared"), (1, "cleared")])
        self.assertGreater(restarted[0]["seq"], last_seq)


class RuleStoreTests(SynchronousTestCase):

    def setUp(self):
        self.store = AlarmStore(SyncSQLite(self))

    def result(self, d):
        return self.successResultOf(d)

    def test_add_list_remove(self):
        first = self.result(self.store.add(DEVICE, "above", 80, 2, 1000))
        second = self.result(self.store.add("iot.serial.reader", "silent", 30, 0, 2000))
        self.assertEqual((first["id"], second["id"]), (1, 2))
        self.assertEqual([item["condition"] for item in self.result(self.store.rules())],
                         ["above 80 (hysteresis 2)", "silent for 30 s"])
        self.assertEqual(self.result(self.store.remove(1))["source"], DEVICE)
        self.failureResultOf(self.store.remove(1), NotFound)
        self.assertEqual([item["id"] for item in self.result(self.store.rules())], [2])

    def test_alarm_state_round_trip(self):
        alarm = {"rule": 4, "source": DEVICE, "state": "raised", "value": "42", "raised_ts": 5, "ts": 6,
                 "seq": 7, "acked_by": None, "acked_ts": None, "condition": "above 1", "change": "raised"}
        self.assertEqual(self.result(self.store.change(alarm, None)), (True, 7))
        acked = dict(alarm, acked_by="root", acked_ts=8, seq=9)
        self.assertEqual(self.result(self.store.change(acked, 7)), (True, 9))
        stored = self.result(self.store.alarms())
        self.assertEqual(self.result(self.store.change(acked, 7)), (False, stored[0]))
        self.assertEqual(stored, [{"rule": 4, "source": DEVICE, "state": "raised", "value": "42",
                                   "raised_ts": 5, "ts": 6, "seq": 9, "acked_by": "root", "acked_ts": 8}])
        self.result(self.store.forget(4))
        self.assertEqual(self.result(self.store.alarms()), [])

    def test_checks(self):
        for args, field in (((DEVICE, "above", True), "threshold"),
                            ((DEVICE, "above", float("inf")), "threshold"),
                            (("iot.nope", "above", 1), "source"), ((DEVICE, "equal", 1), "kind"),
                            ((DEVICE, "silent", 0), "threshold"), ((DEVICE, "silent", 5, 1), "hysteresis"),
                            ((DEVICE, "below", 1, -1), "hysteresis")):
            with self.assertRaises(InvalidArgument) as caught:
                check_rule(*args)
            self.assertEqual(caught.exception.kwargs.get("field", field), field)
        self.assertEqual(source_of("pump-1"), DEVICE)
        self.assertEqual(source_of("iot.serial.reader"), "iot.serial.reader")
