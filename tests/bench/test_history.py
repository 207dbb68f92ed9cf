"""
The pure helpers of bench/history.py: the publish schedule keeps every event
away from the window's edges, the publisher's stamp is read from a plain
event and from a feed message, the recovery check counts what each session
missed, got twice, got unasked or out of order, and sessions split evenly
over worker processes.
"""

import importlib.util
import os

from twisted.trial.unittest import SynchronousTestCase

from tests.support.node import REPO


def _load():
    spec = importlib.util.spec_from_file_location("bench_history", os.path.join(REPO, "bench", "history.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


history = _load()


class PublishTimesTests(SynchronousTestCase):

    def test_one_event_per_interval_in_its_middle(self):
        """20/s for 2 s from t0 = 1000: 40 events, 50 ms apart, the first at 1025, the last at 2975."""
        times = history.publish_times(1000, 20, 2)
        self.assertEqual(len(times), 40)
        self.assertEqual((times[0], times[1], times[-1]), (1025.0, 1075.0, 2975.0))
        self.assertTrue(all(1000 < at < 3000 for at in times))


class EventStampTests(SynchronousTestCase):

    def test_plain_event_and_feed_message(self):
        """The publisher's ts: the first argument's, or inside a feed message's args (not the recorder's)."""
        self.assertEqual(history.event_stamp({"seq": 1, "ts": 12.5}), 12.5)
        feed = {"publication": 7, "ts": 99, "args": [{"seq": 1, "ts": 12.5}], "kwargs": {}}
        self.assertEqual(history.event_stamp(feed), 12.5)

    def test_without_a_stamp(self):
        for message in (None, "x", {"seq": 1}, {"publication": 7, "ts": 99, "args": [], "kwargs": {}},
                        {"ts": "12"}):
            self.assertIsNone(history.event_stamp(message), message)


class RecoveryCheckTests(SynchronousTestCase):

    def test_counts_every_kind_of_fault(self):
        expected = [10, 12, 15]
        sessions = [[10, 12, 15], [10, 15], [10, 12, 12, 15], [10, 12, 15, 16], [12, 10, 15]]
        self.assertEqual(history.recovery_check(expected, sessions), {
            "sessions": 5, "complete": 1, "missing": 1, "duplicated": 1, "unexpected": 1, "out_of_order": 2})

    def test_all_complete(self):
        check = history.recovery_check([1, 2], [[1, 2]] * 3)
        self.assertEqual((check["complete"], check["missing"], check["duplicated"]), (3, 0, 0))


class SmallHelperTests(SynchronousTestCase):

    def test_split(self):
        self.assertEqual(history.split(10, 4), [(0, 3), (3, 3), (6, 2), (8, 2)])
        self.assertEqual(history.split(2, 4), [(0, 1), (1, 1)])
        self.assertEqual(history.split(5, 1), [(0, 5)])

    def test_ratio(self):
        self.assertEqual(history.ratio(11.0, 10.0), 1.1)
        self.assertIsNone(history.ratio(1.0, 0.0))
        self.assertIsNone(history.ratio(None, 1.0))

    def test_summary_pairs_runs_of_a_round(self):
        """Router CPU ratio on/off and the extra ms per event, per database and round."""
        runs = [{"database": "sqlite", "round": 1, "history": "on", "router_cpu_pct": 33.0,
                 "router_ms_per_event": 16.5, "router_us_per_delivery": 12.0},
                {"database": "sqlite", "round": 1, "history": "off", "router_cpu_pct": 30.0,
                 "router_ms_per_event": 15.0, "router_us_per_delivery": 10.0},
                {"database": "sqlite", "round": 2, "history": "on", "router_cpu_pct": 30.0,
                 "router_ms_per_event": 15.0, "router_us_per_delivery": 10.0}]
        self.assertEqual(history.on_off_summary(runs), [
            {"database": "sqlite", "round": 1, "router_cpu_ratio": 1.1, "per_delivery_ratio": 1.2,
             "extra_ms_per_event": 1.5, "on_ms_per_event": 16.5, "off_ms_per_event": 15.0}])

    def test_summary_means_over_rounds(self):
        """With two paired rounds a row 'mean' compares the means of each side."""
        def run(round_index, side, cpu, per_delivery, per_event):
            return {"database": "postgresql", "round": round_index, "history": side, "router_cpu_pct": cpu,
                    "router_us_per_delivery": per_delivery, "router_ms_per_event": per_event}
        runs = [run(1, "on", 40.0, 30.0, 30.0), run(1, "off", 40.0, 20.0, 20.0),
                run(2, "off", 40.0, 30.0, 30.0), run(2, "on", 40.0, 20.0, 20.0)]
        summary = history.on_off_summary(runs)
        self.assertEqual([item["round"] for item in summary], [1, 2, "mean"])
        self.assertEqual((summary[2]["per_delivery_ratio"], summary[2]["extra_ms_per_event"]), (1.0, 0.0))
