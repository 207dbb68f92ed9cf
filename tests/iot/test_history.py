"""
IoT history without a router: the store on a real SQLite file (run
synchronously on the test's thread), the batching writer and the pruner on
an injected clock, the argument rules of ``iot.history`` and the live/stale
rules of ``iot.sources``.
"""

import os
import sqlite3
import tempfile

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from components.core.backoff import Backoff
from components.core.errors import InvalidArgument
from components.core.settings import Settings
from components.core.state import TopicState
from components.db.database import SQLITE, Cursor, StorageUnavailable
from components.iot import history_seed, history_writer
from components.iot.history import HistoryStore, kind_of
from components.iot.history_component import Pruner, describe_sources, history_query, raw_age
from components.iot.history_writer import HistoryWriter
from components.iot.live import LiveValue

T0 = 1_700_000_000  # seconds
SERIAL = "iot.serial.reader"
DEVICE = "iot.device.nodemcu-1"


class SyncSQLite:
    """A real SQLite file whose transactions run at once on this thread (``run`` fires synchronously)."""

    dialect = SQLITE

    def __init__(self, testcase):
        directory = tempfile.mkdtemp(prefix="hub-history-")
        self.connection = sqlite3.connect(os.path.join(directory, "client.db"), isolation_level=None)
        testcase.addCleanup(self.connection.close)
        self.down = False

    def run(self, interaction, *args, **kwargs):
        if self.down:
            return defer.fail(StorageUnavailable("sqlite: database is locked"))
        cursor = Cursor(self.connection.cursor(), SQLITE)
        cursor.execute("BEGIN IMMEDIATE")
        try:
            result = interaction(cursor, *args, **kwargs)
        except Exception:
            self.connection.execute("ROLLBACK")
            return defer.fail()
        self.connection.execute("COMMIT")
        return defer.succeed(result)


def state(seq, value=None, ts=None, **extra):
    result = {"value": seq if value is None else value, "seq": seq, "ts": seq if ts is None else ts}
    result.update(extra)
    return result


class StoreTests(SynchronousTestCase):

    def setUp(self):
        self.db = SyncSQLite(self)
        self.store = HistoryStore(self.db)

    def page(self, source=SERIAL, after_seq=None, limit=500, since_ts=None):
        return self.successResultOf(self.store.page(source, after_seq, limit, since_ts))

    def seqs(self, page):
        return [item["seq"] for item in page["states"]]

    def test_states_oldest_first_after_seq_and_limit(self):
        """States come back oldest first, only those after ``after_seq``, cut at ``limit`` with ``more``."""
        self.successResultOf(self.store.insert([(SERIAL, state(seq)) for seq in (30, 10, 20, 40)]))
        everything = self.page()
        self.assertEqual(self.seqs(everything), [10, 20, 30, 40])
        self.assertEqual((everything["source"], everything["pruned"], everything["more"]),
                         (SERIAL, False, False))
        self.assertEqual(everything["states"][0], state(10))
        cut = self.page(after_seq=10, limit=2)
        self.assertEqual((self.seqs(cut), cut["more"]), ([20, 30], True))
        self.assertEqual(self.seqs(self.page(after_seq=30, limit=2)), [40])
        self.assertFalse(self.page(after_seq=30, limit=2)["more"])

    def test_duplicates_are_ignored(self):
        """A (source, seq) written twice (two linked nodes) is stored once; other sources are apart."""
        self.assertEqual(self.successResultOf(self.store.insert([(SERIAL, state(1)), (SERIAL, state(2))])), 2)
        self.assertEqual(self.successResultOf(self.store.insert([(SERIAL, state(2, value=99)),
                                                                 (DEVICE, state(2))])), 1)
        self.assertEqual([item["value"] for item in self.page()["states"]], [1, 2])
        self.assertEqual(self.seqs(self.page(DEVICE)), [2])

    def test_unknown_source_has_no_states(self):
        """A source without history answers no states, not pruned."""
        self.assertEqual(self.page("iot.device.nobody"),
                         {"source": "iot.device.nobody", "resolution": "raw", "states": [], "pruned": False,
                          "more": False})

    def test_window_by_ts(self):
        """``since_ts`` keeps the states with ts at or after it."""
        self.successResultOf(self.store.insert([(SERIAL, state(seq, ts=seq * 1000)) for seq in range(1, 6)]))
        self.assertEqual(self.seqs(self.page(since_ts=3000)), [3, 4, 5])
        self.assertEqual(self.seqs(self.page(after_seq=3, since_ts=2000)), [4, 5])

    def test_prune_by_count_sets_the_pruned_flag(self):
        """Beyond the newest max_states are pruned; a reader asking for any of them learns it (pruned)."""
        self.successResultOf(self.store.insert([(SERIAL, state(seq)) for seq in range(1, 11)]))
        self.successResultOf(self.store.insert([(DEVICE, state(seq)) for seq in range(1, 3)]))
        self.assertEqual(self.successResultOf(self.store.prune(4, 0)), 6)
        self.assertEqual(self.seqs(self.page()), [7, 8, 9, 10])
        self.assertTrue(self.page()["pruned"])
        self.assertTrue(self.page(after_seq=3)["pruned"])
        self.assertFalse(self.page(after_seq=6)["pruned"])
        self.assertEqual(self.seqs(self.page(after_seq=8)), [9, 10])
        self.assertEqual(self.seqs(self.page(DEVICE)), [1, 2])
        self.assertFalse(self.page(DEVICE)["pruned"])

    def test_prune_by_age(self):
        """States older than the cut-off are pruned; a window reaching into them is flagged, newer not."""
        self.successResultOf(self.store.insert([(SERIAL, state(seq, ts=seq * 1000)) for seq in range(1, 11)]))
        self.assertEqual(self.successResultOf(self.store.prune(100, 6000)), 5)
        self.assertEqual(self.seqs(self.page()), [6, 7, 8, 9, 10])
        self.assertTrue(self.page(since_ts=4000)["pruned"])
        self.assertFalse(self.page(since_ts=6000)["pruned"])
        self.assertEqual(self.successResultOf(self.store.prune(100, 6000)), 0)

    def test_highest_seq_survives_pruning(self):
        """The highest seq of a source (or prefix) counts pruned states too."""
        self.successResultOf(self.store.insert([(SERIAL, state(5)), (DEVICE, state(7)),
                                                ("iot.device.other", state(9))]))
        self.successResultOf(self.store.prune(1, 10 ** 12))
        self.assertEqual(self.successResultOf(self.store.highest_seq(source=SERIAL)), 5)
        self.assertEqual(self.successResultOf(self.store.highest_seq(prefix="iot.device.")), 9)
        self.assertEqual(self.successResultOf(self.store.highest_seq(source="iot.odata.value")), 0)

    def test_sources_keep_the_newest_state(self):
        """The per-source latest state follows the highest seq, whatever the write order."""
        self.successResultOf(self.store.insert([(SERIAL, state(5)), (SERIAL, state(3))]))
        self.successResultOf(self.store.insert([(SERIAL, state(4))]))
        self.assertEqual(self.successResultOf(self.store.sources()), [(SERIAL, 5, state(5))])


class FlakyStore:
    """The real store over SyncSQLite, with a switch that makes every write fail."""

    def __init__(self, testcase):
        self.db = SyncSQLite(testcase)
        self.store = HistoryStore(self.db)
        self.inserts = 0

    def insert(self, rows):
        self.inserts += 1
        return self.store.insert(rows)

    def stored(self):
        """The seqs stored for SERIAL (read even while writes are switched off)."""
        down, self.db.down = self.db.down, False
        try:
            return [item["seq"] for item in self.store.page(SERIAL, None, 1000, None).result["states"]]
        finally:
            self.db.down = down


class WriterTests(SynchronousTestCase):

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.store = FlakyStore(self)
        self.writer = HistoryWriter(self.store, self.clock, flush_interval=0.5, batch=10, queue_limit=50,
                                    backoff=Backoff(1.0, 8.0, random=lambda: 1.0))

    def test_written_after_the_interval_not_on_record(self):
        """record only queues; the states are written together once the flush interval passed."""
        for seq in (1, 2, 3):
            self.writer.record(SERIAL, state(seq))
        self.assertEqual((self.store.inserts, self.store.stored()), (0, []))
        self.clock.advance(0.5)
        self.assertEqual((self.store.inserts, self.store.stored()), (1, [1, 2, 3]))
        self.assertEqual((self.writer.written, self.writer.pending), (3, 0))

    def test_a_full_batch_is_written_at_once(self):
        """``batch`` waiting states are written without waiting for the interval."""
        for seq in range(1, 11):
            self.writer.record(SERIAL, state(seq))
        self.clock.advance(0)
        self.assertEqual(self.store.stored(), list(range(1, 11)))

    def test_database_trouble_keeps_states_and_retries(self):
        """A failing database: nothing is lost, the failure is logged once, writes resume in order."""
        logged = []
        self.patch(HistoryWriter, "log", Logger(observer=logged.append))
        self.store.db.down = True
        for seq in range(1, 6):
            self.writer.record(SERIAL, state(seq))
        self.clock.advance(0.5)
        self.clock.advance(1.0)
        self.writer.record(SERIAL, state(6))
        self.clock.advance(2.0)
        self.assertEqual(self.store.stored(), [])
        self.assertEqual((self.writer.pending, self.writer.failures, self.writer.dropped), (6, 3, 0))
        warnings = [event for event in logged if "write failed" in event["log_format"]]
        self.assertEqual(len(warnings), 1)
        self.store.db.down = False
        self.clock.advance(4.0)
        self.assertEqual(self.store.stored(), [1, 2, 3, 4, 5, 6])
        self.assertTrue(any("work again" in event["log_format"] for event in logged))

    def test_queue_is_bounded_and_drops_are_counted(self):
        """During an outage the queue keeps its bound by dropping the oldest states, counted and logged."""
        logged = []
        self.patch(HistoryWriter, "log", Logger(observer=logged.append))
        self.store.db.down = True
        for seq in range(1, 71):
            self.writer.record(SERIAL, state(seq))
            self.clock.advance(0.01)
        self.assertEqual((self.writer.pending, self.writer.dropped), (50, 20))
        self.store.db.down = False
        self.clock.pump([8.0] * 3)
        self.assertEqual(self.store.stored(), list(range(21, 71)))
        self.assertTrue(any("queue full" in event["log_format"] for event in logged))
        recovered = [event for event in logged if "work again" in event["log_format"]]
        self.assertEqual(recovered[0]["dropped"], 20)

    def test_record_never_raises(self):
        """A state that cannot even be copied is logged, and the publish path goes on."""
        logged = []
        self.patch(HistoryWriter, "log", Logger(observer=logged.append))
        self.writer.record(SERIAL, object())
        self.assertEqual(len(logged), 1)


class SeedTests(SynchronousTestCase):

    def test_live_value_continues_above_the_stored_seq(self):
        """A source whose clock stepped back continues above the highest seq it ever stored."""
        store = FlakyStore(self)
        clock = task.Clock()
        clock.advance(T0)
        future = int(T0 * 1000) + 3_600_000
        self.successResultOf(store.store.insert([(SERIAL, state(future))]))
        writer = HistoryWriter(store.store, clock)
        component = type("Component", (), {"log": Logger(), "reactor": clock, "_history_writer": writer})()
        live = LiveValue(clock.seconds)
        seeded = history_seed.seed(component, live.state, source=SERIAL)
        self.assertEqual(self.successResultOf(seeded), future)
        self.assertEqual(live.offer(1)["seq"], future + 1)

    def test_seed_on_database_trouble_starts_from_the_clock(self):
        """Without the database the seq still never falls below epoch ms."""
        store = FlakyStore(self)
        store.db.down = True
        clock = task.Clock()
        clock.advance(T0)
        component = type("Component", (), {"log": Logger(observer=lambda event: None), "reactor": clock,
                                           "_history_writer": HistoryWriter(store.store, clock)})()
        topic = TopicState(clock.seconds)
        self.assertEqual(self.successResultOf(history_seed.seed(component, topic, prefix="iot.device.")), 0)
        self.assertEqual(topic.update(1)["seq"], int(T0 * 1000))

    def test_device_topics_continue_above_their_stored_seq(self):
        """seeded(): each device topic with history continues above its stored seq before it publishes."""
        store = FlakyStore(self)
        clock = task.Clock()
        clock.advance(T0)
        future = int(T0 * 1000) + 3_600_000
        self.successResultOf(store.store.insert([(DEVICE, state(future)), (SERIAL, state(future + 5))]))
        writer = HistoryWriter(store.store, clock)

        class Bridge:
            log = Logger()
            reactor = clock
            _history_writer = writer

            def start(self):
                self.states = {}
                return defer.Deferred()  # the registration, still on its way

        bridge = history_seed.seeded(Bridge, "states", "iot.device.")()
        started = bridge.start()
        self.assertNoResult(started)
        self.assertEqual(list(bridge.states), [DEVICE])
        self.assertEqual(bridge.states[DEVICE].update(1)["seq"], future + 1)

    def test_history_off(self):
        """HISTORY=off: no writer, recording does nothing."""
        component = type("Component", (), {"log": Logger(), "reactor": task.Clock(),
                                           "settings": Settings({"HISTORY": "off"}, environ={})})()
        self.assertIsNone(history_writer.shared_writer(component))
        history_writer.record(component, SERIAL, state(1))


class QueryTests(SynchronousTestCase):

    def test_defaults_and_minutes(self):
        """Only the source is required; minutes become a ts cut-off."""
        self.assertEqual(history_query([SERIAL], {}, 600000), (SERIAL, None, 500, None, "raw"))
        self.assertEqual(history_query([], {"source": DEVICE, "after_seq": 5, "limit": 1000, "minutes": 10},
                                       600000 + 10), (DEVICE, 5, 1000, 10, "raw"))
        self.assertEqual(history_query([SERIAL, 0, 1], {"minutes": 0.5}, 60000), (SERIAL, 0, 1, 30000, "raw"))
        self.assertEqual(history_query([SERIAL], {"resolution": "1h"}, 0), (SERIAL, None, 500, None, "1h"))

    def test_bad_arguments(self):
        """Bad arguments are invalid_argument naming the field."""
        for args, kwargs, field in [
                ([], {}, "source"), ([42], {}, "source"), (["time.tic"], {}, "source"),
                (["iot.device."], {}, "source"), (["iot.device." + "x" * 300], {}, "source"),
                ([SERIAL], {"after_seq": -1}, "after_seq"), ([SERIAL], {"after_seq": "1"}, "after_seq"),
                ([SERIAL], {"limit": 0}, "limit"), ([SERIAL], {"limit": 1001}, "limit"),
                ([SERIAL], {"limit": True}, "limit"), ([SERIAL], {"minutes": 0}, "minutes"),
                ([SERIAL], {"minutes": float("nan")}, "minutes"), ([SERIAL], {"minutes": "10"}, "minutes"),
                ([SERIAL], {"other": 1}, "other"), ([SERIAL], {"resolution": "1d"}, "resolution"),
                ([SERIAL], {"resolution": 60}, "resolution")]:
            with self.assertRaises(InvalidArgument, msg=repr((args, kwargs))) as caught:
                history_query(args, kwargs, 0)
            self.assertEqual(caught.exception.kwargs.get("field"), field)

    def test_kinds(self):
        self.assertEqual([kind_of(s) for s in (SERIAL, "iot.odata.value", DEVICE, "iot.device.", "x")],
                         ["serial", "odata", "device", None, None])


class SourcesTests(SynchronousTestCase):

    def test_live_and_stale(self):
        """Devices go stale after stale_after without a reading; serial/OData are live only when running."""
        now = 100_000
        stored = [(DEVICE, 95_000, state(95_000, value=1, ts=95_000)),
                  ("iot.device.old", 60_000, state(60_000, value=2, ts=60_000)),
                  ("iot.device.marked", 99_000, state(99_000, value=3, ts=99_000, stale=True)),
                  ("iot.odata.value", 50_000, state(50_000, value=4, ts=50_000, stale=False))]
        running = {SERIAL: {"value": None, "seq": 99_500, "ts": 99_500, "stale": True}}
        listed = {item["source"]: item for item in describe_sources(stored, running, now, 30_000)}
        self.assertEqual({source: item["live"] for source, item in listed.items()},
                         {DEVICE: True, "iot.device.old": False, "iot.device.marked": False,
                          "iot.odata.value": False, SERIAL: False})
        self.assertEqual(listed[SERIAL]["last_seen"], None)
        self.assertEqual(listed[SERIAL]["kind"], "serial")
        self.assertEqual(listed[DEVICE]["last_seen"], 95_000)
        running = {"iot.odata.value": state(60_000, value=5, ts=60_000, stale=False)}
        odata = describe_sources(stored[3:], running, now, 30_000)[0]
        self.assertEqual((odata["live"], odata["state"]["value"]), (True, 5))


class PrunerTests(SynchronousTestCase):

    def test_prunes_every_interval(self):
        """The pruner runs at start and every interval, by age from the injected clock."""
        clock = task.Clock()
        clock.advance(T0)
        store = FlakyStore(self)
        now_ms = T0 * 1000
        self.successResultOf(store.store.insert([(SERIAL, state(now_ms - 5000 + i, ts=now_ms - 5000 + i))
                                                 for i in range(3)]))
        pruner = Pruner(store.store, clock, max_age=10, max_states=100, interval=60)
        pruner.start()
        self.addCleanup(pruner.stop)
        self.assertEqual(len(store.stored()), 3)
        clock.advance(60)
        self.assertEqual(store.stored(), [])
        self.assertEqual(pruner.deleted, 3)

    def test_ladder_raw_days_then_rollups(self):
        """Raw states go after max_age (HISTORY_RAW_DAYS), their rollups stay until rollup_age."""
        clock = task.Clock()
        clock.advance(T0)
        store = HistoryStore(SyncSQLite(self))
        now_ms = T0 * 1000
        day = 86_400_000
        self.successResultOf(store.insert([(SERIAL, state(now_ms - age, value=age // day, ts=now_ms - age))
                                           for age in (10 * day, 3 * day, 1000)]))
        pruner = Pruner(store, clock, max_age=2 * 86400, max_states=100, interval=60, rollup_age=5 * 86400)
        pruner.prune()
        raw = self.successResultOf(store.page(SERIAL))
        self.assertEqual(([item["value"] for item in raw["states"]], raw["pruned"]), ([0], True))
        hours = self.successResultOf(store.page(SERIAL, resolution="1h"))
        self.assertEqual(([row["last"] for row in hours["states"]], hours["pruned"]), ([3, 0], True))

    def test_raw_age_from_the_settings(self):
        """HISTORY_RAW_DAYS when set, else HISTORY_MAX_AGE (its meaning before the ladder)."""
        self.assertEqual(raw_age(Settings({}, environ={})), 86400)
        self.assertEqual(raw_age(Settings({"HISTORY_MAX_AGE": "1h"}, environ={})), 3600)
        self.assertEqual(raw_age(Settings({"HISTORY_MAX_AGE": "1h", "HISTORY_RAW_DAYS": "2.5"}, environ={})),
                         2.5 * 86400)
