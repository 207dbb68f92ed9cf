"""
User sync end to end: a real router node running the master relay (master
database on PostgreSQL, SNS reached through a gate that can be cut) and two
client bridges (client a on SQLite with the push to browsers, client b on
PostgreSQL), a real moto server over HTTP, real boto3.
"""

import copy
import json
import sqlite3
import uuid

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest

from components.db.database import Database
from components.usersync import messages, provision, replica
from tests.support.clients import connect, token
from tests.support.databases import postgres_execute, postgres_url, sqlite_url
from tests.support.emulator import ENV, Gate, blocking, shared_moto
from tests.support.node import RouterNode, component, node_alive, router_worker, shared
from tests.support.polling import eventually, until
from tests.support.syncsigning import node_signer

class Flow:
    """The shared setup: emulator, gate, topic and queues, databases, node."""

    @defer.inlineCallbacks
    def start(self):
        self.moto = yield shared_moto()
        self.gate = yield Gate(self.moto.port).open()
        self.sns = self.moto.client("sns")
        self.sqs = self.moto.client("sqs")
        plan = provision.Plan("users-" + uuid.uuid4().hex[:8], ["a", "b"], max_receives=2,
                              visibility_timeout=2)
        self.aws = yield blocking(provision.provision, self.sns, self.sqs, plan)
        self.queue_a = self.aws["clients"]["a"]["queue_url"]
        self.master_url = postgres_url(None)
        self.client_a_url = sqlite_url(None)
        self.client_b_url = postgres_url(None)
        env = dict(ENV, SNS_TOPIC_ARN=self.aws["topic_arn"], SQS_QUEUE_URL=self.queue_a,
                   AWS_ENDPOINT_URL=self.moto.url, MASTER_DATABASE_URL=self.master_url,
                   DATABASE_URL=self.client_a_url, USERSYNC_WAIT="2", USERSYNC_BACKOFF_MAX="1",
                   # staff are synced by default; these tests check the staff-free synced set
                   USERSYNC_INCLUDE_STAFF="off")
        self.node = RouterNode(name="usersync", env=env, transform=self.transform)
        yield self.node.start()
        # the admin procedures check the caller against the directory: the flow's admin is a real superuser
        # (staff, so the capture leaves it out of the synced set)
        yield until(lambda: master_sql(self.master_url, ADMIN_ROW, (ADMIN,)).addCallbacks(
            lambda _: True, lambda failure: False), message="master directory not migrated")
        return self

    def alive(self):
        return node_alive(getattr(self, "node", None)) and getattr(self, "gate", None) is not None

    def stop(self):
        """Kill the node and close the gate (the emulator is shared beyond the flow)."""
        if getattr(self, "node", None) is not None:
            self.node.cleanup()
        if getattr(self, "gate", None) is not None:
            self.gate.close()

    def open_databases(self, testcase):
        """
        Fresh handles on the three databases for one test, closed after it.
        Not shared across tests: a trial ``--jobs`` worker fires the reactor's
        "shutdown" event after every test, and an adbapi pool closes itself
        on that event, so a handle kept from an earlier test never answers.
        """
        self.master = Database(self.master_url)
        self.client_a = Database(self.client_a_url)
        self.client_b = Database(self.client_b_url)
        for database in (self.master, self.client_a, self.client_b):
            testcase.addCleanup(database.close)

    def transform(self, config):
        component(config, "usersync_master")["extra"]["AWS_ENDPOINT_URL"] = self.gate.url
        second = copy.deepcopy(component(config, "usersync_client"))
        second["id"] = "usersync_client_b"
        second["extra"].update(DATABASE_URL=self.client_b_url, USERSYNC_PUSH="off",
                               SQS_QUEUE_URL=self.aws["clients"]["b"]["queue_url"])
        router_worker(config)["components"].append(second)
        return config


def shared_flow():
    """The flow, shared by the tests of a process (tests.support.node.shared)."""
    return shared("usersync-flow", build=Flow, start=Flow.start, alive=Flow.alive, dispose=Flow.stop)


ADMIN = "flow_root"
ADMIN_ROW = ("INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email, is_staff,"
             " is_active, date_joined, first_name) VALUES ('!', NULL, TRUE, %s, '', '', TRUE, TRUE, now(), 'Root')"
             " ON CONFLICT (username) DO NOTHING")


def name(prefix="u"):
    return "{}_{}".format(prefix, uuid.uuid4().hex[:10])


def master_sql(url, sql, params=()):
    """A direct SQL write on the master table, as a SQL console or another application would do it."""
    return postgres_execute(url, sql, params)


class UserSyncFlowTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.flow = yield shared_flow()
        self.flow.open_databases(self)

    def profiles(self, username):
        """Fire with ``(client a profile, client b profile)``."""
        return defer.gatherResults([db.run(replica.profile, username)
                                    for db in (self.flow.client_a, self.flow.client_b)])

    def reach_both(self, username, predicate, message):
        def check():
            return self.profiles(username).addCallback(
                lambda both: all(predicate(user, version) for user, version in both))
        return until(check, message=message)

    @defer.inlineCallbacks
    def sessions(self, username):
        admin = yield connect(self, self.flow.node, sub=ADMIN, role="admin")
        own = yield connect(self, self.flow.node, sub=username, role="user")
        other = yield connect(self, self.flow.node, sub=name("other"), role="user")
        mine, theirs = [], []
        yield own.session.subscribe(mine.append, "users.changed")
        yield other.session.subscribe(theirs.append, "users.changed")
        return admin.session, own.session, mine, theirs

    def credential_version(self, username):
        """The user's credential version in the master's ``hub_credential`` (what a fresh login's ``cv`` holds)."""
        return self.flow.master.query("SELECT version FROM hub_credential WHERE username = ?",
                                      (username,)).addCallback(lambda rows: rows[0][0])

    def outbox_rows(self, username):
        return self.flow.master.query(
            "SELECT action, version, sent_ms, attempts FROM usersync_outbox WHERE username = ?"
            " AND action IN ('insert', 'update', 'delete') ORDER BY id",
            (username,))

    @defer.inlineCallbacks
    def test_create_update_delete_reach_both_clients_and_only_that_user(self):
        """Admin create, update, delete reach both client tables and the user's own session, no one else's."""
        username = name("alice")
        admin, own, mine, theirs = yield self.sessions(username)
        saved = yield admin.call("master.users.save", {"username": username, "first_name": "Alice",
                                                       "email": "alice@example.com"})
        self.assertEqual((saved["created"], saved["version"]), (True, 1))
        yield self.reach_both(username, lambda user, version: user and user["first_name"] == "Alice",
                              "insert not at both clients")
        yield eventually(lambda: len(mine) == 1, message="insert event not received")
        self.assertEqual(mine[0]["value"], {"username": username, "first_name": "Alice", "last_name": "",
                                            "email": "alice@example.com", "is_active": True,
                                            "action": "insert", "version": 1})
        self.assertEqual(mine[0]["seq"], 1)

        yield admin.call("master.users.save", {"username": username, "first_name": "Alicia"})
        yield self.reach_both(username, lambda user, version: user and user["first_name"] == "Alicia",
                              "update not at both clients")
        yield eventually(lambda: len(mine) == 2, message="update event not received")
        self.assertEqual((mine[1]["value"]["action"], mine[1]["seq"]), ("update", 2))
        me = yield own.call("users.me")
        self.assertEqual((me["value"]["first_name"], me["seq"]), ("Alicia", 2))
        self.assertNotIn("password", me["value"])

        left = []
        own.on("leave", lambda session, details: left.append(details.reason))
        deleted = yield admin.call("master.users.delete", username)
        self.assertEqual(deleted, {"username": username, "deleted": True})
        yield self.reach_both(username, lambda user, version: user is None and version == 3,
                              "delete not at both clients")
        # a deleted user's session is ended (revocation); the delete event reaches it if it comes first
        yield eventually(lambda: left, message="the deleted user's session was not ended")
        self.assertEqual(left, ["reactive.error.auth.revoked"])
        self.assertEqual([(event["value"]["action"], event["seq"]) for event in mine[2:]], [("delete", 3)][:len(mine[2:])])
        self.assertEqual(theirs, [])

    @defer.inlineCallbacks
    def test_ignored_fields_and_staff_produce_nothing_and_direct_sql_is_captured(self):
        """Password/last_login-only changes and staff users produce no event; a SQL UPDATE does."""
        username, staff = name("carol"), name("staff")
        admin, own, mine, theirs = yield self.sessions(username)
        yield admin.call("master.users.save", {"username": username, "first_name": "Carol",
                                               "password": "correct horse battery"})
        yield admin.call("master.users.save", {"username": staff, "first_name": "Staff", "is_staff": True})
        yield eventually(lambda: len(mine) == 1, message="insert event not received")
        left = []
        own.on("leave", lambda session, details: left.append(details.reason))
        yield master_sql(self.flow.master_url,
                         "UPDATE auth_user SET password = 'x', last_login = now(), date_joined = now()"
                         " WHERE username = %s", (username,))
        # the password change revokes the session (its token has no cv); the events go on to a new one that holds
        # the new credential version
        yield eventually(lambda: left, message="the password change did not end the user's session")
        self.assertEqual(left, ["reactive.error.auth.revoked"])
        version = yield self.credential_version(username)
        renewed = yield connect(self, self.flow.node, ticket=token(username, "user", extra_claims={"cv": version}))
        yield renewed.session.subscribe(mine.append, "users.changed")
        yield master_sql(self.flow.master_url, "UPDATE auth_user SET first_name = 'Boss' WHERE username = %s",
                         (staff,))
        yield master_sql(self.flow.master_url,
                         "UPDATE auth_user SET first_name = 'Caroline' WHERE username = %s", (username,))
        yield self.reach_both(username, lambda user, version: user and user["first_name"] == "Caroline",
                              "SQL update not at both clients")
        yield eventually(lambda: len(mine) == 2, message="SQL update event not received")
        self.assertEqual([(event["value"]["action"], event["seq"]) for event in mine],
                         [("insert", 1), ("update", 2)])
        rows = yield self.outbox_rows(username)
        self.assertEqual([row[:2] for row in rows], [("insert", 1), ("update", 2)])
        staff_rows = yield self.outbox_rows(staff)
        self.assertEqual(staff_rows, [])
        both = yield self.profiles(staff)
        self.assertEqual(both, [(None, 0), (None, 0)])
        self.assertEqual(theirs, [])

    @defer.inlineCallbacks
    def test_sns_unreachable_then_back_loses_nothing(self):
        """While SNS cannot be reached the master keeps working and events wait; once back, all arrive."""
        self.flow.gate.close()
        self.addCleanup(lambda: self.flow.gate.open() if self.flow.gate.process.poll() is not None else None)
        admin = yield connect(self, self.flow.node, sub=ADMIN, role="admin")
        users = [name("outage") for _ in range(5)]
        for index, username in enumerate(users):
            yield admin.session.call("master.users.save",
                                     {"username": username, "first_name": "N{}".format(index)})

        def tried_and_waiting():
            return self.outbox_rows(users[0]).addCallback(
                lambda rows: rows and rows[0][2] is None and rows[0][3] >= 1)
        yield until(tried_and_waiting, message="relay never attempted while SNS was down")
        both = yield self.profiles(users[-1])
        self.assertEqual(both, [(None, 0), (None, 0)])
        yield self.flow.gate.open()
        for index, username in enumerate(users):
            expected = "N{}".format(index)
            yield self.reach_both(username, lambda user, version, expected=expected: user and
                                  user["first_name"] == expected, "change made during the outage lost")
        rows = yield self.flow.master.query(
            "SELECT COUNT(*) FROM usersync_outbox WHERE sent_ms IS NULL AND username LIKE 'outage_%'")
        self.assertEqual(rows[0][0], 0)

    def send_raw(self, *bodies):
        entries = [{"Id": str(index), "MessageBody": body} for index, body in enumerate(bodies)]
        return blocking(self.flow.sqs.send_message_batch, QueueUrl=self.flow.queue_a, Entries=entries)

    @defer.inlineCallbacks
    def allow_receives(self, count):
        """
        Raise client a's maxReceiveCount for this test (restored after it).
        The flow's limit of 2 keeps the dead-letter test fast, but a batch held
        across a kill is received at least twice, and with a 2 s visibility any
        lapse of the extension on a loaded machine adds a receive: this test is
        about the bridge applying everything once, not about that limit. (CI
        lost such a batch to the dead-letter queue twice; a failure now reports
        the queue depths.)
        """
        url = self.flow.queue_a
        response = yield blocking(self.flow.sqs.get_queue_attributes, QueueUrl=url,
                                  AttributeNames=["RedrivePolicy"])
        original = response["Attributes"]["RedrivePolicy"]
        policy = dict(json.loads(original), maxReceiveCount=count)
        yield blocking(self.flow.sqs.set_queue_attributes, QueueUrl=url,
                       Attributes={"RedrivePolicy": json.dumps(policy)})
        self.addCleanup(blocking, self.flow.sqs.set_queue_attributes, QueueUrl=url,
                        Attributes={"RedrivePolicy": original})

    @defer.inlineCallbacks
    def queue_report(self):
        """Applied kill_ rows and the depths of client a's queue and dead-letter queue, for a failure message."""
        applied = yield self.flow.client_a.query(
            "SELECT COUNT(*) FROM usersync_state WHERE username LIKE 'kill_%'")
        report = {"applied": applied[0][0]}
        for label, url in (("queue", self.flow.queue_a),
                           ("dead-letter", self.flow.aws["clients"]["a"]["dead_letter_queue_url"])):
            response = yield blocking(self.flow.sqs.get_queue_attributes, QueueUrl=url,
                                      AttributeNames=["ApproximateNumberOfMessages",
                                                      "ApproximateNumberOfMessagesNotVisible"])
            report[label] = response["Attributes"]
        return report

    def queue_drained(self, url):
        def check():
            d = blocking(self.flow.sqs.get_queue_attributes, QueueUrl=url,
                         AttributeNames=["ApproximateNumberOfMessages",
                                         "ApproximateNumberOfMessagesNotVisible"])
            return d.addCallback(
                lambda response: all(value == "0" for value in response["Attributes"].values()))
        return until(check, message="queue not drained")

    @defer.inlineCallbacks
    def test_duplicates_out_of_order_and_late_updates_end_in_master_state(self):
        """Duplicated, reordered and late messages put on the queue cannot move a client off the master."""
        username = name("dave")
        admin = (yield connect(self, self.flow.node, sub=ADMIN, role="admin")).session
        for first in ("D1", "D2", "D3"):
            yield admin.call("master.users.save", {"username": username, "first_name": first})
        yield self.reach_both(username, lambda user, version: version == 3, "v3 not at both clients")

        def body(action, version, first):
            user = {"username": username, "first_name": first, "last_name": "", "email": "",
                    "is_active": True}
            return messages.encode(action, version, user, 0, node_signer(self.flow.node))
        yield self.send_raw(body("update", 2, "D2"), body("insert", 1, "D1"), body("update", 3, "D3"),
                            body("update", 3, "D3"), body("update", 2, "stale"))
        yield self.queue_drained(self.flow.queue_a)
        user, version = yield self.flow.client_a.run(replica.profile, username)
        self.assertEqual((user["first_name"], version), ("D3", 3))
        state = yield self.flow.client_a.run(replica.state_of, username)
        self.assertEqual(state, (3, False, 3))

        yield admin.call("master.users.delete", username)
        yield self.reach_both(username, lambda user, version: user is None and version == 4,
                              "delete not applied")
        yield self.send_raw(body("update", 3, "zombie"), body("insert", 1, "zombie"))
        yield self.queue_drained(self.flow.queue_a)
        user, version = yield self.flow.client_a.run(replica.profile, username)
        self.assertEqual((user, version), (None, 4))

    @defer.inlineCallbacks
    def test_bad_messages_are_logged_and_end_in_the_dead_letter_queue(self):
        """Malformed messages are logged with their id and dead-lettered; good ones still apply."""
        good = name("erin")
        bad = [
            "this is not json",
            json.dumps({"type": "user.changed"}),
            json.dumps({"type": "user.changed", "action": "update", "version": "7",
                        "user": {"username": "x"}}),
            messages.encode("rename", 1, {"username": "x"}, 0, node_signer(self.flow.node)),
            messages.encode("update", 1, {"username": "x", "first_name": "y" * 70000}, 0,
                            node_signer(self.flow.node)),
            messages.encode("update", 1, {"username": "not valid!"}, 0, node_signer(self.flow.node)),
        ]
        response = yield self.send_raw(*bad)
        ids = {entry["MessageId"] for entry in response["Successful"]}
        self.assertEqual(len(ids), len(bad))
        yield self.send_raw(messages.encode("insert", 1, {"username": good, "first_name": "Erin"}, 0,
                                            node_signer(self.flow.node)))
        yield until(lambda: self.flow.client_a.run(replica.profile, good).addCallback(
            lambda result: result[0]), message="good message after bad ones not applied")
        dead_letter_url = self.flow.aws["clients"]["a"]["dead_letter_queue_url"]
        arrived = set()

        def all_dead_lettered():
            d = blocking(self.flow.sqs.receive_message, QueueUrl=dead_letter_url, MaxNumberOfMessages=10,
                         WaitTimeSeconds=1, MessageAttributeNames=["All"])

            def seen(response):
                # redriven by SQS (same id), or moved by the bridge as not the master's (id in an attribute)
                arrived.update(message.get("MessageAttributes", {}).get("refused_message_id", {}).get(
                    "StringValue", message["MessageId"]) for message in response.get("Messages", []))
                return ids <= arrived
            return d.addCallback(seen)
        yield until(all_dead_lettered, timeout=30, message="bad messages not in the dead-letter queue")
        log = self.flow.node.log_text()
        for message_id in ids:
            self.assertIn("usersync message {} rejected".format(message_id), log)

    @defer.inlineCallbacks
    def test_admin_rpcs_validate_like_django_and_need_the_admin_role(self):
        """master.users.save refuses bad usernames, emails, lengths, fields; a plain user may not call it."""
        admin = (yield connect(self, self.flow.node, sub=ADMIN, role="admin")).session
        for profile, field in (({"username": "bad name"}, "username"),
                               ({"username": name(), "email": "not-an-email"}, "email"),
                               ({"username": name(), "first_name": "x" * 151}, "first_name"),
                               ({"username": name(), "is_active": "yes"}, "is_active"),
                               ({"username": name(), "password_hash": "x"}, "password_hash")):
            with self.assertRaises(ApplicationError) as raised:
                yield admin.call("master.users.save", profile)
            self.assertEqual((raised.exception.error, raised.exception.kwargs.get("field")),
                             ("reactive.error.invalid_argument", field))
        with self.assertRaises(ApplicationError) as raised:
            yield admin.call("master.users.delete", name("nobody"))
        self.assertEqual(raised.exception.error, "reactive.error.not_found")
        username = name("frank")
        yield admin.call("master.users.save", {"username": username, "first_name": "Frank"})
        listed = yield admin.call("master.users.list")
        self.assertIn(username, [user["username"] for user in listed])
        self.assertNotIn("password", listed[0])
        user = (yield connect(self, self.flow.node, sub=username, role="user")).session
        with self.assertRaises(ApplicationError) as raised:
            yield user.call("master.users.save", {"username": username, "first_name": "Mallory"})
        self.assertEqual(raised.exception.error, "wamp.error.not_authorized")

    @defer.inlineCallbacks
    def test_bridge_killed_mid_batch_applies_every_change_once(self):
        """SIGKILL with batches received but not committed, then restart: every change applied once."""
        users = [name("kill") for _ in range(60)]

        def send(names):
            return self.send_raw(*[messages.encode("insert", 1, {"username": username, "first_name": "K"}, 0,
                                                   node_signer(self.flow.node))
                                   for username in names])

        def applied_count():
            return self.flow.client_a.query(
                "SELECT COUNT(*) FROM usersync_state WHERE username LIKE 'kill_%' AND version = 1")
        yield self.allow_receives(10)
        yield send(users[:10])
        yield until(lambda: applied_count().addCallback(lambda rows: rows[0][0] == 10),
                    message="bridge not applying")
        # hold client a's database so the bridge's next batches are received but cannot commit
        locker = sqlite3.connect(self.flow.client_a_url[len("sqlite:///"):], isolation_level=None)
        self.addCleanup(locker.close)
        locker.execute("BEGIN EXCLUSIVE")
        for start in range(10, len(users), 10):
            yield send(users[start:start + 10])

        def in_flight():
            d = blocking(self.flow.sqs.get_queue_attributes, QueueUrl=self.flow.queue_a,
                         AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
            return d.addCallback(
                lambda response: int(response["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) > 0)
        yield until(in_flight, message="no batch in flight")
        self.flow.node.kill()
        locker.execute("ROLLBACK")
        self.assertEqual((yield applied_count())[0][0], 10)
        yield self.flow.node.start()
        try:
            yield until(lambda: applied_count().addCallback(lambda rows: rows[0][0] == len(users)),
                        timeout=40, message="changes lost across the kill")
        except AssertionError:
            self.fail("changes lost across the kill: {}".format((yield self.queue_report())))
        rows = yield self.flow.client_a.query(
            "SELECT applied, COUNT(*) FROM usersync_state WHERE username LIKE 'kill_%' GROUP BY applied")
        self.assertEqual(rows, [(1, len(users))])
