"""
The user sync against a real moto server over HTTP with real boto3, without
a router: provisioning, the relay from a SQLite master (standard and FIFO
topics), and the bridge keeping a slow batch invisible.
"""

import json
import sqlite3
import uuid

from twisted.internet import defer
from twisted.trial import unittest

from components.auth import directory
from components.db.database import Database
from components.db.migrations import migrate_all
from components.usersync import client_side, master, messages, outbox, provision, replica
from components.usersync.aws import BlockingPool
from components.usersync.queue_consumer import Bridge
from components.usersync.pglisten import PgListener
from components.usersync.outbox_relay import Relay
from components.usersync.sns import SnsPublisher
from tests.support.databases import postgres_url, sqlite_url
from tests.support.emulator import blocking, shared_moto
from tests.support.polling import until
from tests.support.syncsigning import SIGNER, VERIFIER

INSERT = ("INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active,"
          " date_joined, first_name) VALUES ('x', 0, ?, '', '', 0, 1, '2026-01-01', ?)")
INSERT_PG = INSERT.replace("VALUES ('x', 0, ?, '', '', 0, 1, '2026-01-01', ?)",
                           "VALUES ('x', false, ?, '', '', false, true, now(), ?)")


class AwsMixin:
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.moto = yield shared_moto()
        self.sns = self.moto.client("sns")
        self.sqs = self.moto.client("sqs")
        from twisted.internet import reactor
        self.pool = BlockingPool(reactor, 6, "test-usersync")
        self.addCleanup(self.pool.stop)

    def provision(self, clients=("a",), fifo=False, **options):
        plan = provision.Plan("t" + uuid.uuid4().hex[:10], list(clients), fifo, **options)
        d = blocking(provision.provision, self.sns, self.sqs, plan)
        return d.addCallback(lambda result: (plan, result))

    @defer.inlineCallbacks
    def receive_all(self, url, count):
        """The first ``count`` events on ``url``, parsed (a message may be a pack of several)."""
        items = []

        def more():
            d = blocking(self.sqs.receive_message, QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)

            def got(response):
                for message in response.get("Messages", []):
                    items.extend(messages.parse_items(message["Body"], VERIFIER))
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return len(items) >= count
            return d.addCallback(got)
        yield until(more, message="messages did not arrive")
        return items


class ProvisionTests(AwsMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_provisioning_twice_changes_nothing(self):
        """A second run returns the same topic, queues and subscriptions and adds none."""
        plan, first = yield self.provision(("a", "b"), max_receives=3, visibility_timeout=7)
        again = yield blocking(provision.provision, self.sns, self.sqs, plan)
        self.assertEqual(first, again)
        subscriptions = yield blocking(self.sns.list_subscriptions_by_topic, TopicArn=first["topic_arn"])
        endpoints = sorted(item["Endpoint"] for item in subscriptions["Subscriptions"])
        self.assertEqual(endpoints, sorted(settings["queue_arn"] for settings in first["clients"].values()))
        names = yield blocking(self.sqs.list_queues, QueueNamePrefix=plan.topic)
        # two queues and two dead-letter queues of the clients, and the master's request queue
        self.assertEqual(len(names["QueueUrls"]), 5)
        self.assertIn(plan.topic + "-requests", first["request_queue_url"])
        attributes = (yield blocking(self.sqs.get_queue_attributes,
                                     QueueUrl=first["clients"]["a"]["queue_url"],
                                     AttributeNames=["All"]))["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        self.assertEqual(int(redrive["maxReceiveCount"]), 3)
        self.assertTrue(redrive["deadLetterTargetArn"].endswith(plan.topic + "-a-dlq"))
        self.assertEqual(attributes["VisibilityTimeout"], "7")
        self.assertIn(first["topic_arn"], attributes["Policy"])
        raw = yield blocking(self.sns.get_subscription_attributes,
                             SubscriptionArn=first["clients"]["a"]["subscription_arn"])
        self.assertEqual(raw["Attributes"]["RawMessageDelivery"], "true")


class SubscriptionCountTests(AwsMixin, unittest.TestCase):
    """What the relay counts as a subscriber: confirmed subscriptions whose queue exists."""

    @defer.inlineCallbacks
    def test_a_subscription_whose_queue_was_deleted_receives_nothing(self):
        """SNS keeps a subscription after its queue is deleted: with the SQS client it no longer counts (the relay
        holds its events), without one it still does; a queue that exists counts."""
        plan, result = yield self.provision(clients=("a", "b"))
        topic = result["topic_arn"]
        checked, unchecked = SnsPublisher(self.sns, topic, SIGNER, self.sqs), SnsPublisher(self.sns, topic, SIGNER)
        self.assertEqual((yield blocking(checked.subscriptions)), 2)
        yield blocking(self.sqs.delete_queue, QueueUrl=result["clients"]["b"]["queue_url"])
        fresh = SnsPublisher(self.sns, topic, SIGNER, self.sqs)
        self.assertEqual((yield blocking(fresh.subscriptions)), 1)
        self.assertEqual((yield blocking(unchecked.subscriptions)), 2)
        yield blocking(self.sqs.delete_queue, QueueUrl=result["clients"]["a"]["queue_url"])
        self.assertEqual((yield blocking(SnsPublisher(self.sns, topic, SIGNER, self.sqs).subscriptions)), 0)

    def test_what_cannot_be_told_counts(self):
        """Another account's queue this node may not look up, or a malformed endpoint, counts as receiving."""
        from components.usersync import sns

        class Denied(Exception):
            response = {"Error": {"Code": "AccessDenied"}}

        class Gone(Exception):
            response = {"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue"}}

        class Sqs:
            def __init__(self, error):
                self.error = error

            def get_queue_url(self, **names):
                raise self.error
        arn = "arn:aws:sqs:us-east-1:123456789012:users-a"
        self.assertTrue(sns.queue_exists(Sqs(Denied()), arn))
        self.assertFalse(sns.queue_exists(Sqs(Gone()), arn))
        self.assertTrue(sns.queue_exists(Sqs(Gone()), "not-an-arn"))


class RelayTests(AwsMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def relay_users(self, fifo):
        from twisted.internet import reactor
        plan, result = yield self.provision(fifo=fifo)
        db = Database(sqlite_url(self))
        self.addCleanup(db.close)
        yield migrate_all(db, master.master_schemas(directory.DEFAULT_USER_TABLE))
        yield db.run(outbox.install)
        relay = Relay(db, SnsPublisher(self.sns, result["topic_arn"], SIGNER), self.pool.run, reactor,
                             batch=7, poll_interval=0.05)
        relay.start()
        self.addCleanup(relay.stop)
        for index in range(12):
            yield db.execute(INSERT, ("r{}".format(index), "R"))
        yield db.execute("UPDATE auth_user SET first_name = 'R2' WHERE username = 'r0'")
        changes = yield self.receive_all(result["clients"]["a"]["queue_url"], 13)
        pending = yield db.run(outbox.pending_count)
        self.assertEqual(pending, 0)
        return changes

    @defer.inlineCallbacks
    def test_sqlite_master_relays_every_event_once(self):
        """Events of a polled SQLite master reach the subscribed queue, each once, and are marked sent."""
        changes = yield self.relay_users(fifo=False)
        self.assertEqual(sorted((change.username, change.version) for change in changes),
                         sorted([("r{}".format(index), 1) for index in range(12)] + [("r0", 2)]))

    @defer.inlineCallbacks
    def test_fifo_topic_keeps_each_users_order(self):
        """Through a FIFO topic and queue a user's events arrive in version order."""
        changes = yield self.relay_users(fifo=True)
        self.assertEqual([change.version for change in changes if change.username == "r0"], [1, 2])
        self.assertEqual(len(changes), 13)


    @defer.inlineCallbacks
    def test_postgresql_master_wakes_on_notify(self):
        """On PostgreSQL the relay sleeps a minute between polls, yet a committed change leaves at once (NOTIFY)."""
        from twisted.internet import reactor
        plan, result = yield self.provision()
        url = postgres_url(self)
        db = Database(url)
        self.addCleanup(db.close)
        yield migrate_all(db, master.master_schemas(directory.DEFAULT_USER_TABLE))
        yield db.run(outbox.install)
        relay = Relay(db, SnsPublisher(self.sns, result["topic_arn"], SIGNER), self.pool.run, reactor,
                             poll_interval=60)
        listener = PgListener(url, outbox.CHANNEL, relay.wake, reactor, self.pool.run)
        yield listener.start()
        self.addCleanup(listener.stop)
        relay.start()
        self.addCleanup(relay.stop)
        yield until(lambda: defer.succeed(relay.alarm.sleeping), message="relay never idle")
        started = reactor.seconds()
        yield db.execute(INSERT_PG, ("woken", "W"))
        changes = yield self.receive_all(result["clients"]["a"]["queue_url"], 1)
        self.assertEqual(changes[0].username, "woken")
        self.assertLess(reactor.seconds() - started, 30)


class BridgeTests(AwsMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_slow_batch_stays_invisible_and_is_applied_once(self):
        """With the database locked past the visibility timeout, the bridge extends it: no redelivery."""
        from twisted.internet import reactor
        plan, result = yield self.provision(visibility_timeout=2)
        url = sqlite_url(self)
        db = Database(url)
        self.addCleanup(db.close)
        yield migrate_all(db, client_side.SCHEMAS)
        queue = result["clients"]["a"]["queue_url"]
        applied = []
        bridge = Bridge(self.sqs, queue, db, self.pool.run, reactor, applied.extend, pollers=2, wait=1,
                               visibility=2, verifier=VERIFIER)
        locker = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        self.addCleanup(locker.close)
        locker.execute("BEGIN EXCLUSIVE")
        bridge.start()
        self.addCleanup(bridge.stop)
        yield blocking(self.sqs.send_message, QueueUrl=queue,
                       MessageBody=messages.encode("insert", 1, {"username": "slow", "first_name": "S"}, 0, SIGNER))
        yield until(lambda: defer.succeed(bridge.extensions >= 3), message="visibility never extended")
        locker.execute("COMMIT")
        yield until(lambda: defer.succeed(bool(applied)), message="change not applied")
        attributes = yield blocking(self.sqs.get_queue_attributes, QueueUrl=queue, AttributeNames=["All"])
        self.assertEqual(attributes["Attributes"]["ApproximateNumberOfMessages"], "0")
        self.assertEqual((yield db.run(replica.state_of, "slow")), (1, False, 1))
        self.assertEqual((bridge.applied, bridge.skipped), (1, 0))
