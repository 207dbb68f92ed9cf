"""
A real Django project as the master of a real router node, end to end: the
hub starts first on Django's PostgreSQL database (``AUTH_USER_TABLE_OWNER=
django``) and waits with one log line, Django's ``migrate`` then works,
ORM writes reach a client database through SNS/SQS (moto server), ``flush``
empties the client, ``migrate auth zero`` + ``migrate`` is detected by the
watchdog (``/health/ready`` names the table meanwhile), the triggers are
reinstalled and the gap resynced, and ``resync --client`` fills a client
queue added later.
"""

import json
import urllib.error
import urllib.request
import uuid

from twisted.internet import defer
from twisted.trial import unittest

from components.db.database import Database
from components.usersync import messages, provision, replica
from tests.django.support import DjangoProject
from tests.support.databases import postgres_url, sqlite_url
from tests.support.emulator import ENV, blocking, shared_moto
from tests.support.node import RouterNode
from tests.support.polling import until

WAITING = "user table auth_user does not exist yet"


def _get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _usernames(sqs, queue_url):
    """Drain what is in ``queue_url`` now: the usernames of its user changes."""
    found = set()
    while True:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        batch = received.get("Messages", [])
        if not batch:
            return found
        for message in batch:
            data = messages.unwrap(message["Body"])
            # consecutive events travel in packs (messages.encode_pack)
            for event in data.get("events", [data]) if data.get("type") == messages.PACK else [data]:
                if event.get("action") in ("insert", "update"):
                    found.add(event["user"]["username"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


class DjangoMasterNodeTests(unittest.TestCase):
    timeout = 240

    @defer.inlineCallbacks
    def setUp(self):
        self.moto = yield shared_moto()
        self.sns, self.sqs = self.moto.client("sns"), self.moto.client("sqs")
        self.plan = provision.Plan("django-" + uuid.uuid4().hex[:8], ["a"], max_receives=2, visibility_timeout=2)
        self.aws = yield blocking(provision.provision, self.sns, self.sqs, self.plan)
        self.client_url = sqlite_url(self)
        self.client = Database(self.client_url)
        self.addCleanup(self.client.close)

    def project_on(self, master_url):
        """The Django project on ``master_url``, its hub commands set up for this test's topic."""
        self.master_url = master_url
        self.aws_env = dict(ENV, SNS_TOPIC_ARN=self.aws["topic_arn"], AWS_ENDPOINT_URL=self.moto.url)
        self.project = DjangoProject(master_url, hub_env=self.aws_env)
        return self.project

    def start_node(self):
        env = dict(self.aws_env, SQS_QUEUE_URL=self.aws["clients"]["a"]["queue_url"],
                   MASTER_DATABASE_URL=self.master_url, DATABASE_URL=self.client_url, USERSYNC_WAIT="1",
                   USERSYNC_BACKOFF_MAX="1", AUTH_USER_TABLE_OWNER="django", USERSYNC_TRIGGER_CHECK="5")
        self.node = RouterNode(name="django", env=env)
        self.addCleanup(self.node.cleanup)
        return self.node.start()

    def logged(self, text):
        return until(lambda: defer.succeed(text in self.node.log_text()),
                     message="not in the node log: {!r}\n{}".format(text, self.node.log_tail()), timeout=40)

    def at_client(self, username, predicate, message):
        return until(lambda: self.client.run(replica.profile, username).addCallback(lambda found: predicate(*found)),
                     message=message, timeout=40)

    def capture_check(self):
        """Fires with the ``capture`` check of /health/ready (None when there is none)."""
        d = blocking(_get_json, self.node.http + "/health/ready")
        return d.addCallback(lambda answer: answer[1].get("checks", {}).get("capture"))

    @defer.inlineCallbacks
    def test_hub_first_then_django_and_every_change_reaches_the_client(self):
        """The whole life of a Django master on PostgreSQL: the hub first, ORM writes, flush, a lost trigger, a late client."""
        self.project_on(postgres_url(self))
        yield self.start_node()
        yield self.logged(WAITING)
        # the hub left auth_user to Django: its migrate works
        yield self.project.manage("migrate", "--noinput")
        yield self.logged("user table auth_user found; triggers installed")
        self.assertEqual(self.node.log_text().count(WAITING), 1, "the wait is one log line")

        yield self.project.orm("User.objects.create_user('alice', password='pw-alice-1234', first_name='Alice')\n"
                               "User.objects.create_superuser('root', 'root@example.com', 'pw-root-1234')")
        yield self.at_client("alice", lambda user, version: user is not None and user["first_name"] == "Alice",
                             "ORM insert not at the client")
        # staff are synced by default: a Django superuser sees their own profile
        yield self.at_client("root", lambda user, version: user is not None, "superuser not at the client")

        yield self.project.manage("flush", "--noinput")
        yield self.at_client("alice", lambda user, version: user is None and version == 2, "flush not at the client")
        yield self.at_client("root", lambda user, version: user is None, "flush not at the client")

        yield self.project.manage("migrate", "auth", "zero", "--noinput")
        yield until(lambda: self.capture_check().addCallback(lambda check: bool(check and check["table"] == "auth_user")),
                    message="/health/ready does not name the missing table", timeout=40)
        # the table back, and a user written before the watchdog's next look (every 5 s): the gap resync carries it
        yield self.project.orm("from django.core.management import call_command\n"
                               "call_command('migrate', verbosity=0)\n"
                               "User.objects.create_user('gap', password='pw-gap-12345', first_name='Gap')")
        yield self.logged("triggers on auth_user reinstalled; gap resync queued (1 users")
        yield self.at_client("gap", lambda user, version: user is not None and user["first_name"] == "Gap",
                             "user written during the gap not at the client")
        yield until(lambda: self.capture_check().addCallback(lambda check: check is None),
                    message="/health/ready still names the capture", timeout=20)
        yield self.project.orm("User.objects.filter(username='gap').update(first_name='After')")
        yield self.at_client("gap", lambda user, version: user is not None and user["first_name"] == "After",
                             "change after the reinstall not at the client")

        # a client added later: its queue is subscribed now, then resync
        late = provision.Plan(self.plan.topic, ["a", "late"], max_receives=2, visibility_timeout=2)
        result = yield blocking(provision.provision, self.sns, self.sqs, late)
        resync = yield self.project.hub("components.usersync", "resync", "--client", "late")
        self.assertIn("resync of auth_user: 1 user events", resync.stdout)
        names = set()

        def arrived():
            return blocking(_usernames, self.sqs, result["clients"]["late"]["queue_url"]).addCallback(
                lambda found: names.update(found) or "gap" in names)
        yield until(arrived, message="the resync did not reach the late client's queue", timeout=40)
        self.assertEqual(names, {"gap"})

    @defer.inlineCallbacks
    def test_django_first_existing_users_reach_the_client(self):
        """Django on SQLite with users before the hub: the master's initial snapshot brings them to the client."""
        project = self.project_on(sqlite_url(self))
        yield project.manage("migrate", "--noinput")
        yield project.orm("User.objects.create_user('old', password='pw-old-123456', first_name='Old')\n"
                          "User.objects.create_superuser('boss', 'boss@example.com', 'pw-boss-123456')")
        yield self.start_node()
        yield self.logged("initial snapshot queued (2 users")
        self.assertNotIn(WAITING, self.node.log_text())
        yield self.at_client("old", lambda user, version: user is not None and user["first_name"] == "Old",
                             "existing user not at the client")
        yield self.at_client("boss", lambda user, version: user is not None and version == 1,
                             "existing superuser not at the client")
        # Django's row-by-row flush on SQLite
        yield project.manage("flush", "--noinput")
        yield self.at_client("old", lambda user, version: user is None and version == 2, "flush not at the client")

    @defer.inlineCallbacks
    def test_hub_first_on_sqlite(self):
        """The hub first on Django's SQLite file: one wait line, Django's migrate works, then ORM writes sync."""
        project = self.project_on(sqlite_url(self))
        yield self.start_node()
        yield self.logged(WAITING)
        yield project.manage("migrate", "--noinput")
        yield self.logged("user table auth_user found; triggers installed")
        self.assertEqual(self.node.log_text().count(WAITING), 1, "the wait is one log line")
        yield project.orm("User.objects.create_user('sam', password='pw-sam-123456', first_name='Sam')")
        yield self.at_client("sam", lambda user, version: user is not None and user["first_name"] == "Sam",
                             "ORM insert not at the client")
