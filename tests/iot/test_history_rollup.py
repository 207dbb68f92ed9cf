"""
History rollups on a real SQLite file and a real PostgreSQL database: the
1-minute and 1-hour rows equal the aggregates of the raw states (numeric
ones only), a state written twice rolls up once, rollups outlive the raw
states they came from (they are folded in as states are written, never
recomputed from the raw table), paging by bucket, and pruning by age with
its flag.
"""

import random

from twisted.internet import defer
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from components.db.database import Database
from components.iot.history import HistoryStore
from components.iot.history_rollup import WIDTHS, number
from tests.support.databases import OnPostgreSQL, OnSQLite

SOURCE = "iot.device.rollup-1"
OTHER = "iot.serial.reader"
T0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000   # an hour boundary, epoch ms


def reading(seq, ts, value):
    return {"value": value, "seq": seq, "ts": ts}


def readings(count, seed=7):
    """``count`` states of mixed values over about three hours, seq increasing, a few not numeric or stale."""
    rng = random.Random(seed)
    states = []
    ts = T0
    for seq in range(1, count + 1):
        ts += rng.randint(1, 9000)
        roll = rng.random()
        if roll < 0.05:
            value = rng.choice(["on", True, None, {"a": 1}, [1, 2], ""])
        elif roll < 0.1:
            value = str(rng.randint(-50, 50))
        elif roll < 0.5:
            value = rng.randint(-1000, 1000)
        else:
            value = round(rng.uniform(-100, 100), 3)
        state = reading(seq, ts, value)
        if rng.random() < 0.02:
            state["stale"] = True
        states.append(state)
    return states


def expected(states, width):
    """The rollup rows of ``states`` by bucket, computed from scratch (what the store must equal)."""
    rows = {}
    for state in states:
        value = number(state)
        if value is None:
            continue
        bucket = state["ts"] - state["ts"] % width
        rows.setdefault(bucket, []).append((state["seq"], value))
    answer = {}
    for bucket, items in rows.items():
        values = [value for _, value in items]
        answer[bucket] = {"min": min(values), "max": max(values), "count": len(values),
                          "avg": sum(values) / len(values), "last": max(items)[1], "last_seq": max(items)[0]}
    return answer


class NumberTests(SynchronousTestCase):

    def test_what_rolls_up(self):
        """Finite numbers and decimal text roll up; booleans, other text, null, objects, stale states don't."""
        self.assertEqual([number(reading(1, 1, value)) for value in (3, -2.5, "42", " 1e3 ", "-.5")],
                         [3.0, -2.5, 42.0, 1000.0, -0.5])
        for value in (True, False, None, "on", "", "nan", "inf", "0x10", "1_000", {"v": 1}, [1], float("nan"),
                      float("inf"), 10 ** 400):
            self.assertIsNone(number(reading(1, 1, value)), repr(value))
        self.assertIsNone(number(dict(reading(1, 1, 5), stale=True)))


class RollupOnDatabase:
    """The rollup rules against ``self.database_url()``."""

    timeout = 120

    def setUp(self):
        self.db = Database(self.database_url())
        self.addCleanup(self.db.close)
        self.store = HistoryStore(self.db)

    @defer.inlineCallbacks
    def all_rows(self, resolution, source=SOURCE, limit=1000, **kwargs):
        """Every rollup row of ``source`` by paging with after_seq (the bucket cursor); checks ``more``."""
        rows, after = [], None
        while True:
            page = yield self.store.page(source, after, limit, resolution=resolution, **kwargs)
            self.assertEqual(page["resolution"], resolution)
            rows.extend(page["states"])
            if not page["more"]:
                return rows
            self.assertEqual(len(page["states"]), limit)
            after = page["states"][-1]["seq"]

    def assertRollupsEqual(self, rows, states, width):
        want = expected(states, width)
        self.assertEqual([row["seq"] for row in rows], sorted(want))
        for row in rows:
            wanted = want[row["seq"]]
            self.assertEqual(row["ts"], row["seq"])
            for field in ("min", "max", "count", "last", "last_seq"):
                self.assertEqual(row[field], wanted[field], (row, wanted, field))
            self.assertAlmostEqual(row["avg"], wanted["avg"], places=9)
            self.assertEqual(row["value"], row["avg"])

    @defer.inlineCallbacks
    def test_rollups_equal_the_raw_aggregates(self):
        """Written in shuffled batches with repeats, the 1 m and 1 h rows equal the raw states' aggregates."""
        states = readings(3000)
        batches = [states[i:i + 250] for i in range(0, len(states), 250)]
        random.Random(3).shuffle(batches)
        for batch in batches:
            yield self.store.insert([(SOURCE, state) for state in batch] + [(OTHER, reading(1, T0, 1e6))])
        # a linked node writing the same states again changes nothing
        added = yield self.store.insert([(SOURCE, state) for state in states[:500]])
        self.assertEqual(added, 0)
        raw = []
        after = None
        while True:
            page = yield self.store.page(SOURCE, after, 1000)
            raw.extend(page["states"])
            if not page["more"]:
                break
            after = page["states"][-1]["seq"]
        self.assertEqual(raw, states)
        minutes = yield self.all_rows("1m", limit=137)
        self.assertGreater(len(minutes), 137)
        self.assertRollupsEqual(minutes, raw, WIDTHS["1m"])
        hours = yield self.all_rows("1h")
        self.assertEqual(len(hours), len(expected(raw, WIDTHS["1h"])))
        self.assertGreaterEqual(len(hours), 3)
        self.assertRollupsEqual(hours, raw, WIDTHS["1h"])
        self.assertEqual(sum(row["count"] for row in hours), sum(1 for s in raw if number(s) is not None))
        other = yield self.all_rows("1h", source=OTHER)
        self.assertEqual([(row["count"], row["max"]) for row in other], [(1, 1e6)])

    @defer.inlineCallbacks
    def test_a_state_twice_in_one_write_rolls_up_once(self):
        """The same (source, seq) twice in one batch counts once; a later duplicate (other value) not at all."""
        yield self.store.insert([(SOURCE, reading(1, T0, 5)), (SOURCE, reading(1, T0, 5)),
                                 (SOURCE, reading(2, T0 + 1, 7))])
        yield self.store.insert([(SOURCE, reading(2, T0 + 1, 100))])
        rows = yield self.all_rows("1m")
        self.assertEqual([(row["count"], row["min"], row["max"], row["last"]) for row in rows],
                         [(2, 5, 7, 7)])

    @defer.inlineCallbacks
    def test_last_is_the_highest_seq_and_rollups_outlive_the_raw_states(self):
        """A late state with a lower seq is not ``last``; pruning the raw states keeps the rollups."""
        yield self.store.insert([(SOURCE, reading(10, T0 + 5000, 1.5)),
                                 (SOURCE, reading(11, T0 + 6000, 2.5))])
        yield self.store.insert([(SOURCE, reading(9, T0 + 7000, 9.0))])
        yield self.store.prune(1, 0)
        raw = yield self.store.page(SOURCE)
        self.assertEqual([state["seq"] for state in raw["states"]], [11])
        yield self.store.insert([(SOURCE, reading(12, T0 + 8000, -1))])
        rows = yield self.all_rows("1h")
        self.assertEqual([(row["count"], row["min"], row["max"], row["last"], row["last_seq"], row["last_ts"])
                          for row in rows], [(4, -1, 9.0, -1, 12, T0 + 8000)])
        self.assertAlmostEqual(rows[0]["avg"], (1.5 + 2.5 + 9.0 - 1) / 4)

    @defer.inlineCallbacks
    def test_cursor_window_and_pruning(self):
        """after_seq and minutes' since_ts select buckets; pruning removes ended buckets and says so."""
        yield self.store.insert([(SOURCE, reading(seq, T0 + seq * 60_000, seq)) for seq in range(10)])
        rows = yield self.all_rows("1m")
        self.assertEqual([row["seq"] for row in rows], [T0 + i * 60_000 for i in range(10)])
        page = yield self.store.page(SOURCE, T0 + 6 * 60_000, 2, resolution="1m")
        self.assertEqual(([row["count"] for row in page["states"]], page["more"], page["pruned"]),
                         ([1, 1], True, False))
        self.assertEqual(page["states"][0]["seq"], T0 + 7 * 60_000)
        # a window from the middle of minute 8: minute 8 reaches into it
        page = yield self.store.page(SOURCE, None, 100, T0 + 8 * 60_000 + 30_000, resolution="1m")
        self.assertEqual([row["last"] for row in page["states"]], [8, 9])
        deleted = yield self.store.prune(1000, 0, T0 + 4 * 60_000 + 59_999)
        self.assertEqual(deleted, 4)  # minutes 0..3 ended; the hour has not
        page = yield self.store.page(SOURCE, None, 100, resolution="1m")
        self.assertEqual(([row["last"] for row in page["states"]], page["pruned"]),
                         (list(range(4, 10)), True))
        page = yield self.store.page(SOURCE, T0 + 3 * 60_000, 100, resolution="1m")
        self.assertFalse(page["pruned"])
        page = yield self.store.page(SOURCE, T0 + 2 * 60_000, 100, resolution="1m")
        self.assertTrue(page["pruned"])
        hours = yield self.store.page(SOURCE, None, 100, resolution="1h")
        self.assertEqual(([row["count"] for row in hours["states"]], hours["pruned"]), ([10], False))
        raw = yield self.store.page(SOURCE)
        self.assertEqual(len(raw["states"]), 10)
        yield self.store.prune(1000, 0, T0 + 3_600_000)
        hours = yield self.store.page(SOURCE, None, 100, resolution="1h")
        self.assertEqual((hours["states"], hours["pruned"]), ([], True))


class RollupOnSQLiteTests(OnSQLite, RollupOnDatabase, unittest.TestCase):
    pass


class RollupOnPostgreSQLTests(OnPostgreSQL, RollupOnDatabase, unittest.TestCase):
    pass
