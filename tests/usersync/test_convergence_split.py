"""
A production split started the way docker-compose starts it: a master node
(the master component only, PostgreSQL directory with existing users) and
client nodes (the client component only, each its own SQLite database),
separate processes that share nothing but SNS and SQS (a real moto
server), every node provisioning its own part on start
(``USERSYNC_PROVISION=on``). Whatever the order, every client ends with
the master's directory without anybody running ``resync``; a message lost
on a queue is found and healed; an unstorable username is reported on the
master within seconds.
"""

import atexit
import json
import shutil
import tempfile
import urllib.error
import urllib.request
import uuid

from twisted.internet import defer
from twisted.trial import unittest

from components.auth import keygen
from components.db.database import Database
from components.usersync import messages, provision
from tests.support.databases import postgres_execute, postgres_url, sqlite_url
from tests.support.emulator import ENV, blocking, shared_moto
from tests.support.node import RouterNode, node_alive, shared
from tests.support.polling import until
from tests.support.split import without
from tests.support.users import add_users

USERS = 21
INSERT = ("INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email, is_staff, is_active,"
          " date_joined, first_name) VALUES ('!', NULL, FALSE, %s, '', '', FALSE, TRUE, now(), 'Odd')")
METRICS_TOKEN = "convergence-metrics-token-" + "c" * 16


def get_json(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


class Lazy:
    """A failure message made when it is shown (the logs as they are then)."""

    def __init__(self, make):
        self.make = make

    def __str__(self):
        return self.make()

    def __format__(self, spec):
        return format(str(self), spec)


class Split:
    """
    A split: its topic, signing keys, master database and nodes, cleaned up
    after ``testcase`` (None: at exit, for a split shared by several tests).
    """

    def __init__(self, testcase, moto):
        self.testcase = testcase
        self.cleanup = testcase.addCleanup if testcase is not None else atexit.register
        self.moto = moto
        self.topic = "conv-" + uuid.uuid4().hex[:8]
        keys = tempfile.mkdtemp(prefix="hub-conv-keys-")
        self.cleanup(shutil.rmtree, keys, True)
        self.signing_key, self.verify_key = keygen.usersync_keys(keys)
        self.master_url = postgres_url(testcase)
        self.base = dict(ENV, AWS_ENDPOINT_URL=moto.url, USERSYNC_PROVISION="on", USERSYNC_TOPIC_NAME=self.topic,
                         USERSYNC_WAIT="1", USERSYNC_BEACON="1", USERSYNC_GAP_GRACE="1", USERSYNC_BACKOFF_MAX="1",
                         METRICS_TOKEN=METRICS_TOKEN, METRICS_INTERVAL="1")
        self.names = ["user{:02d}".format(index) for index in range(USERS)]
        # what the master's table holds now: {username: first_name}
        self.expected = {username: username.title() for username in self.names}
        self.clients = {}

    def nodes(self):
        master = getattr(self, "master_node", None)
        return ([master] if master is not None else []) + [node for node, _ in self.clients.values()]

    def alive(self):
        """Whether the master and every client node are running."""
        return hasattr(self, "master_node") and all(node_alive(node) for node in self.nodes())

    def kill(self):
        for node in self.nodes():
            node.cleanup()

    def existing_users(self):
        """The master's directory before any node ever ran on it."""
        return add_users(None, [(name, name.title(), False) for name in self.names], "pw-" + "x" * 12,
                         url=self.master_url)

    def master(self):
        node = RouterNode(name="split-master", env=dict(
            self.base, MASTER_DATABASE_URL=self.master_url, USERSYNC_SIGNING_KEY_FILE=self.signing_key),
            transform=without("usersync_client"))
        self.cleanup(node.cleanup)
        self.master_node = node
        return node

    def client(self, name):
        url = sqlite_url(self.testcase)
        node = RouterNode(name="split-" + name, env=dict(
            self.base, DATABASE_URL=url, USERSYNC_CLIENT_NAME=name, USERSYNC_VERIFY_KEY_FILES=self.verify_key),
            transform=without("usersync_master"))
        self.cleanup(node.cleanup)
        self.clients[name] = (node, url)
        return node

    def first_names(self, name):
        """Fires with ``{username: first_name}`` of client ``name``'s user table (empty before it exists)."""
        db = Database(self.clients[name][1])
        d = db.query("SELECT username, first_name FROM auth_user").addCallbacks(dict, lambda failure: {})
        return d.addBoth(lambda result: db.close() or result)

    def converged(self, name, timeout=90):
        """Wait until client ``name`` holds every user of ``expected`` with that first name."""
        expected = dict(self.expected)

        def check():
            return self.first_names(name).addCallback(
                lambda found: all(found.get(username) == first for username, first in expected.items()))
        def message():
            master = getattr(self, "master_node", None)
            return "client {} did not converge:\n{}\nmaster:\n{}".format(
                name, self.clients[name][0].log_tail(30), master.log_tail(30) if master else "(not started)")
        return until(check, timeout=timeout, message=Lazy(message))

    def logged(self, node, text, timeout=30):
        return until(lambda: defer.succeed(text in node.log_text()), timeout=timeout,
                     message="not in the log: {!r}\n{}".format(text, node.log_tail(30)))

    def ready(self, node):
        """Fires with ``(HTTP status, body)`` of ``node``'s /health/ready."""
        return blocking(get_json, node.http + "/health/ready").addCallback(
            lambda answer: (answer[0], json.loads(answer[1])))


class StartOrderTests(unittest.TestCase):
    """Master first, client first (and a client added later), both at once: all end equal to the master."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.moto = yield shared_moto()
        self.split = Split(self, self.moto)
        yield self.split.existing_users()

    @defer.inlineCallbacks
    def test_master_first(self):
        """The master runs (and has queued its initial snapshot) before any client's queue exists."""
        split = self.split
        yield split.master().start()
        yield split.logged(split.master_node, "initial snapshot queued ({} users".format(USERS))
        yield split.logged(split.master_node, "usersync master: relaying")
        yield split.client("web").start()
        yield split.converged("web")
        yield postgres_execute(split.master_url, "UPDATE auth_user SET first_name = 'Later' WHERE username = 'user03'")
        split.expected["user03"] = "Later"
        yield split.converged("web")
        self.assertNotIn("snapshot requested by", split.master_node.log_text(), "healed, not needed")

    @defer.inlineCallbacks
    def test_client_first_then_a_client_added_later(self):
        """
        The client first, then the master; a second client started later
        reports converging on /health/ready until it asked for and applied a
        snapshot, then ready; nobody ran resync.
        """
        split = self.split
        yield split.client("web").start()
        yield split.logged(split.clients["web"][0], "provisioned queue")
        yield split.master().start()
        yield split.converged("web")
        late = split.client("late")
        yield late.start()
        code, body = yield split.ready(late)
        self.assertEqual((code, body["checks"]["usersync"]["state"]), (503, "converging"), body)
        yield split.converged("late")
        yield split.logged(split.master_node, "snapshot requested by late")

        def ready():
            return split.ready(late).addCallback(lambda answer: answer[0] == 200 and answer[1])
        body = yield until(ready, timeout=30, message="the late client never became ready")
        self.assertEqual(body["checks"]["usersync"]["state"], "in sync")
        code, body = yield split.ready(split.clients["web"][0])
        self.assertEqual(code, 200, body)

    @defer.inlineCallbacks
    def test_both_at_once(self):
        """Master and client started together, as docker-compose does."""
        split = self.split
        yield defer.gatherResults([split.master().start(), split.client("web").start()])
        yield split.converged("web")


@defer.inlineCallbacks
def _start_split(split):
    yield split.existing_users()
    # client first: the order that converged before these changes too, so what the tests see is their own part
    yield split.client("web").start()
    yield split.logged(split.clients["web"][0], "provisioned queue")
    yield split.master().start()


@defer.inlineCallbacks
def running_split():
    """One split, master and client running and converged, shared by the tests that only need it running."""
    moto = yield shared_moto()
    split = yield shared("split", build=lambda: Split(None, moto), start=_start_split, alive=Split.alive,
                         dispose=Split.kill)
    return split


class GapTests(unittest.TestCase):
    """A running split: a message lost on the queue is healed; an unstorable user is reported on the master."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.split = yield running_split()
        self.moto = self.split.moto
        yield self.split.converged("web")

    @defer.inlineCallbacks
    def test_a_message_deleted_from_the_queue_is_healed(self):
        """While the client is down one of three changes is deleted from its queue: the client notices and heals it."""
        split = self.split
        node, _ = split.clients["web"]
        yield node.stop()
        sqs = self.moto.client("sqs")
        queue = (yield blocking(sqs.get_queue_url, QueueName=provision.queue_name(split.topic, "web")))["QueueUrl"]
        for username in ("user01", "user02", "user03"):
            yield postgres_execute(split.master_url, "UPDATE auth_user SET first_name = %s WHERE username = %s",
                                   ("Changed", username))
        dropped = []

        def drop_user02():
            received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                           VisibilityTimeout=1)
            for message in received.get("Messages", []):
                data = messages.unwrap(message["Body"])
                if data.get("user", {}).get("username") == "user02":
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
                    dropped.append(message["MessageId"])
            return bool(dropped)
        yield until(lambda: blocking(drop_user02), timeout=30, message="user02's change never reached the queue")
        yield node.start()
        split.expected.update(user01="Changed", user02="Changed", user03="Changed")
        yield split.converged("web")
        yield split.logged(node, "snapshot requested")

    @defer.inlineCallbacks
    def test_an_unstorable_username_is_reported_on_the_master(self):
        """A username Django's ORM takes ("has space"): refused on the master, named in one log line, counted, in /health."""
        split = self.split
        for username in ("has space", "after_space"):
            yield postgres_execute(split.master_url, INSERT, (username,))
        yield split.logged(split.master_node, "refused insert of user 'has space'", timeout=10)
        line = next(line for line in split.master_node.log_text().splitlines() if "'has space'" in line)
        self.assertIn("field username", line)

        def counted():
            d = blocking(get_json, split.master_node.http + "/metrics", {"Authorization": "Bearer " + METRICS_TOKEN})
            return d.addCallback(lambda answer: "hub_usersync_refused_total 1" in answer[1])
        yield until(counted, timeout=10, message="no refused counter in /metrics")
        code, body = yield split.ready(split.master_node)
        self.assertEqual(body["checks"]["relay"]["dead_letters"], 1, body)
        self.assertIn("has space", body["checks"]["relay"]["last_refused"])
        # the relay goes on: the next user reaches the client, which never gets the unstorable one
        found = yield until(lambda: split.first_names("web").addCallback(lambda names: "after_space" in names and names),
                            timeout=20, message="the user after the refused one never reached the client")
        self.assertNotIn("has space", found)
