"""
Convergence parts on real SQLite databases: the master numbers what it
relays, holds while the topic has no subscription, refuses (and names) what
no client could store; a snapshot ends with a marker that covers what came
before it; a client notices a hole in the numbers, asks for a snapshot
after the grace, and is healed by the marker.
"""

import json

from twisted.internet import defer, task
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from components.auth import directory
from components.db.database import Database
from components.db.migrations import migrate_all
from components.usersync import client_side as client_component
from components.usersync import convergence, master, messages, outbox, requests, sequence, snapshot
from components.usersync.outbox_relay import NoSubscribers, Relay
from components.usersync.sns import SnsPublisher
from tests.support.databases import sqlite_url
from tests.support.syncsigning import SIGNER, VERIFIER

INSERT = ("INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email, is_staff,"
          " is_active, date_joined, first_name) VALUES ('x', NULL, FALSE, ?, '', '', FALSE, TRUE, '2026-01-01', ?)")


class Publisher:
    """Records what the relay hands over; every entry is built (and signed) as SNS would get it."""

    def __init__(self):
        self.bodies = []
        self.entries = SnsPublisher(None, "arn:aws:sns:us-east-1:1:t", SIGNER)

    def __call__(self, rows):
        self.bodies += [self.entries.entry(index, row)["Message"] for index, row in enumerate(rows)]
        return [row[0] for row in rows], [], None

    def parsed(self):
        return [messages.parse(body, VERIFIER) for body in self.bodies]


def sync_now(fn, *args, **kwargs):
    return defer.maybeDeferred(fn, *args, **kwargs)


class MasterSideTests(unittest.TestCase):
    """Numbering, holding and refusing in the relay; markers in snapshots (master on SQLite)."""

    @defer.inlineCallbacks
    def setUp(self):
        self.db = Database(sqlite_url(self))
        self.addCleanup(self.db.close)
        yield migrate_all(self.db, master.master_schemas(directory.DEFAULT_USER_TABLE))
        yield self.db.run(outbox.install, outbox.DEFAULT_FIELDS, True)
        self.clock = task.Clock()
        self.publisher = Publisher()
        self.subscriptions = 1
        self.relay = Relay(self.db, self.publisher, sync_now, self.clock, subscribed=lambda: self.subscriptions)

    def add(self, username, first_name="F"):
        return self.db.execute(INSERT, (username, first_name))

    @defer.inlineCallbacks
    def test_events_are_numbered_once_and_a_resend_keeps_its_number(self):
        """Every relayed event carries the outbox's epoch and the next number; a failed send keeps it for the resend."""
        yield self.add("ann")
        failing = [True]

        def flaky(rows):
            if failing.pop() if failing else False:
                return [], [row[0] for row in rows], RuntimeError("SNS down")
            return self.publisher(rows)
        self.relay.publish = flaky
        count, error = yield self.relay.relay_once()
        self.assertIsInstance(error, RuntimeError)
        yield self.add("bob")
        count, error = yield self.relay.relay_once()
        self.assertEqual((count, error), (2, None))
        changes = self.publisher.parsed()
        epoch = yield self.db.run(sequence.epoch)
        self.assertEqual([(change.username, change.seq, change.epoch) for change in changes],
                         [("ann", 1, epoch), ("bob", 2, epoch)])
        self.assertEqual((yield self.db.run(sequence.high)), (epoch, 2))

    @defer.inlineCallbacks
    def test_nothing_is_marked_sent_while_the_topic_has_no_subscription(self):
        """A topic without subscribers would deliver to nobody: the events stay unsent (attempts counted) until one appears."""
        self.subscriptions = 0
        yield self.add("cat")
        count, error = yield self.relay.relay_once()
        self.assertIsInstance(error, NoSubscribers)
        rows = yield self.db.query("SELECT sent_ms, attempts FROM usersync_outbox WHERE username = 'cat'")
        self.assertEqual((rows[0][0], rows[0][1] >= 1), (None, True))
        self.assertEqual(self.publisher.bodies, [])
        self.subscriptions = 1
        count, error = yield self.relay.relay_once()
        self.assertEqual((count, error), (1, None))
        self.assertEqual([change.username for change in self.publisher.parsed()], ["cat"])

    @defer.inlineCallbacks
    def test_no_subscription_warned_only_past_the_start_up_race(self):
        """Held events: no warning while the node's own client may still be subscribing (QUIET s), then one."""
        from twisted.logger import LogLevel

        from components.core.backoff import QUIET
        from tests.support.polling import eventually
        warned = []

        def observe(event):
            if event.get("log_level") == LogLevel.warn and "no subscription" in event.get("log_format", ""):
                warned.append(event)
        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.subscriptions = 0
        yield self.add("cat")
        self.relay.start()
        self.addCleanup(self.relay.stop)
        for second in range(int(QUIET) + 2):
            yield eventually(lambda: self.clock.getDelayedCalls(), message="the relay is not holding")
            self.assertEqual(len(warned), 0 if second < QUIET else 1, second)
            self.clock.advance(self.relay.hold)

    @defer.inlineCallbacks
    def test_an_event_no_client_can_store_is_refused_on_the_master_and_named(self):
        """A username with a space (Django's ORM takes it) is not relayed: one error line names the user and field, counted."""
        logged = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        yield self.add("has space")
        yield self.add("dot")
        count, error = yield self.relay.relay_once()
        self.assertIsNone(error)
        self.assertEqual([change.username for change in self.publisher.parsed()], ["dot"])
        self.assertEqual([change.seq for change in self.publisher.parsed()], [1])
        lines = [event["log_format"].format(**event) for event in logged
                 if "refused" in event.get("log_format", "")]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("'has space'", lines[0])
        self.assertIn("field username", lines[0])
        total, kept, newest = yield self.db.run(sequence.refusals)
        self.assertEqual((total, kept, newest[0]), (1, 1, "has space"))
        # never claimed again
        count, error = yield self.relay.relay_once()
        self.assertEqual((count, error, len(self.publisher.bodies)), (0, None, 1))

    @defer.inlineCallbacks
    def test_a_snapshot_ends_with_a_marker_covering_what_was_numbered_before_it(self):
        """The marker's covers is the highest number given before the snapshot began; deletes of vanished names ride along."""
        yield self.add("eve")
        yield self.add("gone")
        yield self.db.execute("DELETE FROM auth_user WHERE username = 'gone'")
        yield self.relay.relay_once()
        _, before = yield self.db.run(sequence.high)
        self.publisher.bodies = []
        totals = yield snapshot.run(self.db, "auth_user", include_staff=True)
        self.assertEqual((totals["users"], totals["tombstones"]), (1, 1))
        self.assertTrue((yield self.db.run(snapshot.pending)))
        yield self.relay.relay_once()
        items = self.publisher.parsed()
        marker = items[-1]
        self.assertEqual((marker.kind, marker.covers, marker.seq), (messages.SYNCED, before, before + len(items)))
        self.assertIn(("delete", "gone", 2), [(item.action, item.username, item.version) for item in items[:-1]
                                              if hasattr(item, "action")])
        self.assertFalse((yield self.db.run(snapshot.pending)))


def numbered(seq, username="u", version=1, epoch="e1"):
    return messages.Change("update", version, "{}{}".format(username, seq), {"username": "{}{}".format(username, seq)},
                           0, seq, epoch)


class ClientSideTests(unittest.TestCase):
    """A client's place in the master's sequence (client on SQLite)."""

    @defer.inlineCallbacks
    def setUp(self):
        self.db = Database(sqlite_url(self))
        self.addCleanup(self.db.close)
        yield migrate_all(self.db, client_component.SCHEMAS)
        yield self.db.run(convergence.begin, 0)

    def apply(self, items, now_ms=1000):
        return self.db.run(convergence.apply, items, now_ms)

    def status(self, now_ms=1000):
        return self.db.run(convergence.status, now_ms)

    @defer.inlineCallbacks
    def test_converging_until_the_first_numbers_then_in_sync(self):
        """Before the master is heard the client is converging; every number up to the highest: in sync."""
        self.assertEqual((yield self.status())["state"], convergence.CONVERGING)
        yield self.apply([numbered(2), numbered(1)])
        status = yield self.status()
        self.assertEqual((status["state"], status["ok"], status["mark"], status["high"]), ("in sync", True, 2, 2))

    @defer.inlineCallbacks
    def test_a_hole_is_found_asked_for_after_the_grace_and_healed_by_the_marker(self):
        """A lost message (3): behind with one missing; after the grace one request to the queue the beacon named."""
        yield self.apply([numbered(1), numbered(2)])
        yield self.apply([numbered(4), messages.Sync(messages.BEACON, "e1", None, None, 5, "http://q/requests", 0)],
                         now_ms=2000)
        status = yield self.status(2000)
        self.assertEqual((status["state"], status["missing"], status["mark"], status["high"]),
                         ("behind", 2, 2, 5))
        self.assertIsNone((yield self.db.run(convergence.due, 2500, 1000, 5000)))
        due = yield self.db.run(convergence.due, 3000, 1000, 5000)
        self.assertEqual((due["mark"], due["high"], due["missing"], due["reply"]), (2, 5, 2, "http://q/requests"))
        self.assertIsNone((yield self.db.run(convergence.due, 3500, 1000, 5000)), "asked again within the retry")
        self.assertTrue((yield self.status(3500))["requested"])
        # the snapshot: its events (6, 7) and its marker (8) covering everything numbered before it began (5)
        yield self.apply([numbered(6), messages.Sync(messages.SYNCED, "e1", 8, 5, None, None, 0), numbered(7)],
                         now_ms=4000)
        status = yield self.status(4000)
        self.assertEqual((status["state"], status["mark"], status["missing"], status["requested"]),
                         ("in sync", 8, 0, False))

    @defer.inlineCallbacks
    def test_another_epoch_starts_the_count_over(self):
        """A replaced master database (new epoch): the old numbers mean nothing, the client is converging again."""
        yield self.apply([numbered(1), numbered(2)])
        yield self.apply([numbered(9, epoch="e2")])
        status = yield self.status()
        self.assertEqual((status["state"], status["mark"], status["high"]), ("converging", 0, 9))

    @defer.inlineCallbacks
    def test_a_replayed_message_of_a_left_epoch_counts_for_nothing(self):
        """Once the client moved on to e2 and is in sync, an old e1 message (and beacon) sent again changes
        nothing in its place: still in sync, nothing to ask for."""
        yield self.apply([numbered(1), numbered(2)])
        yield self.apply([numbered(1, epoch="e2")], now_ms=2000)
        self.assertEqual((yield self.status(2000))["state"], "in sync")
        for replay in ([numbered(2)], [messages.Sync(messages.BEACON, "e1", None, None, 50, "http://q/r", 0)]):
            yield self.apply(replay, now_ms=3000)
            status = yield self.status(3000)
            self.assertEqual((status["state"], status["mark"], status["high"]), ("in sync", 1, 1), replay)
            self.assertIsNone((yield self.db.run(convergence.due, 10 ** 6, 1000, 5000)))

    @defer.inlineCallbacks
    def test_only_the_last_left_epochs_are_remembered(self):
        for index in range(convergence.LEFT_EPOCHS + 3):
            yield self.apply([numbered(1, epoch="e{}".format(index))], now_ms=1000 + index)
        left = yield self.db.query("SELECT epoch FROM usersync_left_epoch")
        self.assertEqual(len(left), convergence.LEFT_EPOCHS)
        self.assertNotIn(("e0",), left)


class RecordingSns:
    """Takes PublishBatch calls as SNS would (every entry accepted) and keeps them."""

    def __init__(self):
        self.calls = []

    def publish_batch(self, TopicArn, PublishBatchRequestEntries):
        self.calls.append(PublishBatchRequestEntries)
        return {"Successful": [{"Id": entry["Id"]} for entry in PublishBatchRequestEntries]}


class PackTests(unittest.SynchronousTestCase):
    """Consecutive events share a message on a standard topic; a client reads them back one by one, in order."""

    def rows(self, count):
        return [(index, "u{}".format(index), "insert", 1, json.dumps({"username": "u{}".format(index)}), 0,
                 index + 1, "e1") for index in range(count)]

    def test_a_standard_topic_packs_fifty_events_per_message(self):
        """120 events: 3 messages in one PublishBatch call, all marked sent; parse_items gives them back in order."""
        sns = RecordingSns()
        sent, failed, error = SnsPublisher(sns, "arn:aws:sns:us-east-1:1:t", SIGNER)(self.rows(120))
        self.assertEqual((len(sent), failed, error), (120, [], None))
        self.assertEqual([len(call) for call in sns.calls], [3])
        items = [item for entry in sns.calls[0] for item in messages.parse_items(entry["Message"], VERIFIER)]
        self.assertEqual([(item.username, item.seq, item.epoch) for item in items],
                         [("u{}".format(index), index + 1, "e1") for index in range(120)])
        self.assertEqual(len(messages.parse_items(sns.calls[0][2]["Message"], VERIFIER)), 20)

    def test_a_fifo_topic_and_a_few_events_stay_one_message_each(self):
        """FIFO keeps each user's message group; fewer than ten waiting events are plain messages."""
        sns = RecordingSns()
        SnsPublisher(sns, "arn:aws:sns:us-east-1:1:t.fifo", SIGNER)(self.rows(3))
        self.assertEqual([entry["MessageGroupId"] for entry in sns.calls[0]], ["u0", "u1", "u2"])
        single = RecordingSns()
        SnsPublisher(single, "arn:aws:sns:us-east-1:1:t", SIGNER)(self.rows(1))
        self.assertEqual(messages.parse(single.calls[0][0]["Message"], VERIFIER).username, "u0")
        few = RecordingSns()
        SnsPublisher(few, "arn:aws:sns:us-east-1:1:t", SIGNER)(self.rows(9))
        self.assertEqual([len(call) for call in few.calls], [9], "live traffic: one message per event")


class RequestQueue:
    """An SQS stand-in for the request queue: what was deleted."""

    def __init__(self):
        self.deleted = []

    def delete_message_batch(self, QueueUrl, Entries):
        self.deleted += [entry["ReceiptHandle"] for entry in Entries]


class RequestListenerTests(unittest.TestCase):
    """The master's side of the requests: one snapshot per receive, at most one per min_interval, all deleted."""

    @defer.inlineCallbacks
    def test_requests_are_coalesced_rate_limited_and_deleted(self):
        """Two requests in one receive: one snapshot; the next receive waits out min_interval; junk is deleted too."""
        clock = task.Clock()
        queue = RequestQueue()
        asked = []

        def snapshot(found):
            asked.append((clock.seconds(), sorted(item["client"] for item in found)))
            return defer.succeed(None)
        listener = requests.RequestListener(queue, "q", sync_now, clock, snapshot, min_interval=5.0)
        body = messages.request
        yield listener.handle([{"ReceiptHandle": "r1", "Body": body("web", "e1", 2, 5, "3 missing")},
                               {"ReceiptHandle": "r2", "Body": body("late", "e1", 0, 5, "5 missing")},
                               {"ReceiptHandle": "r3", "Body": "not a request", "MessageId": "m3"}])
        self.assertEqual(asked, [(0, ["late", "web"])])
        second = listener.handle([{"ReceiptHandle": "r4", "Body": body("web", "e1", 2, 6, "4 missing")}])
        clock.advance(4.9)
        self.assertEqual(len(asked), 1, "answered within min_interval")
        clock.advance(0.1)
        yield second
        self.assertEqual(asked[1], (5.0, ["web"]))
        self.assertEqual(queue.deleted, ["r1", "r2", "r3", "r4"])


class SnapshotRequestScreeningTests(unittest.SynchronousTestCase):
    """Unsigned snapshot requests count only when a client of this master could have sent them."""

    def plausible(self, **item):
        request = dict({"client": "a", "epoch": "e1", "mark": 3, "high": 5, "reason": "gap"}, **item)
        return master._plausible_request(request, "e1", 9)

    def test_a_client_with_a_hole_is_answered(self):
        self.assertTrue(self.plausible())

    def test_a_request_of_another_epoch_is_ignored(self):
        """A forged request that does not know the master's epoch (attacker pass: a snapshot every 5 s)."""
        self.assertFalse(self.plausible(epoch="x"))
        self.assertFalse(self.plausible(epoch="?"))

    def test_a_request_naming_no_hole_is_ignored(self):
        self.assertFalse(self.plausible(mark=0, high=0))
        self.assertFalse(self.plausible(mark=5, high=5))

    def test_a_request_beyond_what_the_master_sent_is_ignored(self):
        self.assertFalse(self.plausible(high=10))
        self.assertFalse(self.plausible(mark=None))
        self.assertFalse(self.plausible(mark=-1))
