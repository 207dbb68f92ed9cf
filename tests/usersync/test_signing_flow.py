"""
Only the master's messages are applied, end to end: a real router node
running the master relay (master database on PostgreSQL) and two client
bridges, a real moto server over HTTP, real boto3. Client a (SQLite)
trusts the node's dev key, the master's; client b (PostgreSQL) is given a
public key that is not the master's. A third queue ("spy") on the topic
keeps copies of the master's genuine messages for replays. An attacker
writes straight to client a's queue with boto3, as anyone who can send to
it could.
"""

import json
import os
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import defer
from twisted.trial import unittest

from components.auth import credentials, keygen
from components.db.database import Database
from components.usersync import provision, replica, message_signing
from tests.support.clients import connect
from tests.support.databases import postgres_url, sqlite_url
from tests.support.emulator import ENV, blocking, shared_moto
from tests.support.node import RouterNode, component, node_alive, router_worker, shared
from tests.support.polling import until
from tests.support.syncsigning import node_signer
from tests.usersync.test_flow import ADMIN, ADMIN_ROW, master_sql, name

LOCKOUT = 2 ** 62 - 1
# the master tracks the flags too; the clients are not configured for them (their default fields)
MASTER_FIELDS = "username,first_name,last_name,email,is_active,is_staff,is_superuser"


def body(message, signer=None):
    """A queue body: ``message`` signed by ``signer`` (as the master's relay writes it), or unsigned."""
    return json.dumps(signer.sign(message) if signer else message, sort_keys=True, separators=(",", ":"))


def profile_message(action, version, user, ts=1):
    return {"type": "user.changed", "action": action, "version": version, "ts": ts, "user": user}


class SigningFlow:
    """The node, the emulator's topic and queues, the three databases."""

    @defer.inlineCallbacks
    def start(self):
        self.moto = yield shared_moto()
        self.sqs = self.moto.client("sqs")
        sns = self.moto.client("sns")
        plan = provision.Plan("signed-" + uuid.uuid4().hex[:8], ["a", "b", "spy"], max_receives=2,
                              visibility_timeout=3)
        self.aws = yield blocking(provision.provision, sns, self.sqs, plan)
        self.master_url = postgres_url(None)
        self.client_a_url = sqlite_url(None)
        self.client_b_url = postgres_url(None)
        keys = os.path.join(os.path.dirname(self.client_a_url[len("sqlite:///"):]), "keys")
        os.makedirs(keys)
        _, self.wrong_public = keygen.usersync_keys(keys, "not-the-master")
        env = dict(ENV, SNS_TOPIC_ARN=self.aws["topic_arn"], SQS_QUEUE_URL=self.queue("a"),
                   AWS_ENDPOINT_URL=self.moto.url, MASTER_DATABASE_URL=self.master_url,
                   DATABASE_URL=self.client_a_url, USERSYNC_WAIT="1", USERSYNC_BACKOFF_MAX="1")
        self.node = RouterNode(name="usersync-signed", env=env, transform=self.transform)
        yield self.node.start()
        yield until(lambda: master_sql(self.master_url, ADMIN_ROW, (ADMIN,)).addCallbacks(
            lambda _: True, lambda failure: False), timeout=90, message="master directory not migrated")
        self.master_signer = node_signer(self.node)
        return self

    def queue(self, client, dead_letter=False):
        return self.aws["clients"][client]["dead_letter_queue_url" if dead_letter else "queue_url"]

    def transform(self, config):
        component(config, "usersync_master")["extra"]["USERSYNC_FIELDS"] = MASTER_FIELDS
        second = json.loads(json.dumps(component(config, "usersync_client")))
        second["id"] = "usersync_client_b"
        second["extra"].update(DATABASE_URL=self.client_b_url, USERSYNC_PUSH="off", SQS_QUEUE_URL=self.queue("b"),
                               USERSYNC_VERIFY_KEY_FILES=self.wrong_public)
        router_worker(config)["components"].append(second)
        return config


def shared_signing_flow():
    """The signing flow, shared by the tests of a process (tests.support.node.shared)."""
    return shared("usersync-signed", build=SigningFlow, start=SigningFlow.start,
                  alive=lambda flow: node_alive(getattr(flow, "node", None)),
                  dispose=lambda flow: getattr(flow, "node", None) and flow.node.cleanup())


class SignedMessagesTests(unittest.TestCase):
    timeout = 150

    @defer.inlineCallbacks
    def setUp(self):
        self.flow = yield shared_signing_flow()
        self.client_a = Database(self.flow.client_a_url)
        self.client_b = Database(self.flow.client_b_url)
        for database in (self.client_a, self.client_b):
            self.addCleanup(database.close)
        self.admin = (yield connect(self, self.flow.node, sub=ADMIN, role="admin")).session

    def send(self, *bodies):
        """Put bodies straight on client a's queue (as an attacker with sqs:SendMessage would); fire with ids."""
        entries = [{"Id": str(index), "MessageBody": text} for index, text in enumerate(bodies)]
        d = blocking(self.flow.sqs.send_message_batch, QueueUrl=self.flow.queue("a"), Entries=entries)
        return d.addCallback(lambda response: [item["MessageId"] for item in
                                               sorted(response["Successful"], key=lambda item: int(item["Id"]))])

    def state_at(self, database, username):
        """``(profile, version, credential version)`` of ``username`` in a client database."""
        def read(cursor):
            user, version = replica.profile(cursor, username)
            return user, version, credentials.version_of(cursor, username)[0]
        return database.run(read)

    def reaches_a(self, username, predicate, message):
        return until(lambda: self.state_at(self.client_a, username).addCallback(lambda state: predicate(*state)),
                     message=message)

    def dead_lettered(self, client, wanted):
        """Fire with ``{id on the client's queue: dead-letter attributes}`` once every id in ``wanted`` is there."""
        found = {}

        def check():
            d = blocking(self.flow.sqs.receive_message, QueueUrl=self.flow.queue(client, dead_letter=True),
                         MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"])

            def seen(response):
                for message in response.get("Messages", []):
                    attributes = {key: value["StringValue"] for key, value in
                                  message.get("MessageAttributes", {}).items()}
                    found[attributes.get("refused_message_id", message["MessageId"])] = attributes
                return set(wanted) <= set(found)
            return d.addCallback(seen)
        return until(check, timeout=30, message="not all refused messages in the dead-letter queue").addCallback(
            lambda _: found)

    def refusal_lines(self, message_id):
        return self.flow.node.log_text().count("usersync message {} rejected, not the master's".format(message_id))

    @defer.inlineCallbacks
    def genuine_users(self):
        alice, bob = name("alice"), name("bob")
        yield self.admin.call("master.users.save", {"username": alice, "first_name": "Alice",
                                                    "password": "correct horse battery"})
        # a password change: alice's credential version (1) rides the sync too
        yield self.admin.call("master.users.save", {"username": alice, "password": "battery staple horse"})
        yield self.admin.call("master.users.save", {"username": bob, "first_name": "Bob"})
        yield self.reaches_a(alice, lambda user, version, cv: user and cv >= 1, "alice not at client a")
        yield self.reaches_a(bob, lambda user, version, cv: user and user["first_name"] == "Bob",
                             "bob not at client a")
        return alice, bob

    @defer.inlineCallbacks
    def test_forged_unsigned_and_huge_version_messages_are_dead_lettered_and_genuine_changes_still_apply(self):
        """
        The alice lockout (credential version 2**62-1, unsigned), a forged profile for bob (the master's key id,
        another key's signature; and bob's signed message altered), mallory as superuser under an attacker's
        own key, a huge version with the master's own signature, garbage: nothing applied, each in client a's
        dead-letter queue at once with one log line; then the master's next changes apply as usual.
        """
        alice, bob = yield self.genuine_users()
        mallory = name("mallory")
        before = {}
        for user in (alice, bob, mallory):
            before[user] = yield self.state_at(self.client_a, user)
        attacker = message_signing.Signer(Ed25519PrivateKey.generate())
        posing = message_signing.Signer(Ed25519PrivateKey.generate())
        posing.kid = self.flow.master_signer.kid
        altered = self.flow.master_signer.sign(profile_message("update", 2, {"username": bob, "first_name": "Bob"}))
        altered["user"]["first_name"] = "Forged"
        bodies = {
            "lockout": body(profile_message("credential", LOCKOUT, {"username": alice, "version": LOCKOUT,
                                                                     "changed_ms": 1})),
            "posing": body(profile_message("update", 50, {"username": bob, "first_name": "Forged"}), posing),
            "altered": json.dumps(altered),
            "mallory": body(profile_message("insert", 1, {"username": mallory, "is_superuser": True,
                                                          "is_staff": True}), attacker),
            "huge": body(profile_message("update", LOCKOUT, {"username": bob, "first_name": "Frozen"}),
                         self.flow.master_signer),
            "huge credential": body(profile_message("credential", 9, {"username": alice, "version": LOCKOUT,
                                                                       "changed_ms": 1}), self.flow.master_signer),
            "garbage": "not json at all",
        }
        ids = dict(zip(bodies, (yield self.send(*bodies.values()))))
        moved = yield self.dead_lettered("a", ids.values())
        # the line is written after the move, and reaches the node's log through its controller
        yield until(lambda: all(self.refusal_lines(message_id) for message_id in ids.values()),
                    message="a refused message without its log line")
        for label, message_id in ids.items():
            self.assertEqual(moved[message_id].get("refused_message_id"), message_id, label)
            self.assertEqual(self.refusal_lines(message_id), 1, label)
        self.assertIn("bad signature", moved[ids["posing"]]["refused"])
        self.assertIn("unsigned", moved[ids["lockout"]]["refused"])
        self.assertIn("unknown key", moved[ids["mallory"]]["refused"])
        self.assertIn("beyond any version", moved[ids["huge"]]["refused"])
        for user in (alice, bob, mallory):
            self.assertEqual((yield self.state_at(self.client_a, user)), before[user], user)

        yield self.admin.call("master.users.save", {"username": bob, "first_name": "Robert"})
        yield self.admin.call("master.users.save", {"username": alice, "password": "another horse battery"})
        yield self.reaches_a(bob, lambda user, version, cv: user and user["first_name"] == "Robert",
                             "a genuine change after the refusals did not apply")
        yield self.reaches_a(alice, lambda user, version, cv: cv == before[alice][2] + 1,
                             "the genuine credential change after the lockout attempt did not apply")

    @defer.inlineCallbacks
    def test_replayed_master_messages_roll_nothing_back(self):
        """
        The master's own signed messages (copied from another queue of the topic) replayed later: the older
        versions are no-ops under the version rule, a deleted user stays deleted; replays are deleted from
        the queue like SQS's own duplicates (not dead-lettered: they are genuine), and later changes apply.
        """
        carol = name("carol")
        yield self.admin.call("master.users.save", {"username": carol, "first_name": "Carol"})
        yield self.admin.call("master.users.save", {"username": carol, "first_name": "Caroline"})
        yield self.reaches_a(carol, lambda user, version, cv: user and version == 2, "carol v2 not at client a")
        copies = yield self.copies_from_spy(carol, 2)
        yield self.admin.call("master.users.delete", carol)
        yield self.reaches_a(carol, lambda user, version, cv: user is None and version == 3, "delete not applied")
        ids = yield self.send(*copies)

        def queue_empty():
            d = blocking(self.flow.sqs.get_queue_attributes, QueueUrl=self.flow.queue("a"),
                         AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
            return d.addCallback(lambda response: set(response["Attributes"].values()) == {"0"})
        yield until(queue_empty, message="replayed messages not taken off the queue")
        user, version, _ = yield self.state_at(self.client_a, carol)
        self.assertEqual((user, version), (None, 3))
        applied = yield self.client_a.run(replica.state_of, carol)
        self.assertEqual(applied, (3, True, 3))
        for message_id in ids:
            self.assertEqual(self.refusal_lines(message_id), 0)
        yield self.admin.call("master.users.save", {"username": carol, "first_name": "Carol again"})
        yield self.reaches_a(carol, lambda user, version, cv: user and user["first_name"] == "Carol again",
                             "re-created carol not applied after the replays")

    @defer.inlineCallbacks
    def copies_from_spy(self, username, count):
        """The bodies of ``username``'s first ``count`` profile messages as the master signed them."""
        found = {}

        def more():
            d = blocking(self.flow.sqs.receive_message, QueueUrl=self.flow.queue("spy"), MaxNumberOfMessages=10,
                         WaitTimeSeconds=1)

            def seen(response):
                for message in response.get("Messages", []):
                    data = json.loads(message["Body"])
                    if data.get("user", {}).get("username") == username and data.get("action") in (
                            "insert", "update"):
                        found[data["version"]] = message["Body"]
                return len(found) >= count
            return d.addCallback(seen)
        yield until(more, message="the master's messages not on the spy queue")
        return [found[version] for version in sorted(found)]

    @defer.inlineCallbacks
    def test_a_client_trusting_another_key_applies_nothing(self):
        """Client b holds a public key that is not the master's: every genuine message goes to its DLQ."""
        alice, bob = yield self.genuine_users()
        for user in (alice, bob):
            self.assertEqual((yield self.state_at(self.client_b, user)), (None, 0, 0), user)
        rows = yield self.client_b.query("SELECT COUNT(*) FROM usersync_state")
        self.assertEqual(rows[0][0], 0)
        found = {}

        def refused_for_both():
            d = blocking(self.flow.sqs.receive_message, QueueUrl=self.flow.queue("b", dead_letter=True),
                         MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"])

            def seen(response):
                for message in response.get("Messages", []):
                    user = json.loads(message["Body"]).get("user", {}).get("username")
                    found[user] = message["MessageAttributes"]["refused"]["StringValue"]
                return alice in found and bob in found
            return d.addCallback(seen)
        yield until(refused_for_both, timeout=30, message="client b's refusals not in its dead-letter queue")
        self.assertIn("unknown key '{}'".format(self.flow.master_signer.kid), found[bob])

    @defer.inlineCallbacks
    def test_a_superuser_flag_is_not_stored_where_the_client_does_not_sync_it(self):
        """
        The master tracks is_superuser and signs mallory's insert with it; client a (default USERSYNC_FIELDS)
        stores mallory without the flag, and so does a correctly signed message put on the queue directly.
        """
        mallory, planted = name("mallory"), name("planted")
        yield self.admin.call("master.users.save", {"username": mallory, "first_name": "M", "is_superuser": True,
                                                    "is_staff": True})
        yield self.reaches_a(mallory, lambda user, version, cv: user is not None, "mallory not at client a")
        yield self.send(body(profile_message("insert", 1, {"username": planted, "is_superuser": True,
                                                           "is_staff": True}), self.flow.master_signer))
        yield self.reaches_a(planted, lambda user, version, cv: user is not None, "signed insert not applied")
        for username in (mallory, planted):
            rows = yield self.client_a.query("SELECT is_superuser, is_staff FROM auth_user WHERE username = ?",
                                             (username,))
            self.assertEqual([tuple(bool(flag) for flag in row) for row in rows], [(False, False)], username)

    @defer.inlineCallbacks
    def test_provisioned_queues_carry_the_policy_that_denies_other_senders(self):
        """
        moto keeps each client queue's policy as provisioned (the topic may send, every other sender is
        denied) but does not enforce it: the boto3 sends of these tests got through, which is why the
        bridge's signature check is what the tests prove.
        """
        for client in ("a", "b"):
            response = yield blocking(self.flow.sqs.get_queue_attributes, QueueUrl=self.flow.queue(client),
                                      AttributeNames=["Policy", "QueueArn"])
            attributes = response["Attributes"]
            self.assertEqual(json.loads(attributes["Policy"]), json.loads(
                provision.queue_policy(attributes["QueueArn"], self.flow.aws["topic_arn"])), client)
