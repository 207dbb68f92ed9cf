"""
The stored event history without a router: the store on a real SQLite file
(transactions run at once on the test's thread), the recorder's order, its
live-first behaviour when the database fails, and ``hub.history``'s
argument rules.
"""

from twisted.internet import defer
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from components.core.errors import InvalidArgument
from components.event_history import configured_topics, feed_topic, owner_of, recorded
from components.event_history.component import history_query
from components.event_history.event_store import EventStore, encode
from components.event_history.recorder import Recorder
from tests.iot.test_history import SyncSQLite
from tests.support.databases import OnPostgreSQL, OnSQLite

TOPIC = "app.shop.orders"
OTHER = "app.shop.stock"
PREFIXES = ("app.", "iot.serial.reader")


def set_generation(db, username, version):
    db.connection.execute("INSERT INTO hub_credential (username, version, changed_ms, noted_ms) "
                          "VALUES (?, ?, 0, 0) ON CONFLICT (username) DO UPDATE SET version = excluded.version",
                          (username, version))


class StoreTests(SynchronousTestCase):

    def setUp(self):
        self.db = SyncSQLite(self)
        self.store = EventStore(self.db)

    def append(self, *events, lost=()):
        rows = [(topic, ts, encode(args, kwargs), users) for topic, ts, args, kwargs, users in events]
        return self.successResultOf(self.store.append(rows, lost, 5))

    def page(self, topic=TOPIC, after=None, limit=100, username="alice"):
        return self.successResultOf(self.store.page(topic, after, limit, username))

    def positions(self, page):
        return [event["publication"] for event in page["events"]]

    def test_positions_order_events_across_topics(self):
        first, other, second = self.append((TOPIC, 10, [1], {}, None), (OTHER, 11, [2], {}, None),
                                           (TOPIC, 12, [3], {"k": "v"}, None))
        self.assertLess(first, other)
        self.assertLess(other, second)
        page = self.page()
        self.assertEqual(page["events"], [{"publication": first, "ts": 10, "args": [1], "kwargs": {}},
                                          {"publication": second, "ts": 12, "args": [3], "kwargs": {"k": "v"}}])
        self.assertEqual((page["more"], page["pruned"], page["last"]), (False, False, second))
        self.assertEqual(self.positions(self.page(after=first)), [second])
        self.assertEqual(self.page(after=second)["events"], [])

    def test_limit_and_more(self):
        positions = self.append(*[(TOPIC, n, [n], {}, None) for n in range(5)])
        page = self.page(limit=2)
        self.assertEqual((self.positions(page), page["more"]), (positions[:2], True))
        page = self.page(after=positions[1], limit=3)
        self.assertEqual((self.positions(page), page["more"]), (positions[2:], False))

    def test_personal_events_reach_only_their_users_at_their_generation(self):
        public, personal = self.append((TOPIC, 1, ["all"], {}, None), (TOPIC, 2, ["yours"], {}, ["alice"]))
        self.assertEqual(self.positions(self.page(username="alice")), [public, personal])
        self.assertEqual(self.positions(self.page(username="bob")), [public])
        self.assertEqual(self.positions(self.page(username=None)), [public])
        # a password change (or a re-created username) is a new identity: the old personal events are not its
        set_generation(self.db, "alice", 3)
        self.assertEqual(self.positions(self.page(username="alice")), [public])
        later = self.append((TOPIC, 3, ["new"], {}, ["alice"]))[0]
        self.assertEqual(self.positions(self.page(username="alice")), [public, later])

    def test_pruning_by_count_marks_the_topic(self):
        positions = self.append(*[(TOPIC, n, [n], {}, None) for n in range(5)])
        other = self.append((OTHER, 1, [], {}, None))[0]
        self.assertEqual(self.successResultOf(self.store.prune(2, 0)), 3)
        page = self.page()
        self.assertEqual((self.positions(page), page["pruned"]), (positions[3:], True))
        self.assertTrue(self.page(after=positions[1])["pruned"])
        self.assertFalse(self.page(after=positions[2])["pruned"])
        self.assertFalse(self.page(topic=OTHER)["pruned"])
        self.assertEqual(self.positions(self.page(topic=OTHER)), [other])

    def test_pruning_by_age_takes_personal_rows_too(self):
        old, new = self.append((TOPIC, 100, [], {}, ["alice"]), (TOPIC, 900, [], {}, ["alice"]))
        self.successResultOf(self.store.prune(1000, 500))
        self.assertEqual(self.positions(self.page()), [new])
        rows = self.db.connection.execute("SELECT pos FROM hub_event_user").fetchall()
        self.assertEqual(rows, [(new,)])

    def test_pruning_by_bytes_takes_the_oldest_of_any_topic(self):
        size = len(encode(["x" * 100], {}))
        positions = self.append(*[(TOPIC if n % 2 else OTHER, n, ["x" * 100], {}, ["alice"] if n == 1 else None)
                                  for n in range(6)])
        self.assertEqual(self.successResultOf(self.store.prune(1000, 0, 3 * size)), 3)
        self.assertEqual(self.positions(self.page()), [positions[3], positions[5]])
        self.assertEqual(self.positions(self.page(topic=OTHER)), [positions[4]])
        # TOPIC lost its event at positions[1]: a reader before it has a gap, one who saw it has none
        self.assertTrue(self.page(after=positions[0])["pruned"])
        self.assertFalse(self.page(after=positions[1])["pruned"])
        self.assertTrue(self.page(topic=OTHER, after=positions[0])["pruned"])
        self.assertFalse(self.page(topic=OTHER, after=positions[2])["pruned"])
        self.assertEqual(self.db.connection.execute("SELECT COUNT(*) FROM hub_event_user").fetchone()[0], 0)
        self.assertEqual(self.successResultOf(self.store.prune(1000, 0, 3 * size)), 0)

    def test_lost_topics_mark_what_came_before(self):
        before = self.append((TOPIC, 1, [], {}, None))[0]
        after = self.append((TOPIC, 2, [], {}, None), lost=[TOPIC])[0]
        self.assertTrue(self.page(after=before)["pruned"])
        page = self.page(after=before + 0)
        self.assertEqual(self.positions(page), [after])
        self.assertFalse(self.page(after=after)["pruned"])


class FakeStore:
    """Positions counted up; ``fail`` makes the next writes fail; ``hold`` keeps writes pending."""

    def __init__(self):
        self.writes = []
        self.next = 0
        self.fail = False
        self.hold = None

    def append(self, events, lost_topics=(), now_ms=0):
        self.writes.append((list(events), set(lost_topics)))
        if self.fail:
            return defer.fail(RuntimeError("database down"))
        positions = []
        for _ in events:
            self.next += 1
            positions.append(self.next)
        if self.hold is not None:
            self.hold.append(positions)
            waiter = defer.Deferred()
            self.hold.append(waiter)
            return waiter
        return defer.succeed(positions)


class RecorderTests(SynchronousTestCase):

    def setUp(self):
        self.store = FakeStore()
        self.published = []
        self.recorder = Recorder(self.store, lambda topic, message, options: self.published.append((topic, message)),
                                 lambda: 7, batch=3, queue_limit=4)

    def test_feed_messages_carry_positions_in_order(self):
        fired = self.successResultOf(self.recorder.offer(TOPIC, [1], {"a": 1}))
        self.assertEqual(fired, {"publication": 1, "ts": 7, "args": [1], "kwargs": {"a": 1}})
        self.recorder.offer(OTHER, [], {})
        self.assertEqual(self.published, [(feed_topic(TOPIC), fired),
                                          (feed_topic(OTHER), {"publication": 2, "ts": 7, "args": [], "kwargs": {}})])

    def test_one_write_at_a_time_takes_what_waits(self):
        self.store.hold = []
        self.recorder.offer(TOPIC, [0], {})
        for n in range(1, 4):
            self.recorder.offer(TOPIC, [n], {})
        self.assertEqual(len(self.store.writes), 1)
        positions, waiter = self.store.hold[:2]
        self.store.hold = None
        waiter.callback(positions)
        self.assertEqual([len(events) for events, _ in self.store.writes], [1, 3])
        self.assertEqual([message["args"] for _, message in self.published], [[0], [1], [2], [3]])
        self.assertEqual([message["publication"] for _, message in self.published], [1, 2, 3, 4])

    def test_a_failed_write_publishes_live_and_marks_the_loss_next_time(self):
        self.store.fail = True
        message = self.successResultOf(self.recorder.offer(TOPIC, ["x"], {}))
        self.assertIsNone(message["publication"])
        self.assertEqual(self.published, [(feed_topic(TOPIC), message)])
        self.store.fail = False
        self.recorder.offer(OTHER, ["y"], {})
        self.assertEqual(self.store.writes[-1][1], {TOPIC})
        self.assertEqual(self.published[-1][1]["publication"], 1)
        self.recorder.offer(OTHER, ["z"], {})
        self.assertEqual(self.store.writes[-1][1], set())

    def test_a_full_queue_publishes_the_oldest_without_position(self):
        self.store.hold = []
        for n in range(7):
            self.recorder.offer(TOPIC, [n], {})
        # the first is being written, four wait at most: the two oldest waiting went out without a position
        self.assertEqual([(message["args"], message["publication"]) for _, message in self.published],
                         [([1], None), ([2], None)])
        self.assertIn(TOPIC, self.recorder.lost_topics)
        self.assertEqual(self.recorder.lost, 2)


class RecorderBoundsTests(SynchronousTestCase):
    """What a publisher cannot make the recorder store: events too big, over its rate, past the queue."""

    def setUp(self):
        self.store = FakeStore()
        self.published = []
        self.allowed = True
        self.recorder = Recorder(self.store, lambda topic, message, options: self.published.append(message),
                                 lambda: 7, max_bytes=100, queue_bytes=260, allow=lambda topic: self.allowed)

    def test_an_event_too_big_is_delivered_not_stored(self):
        message = self.successResultOf(self.recorder.offer(TOPIC, ["x" * 200], {}))
        self.assertEqual((message["publication"], message["args"]), (None, ["x" * 200]))
        self.assertEqual(self.store.writes, [])
        self.assertEqual((self.recorder.refused, self.recorder.lost_topics), (1, {TOPIC}))
        self.recorder.offer(TOPIC, ["small"], {})
        self.assertEqual(self.store.writes[-1][1], {TOPIC})
        self.assertEqual(self.published[-1]["publication"], 1)

    def test_an_event_that_is_not_strict_json_is_delivered_not_stored(self):
        """NaN and Infinity (which a browser's JSON cannot read) are never stored: a history read would jam."""
        for args in ([float("nan")], [float("inf")], [{"v": -float("inf")}]):
            message = self.successResultOf(self.recorder.offer(TOPIC, args, {}))
            self.assertIsNone(message["publication"])
        self.successResultOf(self.recorder.offer(TOPIC, [], {"v": float("nan")}))
        self.assertEqual((self.store.writes, self.recorder.refused), ([], 4))
        self.assertRaises(ValueError, encode, [float("nan")], {})

    def test_over_the_owner_rate_is_delivered_not_stored(self):
        self.allowed = False
        self.assertIsNone(self.successResultOf(self.recorder.offer(TOPIC, [1], {}))["publication"])
        self.assertEqual(self.store.writes, [])

    def test_the_queue_is_bounded_in_bytes(self):
        self.store.hold = []
        size = len(encode(["y" * 60], {}))
        self.assertEqual(size, 85)
        for n in range(5):
            self.recorder.offer(TOPIC, ["y" * 60], {})
        # one being written, the waiting ones at most 260 bytes (three): the oldest waiting went without a position
        self.assertEqual(self.recorder.queued_bytes, 3 * size)
        self.assertEqual([(message["publication"], message["args"]) for message in self.published],
                         [(None, ["y" * 60])])
        self.assertEqual(len(self.recorder.queue), 3)


class QueryTests(SynchronousTestCase):

    def test_owners_and_none(self):
        self.assertEqual(owner_of("app.shop.orders.42"), "app.shop")
        self.assertEqual(owner_of("iot.device.x"), "iot.device.x")
        self.assertEqual(configured_topics(("None",)), ())
        self.assertEqual(configured_topics(("app.", "none")), ("app.", "none"))

    def test_topics_with_history(self):
        self.assertTrue(recorded("app.shop.orders", PREFIXES))
        self.assertTrue(recorded("iot.serial.reader", PREFIXES))
        self.assertFalse(recorded("iot.serial.readerx", PREFIXES))
        self.assertFalse(recorded("counter.changed", PREFIXES))
        self.assertFalse(recorded(feed_topic("app.shop.orders"), PREFIXES + ("hub.",)))

    def test_arguments(self):
        self.assertEqual(history_query((TOPIC,), {}, PREFIXES), (TOPIC, None, 100))
        self.assertEqual(history_query((), {"topic": TOPIC, "after_publication": 5, "limit": 3}, PREFIXES),
                         (TOPIC, 5, 3))
        for args, kwargs in [((), {}), (("counter.changed",), {}), (("app.shop.\x00",), {}), (("app.a..b",), {}),
                             ((TOPIC,), {"after_publication": -1}), ((TOPIC,), {"after_publication": True}),
                             ((TOPIC,), {"limit": 0}), ((TOPIC,), {"limit": 1001}), (("app." + "x" * 300,), {}),
                             ((TOPIC,), {"since": 1})]:
            self.assertRaises(InvalidArgument, history_query, args, kwargs, PREFIXES)


class StoreOnDatabase:
    """The store through the real :class:`Database` pool: positions, personal rows and ``last``."""

    @defer.inlineCallbacks
    def test_store_round_trip(self):
        from components.db.database import Database
        db = Database(self.database_url())
        self.addCleanup(db.close)
        store = EventStore(db)
        first, second = yield store.append([(TOPIC, 1, encode([1], {}), None),
                                            (TOPIC, 2, encode([2], {}), ["alice"])])
        page = yield store.page(TOPIC, None, 10, "bob")
        self.assertEqual([event["publication"] for event in page["events"]], [first])
        self.assertEqual(page["last"], second)
        page = yield store.page(TOPIC, first, 10, "alice")
        self.assertEqual([event["args"] for event in page["events"]], [[2]])
        yield store.prune(1, 0)
        page = yield store.page(TOPIC, None, 10, "alice")
        self.assertEqual((page["pruned"], [event["publication"] for event in page["events"]]), (True, [second]))
        lost_at = (yield store.append([(OTHER, 3, encode([], {}), None)], {TOPIC}))[0]
        page = yield store.page(TOPIC, second, 10, "alice")
        self.assertEqual((page["pruned"], page["last"]), (True, lost_at))


class StoreOnPostgreSQLTests(OnPostgreSQL, StoreOnDatabase, unittest.TestCase):
    pass


class StoreOnSQLiteTests(OnSQLite, StoreOnDatabase, unittest.TestCase):
    pass


class PageSizeTests(SynchronousTestCase):

    def test_a_page_stops_near_its_byte_bound(self):
        from components.event_history import event_store
        store = EventStore(SyncSQLite(self))
        big = "x" * (event_store.PAGE_BYTES // 3)
        positions = self.successResultOf(store.append([(TOPIC, n, encode([big], {}), None) for n in range(5)]))
        page = self.successResultOf(store.page(TOPIC, None, 100, "alice"))
        self.assertEqual(([event["publication"] for event in page["events"]], page["more"]), (positions[:2], True))
        page = self.successResultOf(store.page(TOPIC, positions[3], 100, "alice"))
        self.assertEqual(([event["publication"] for event in page["events"]], page["more"]), (positions[4:], False))
