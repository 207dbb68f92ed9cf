"""
The dev node (master and client in one node, the emulator provisioned by
the components on start) on a real Django project's PostgreSQL database
that already holds 200 users: they all reach the client database without
anybody running ``resync``; after a stop, changes Django makes while the
hub is down, and an emulator that comes back empty, the client again ends
equal to Django's table.
"""

import uuid

from twisted.internet import defer
from twisted.trial import unittest

from components.db.database import Database
from components.usersync import provision
from tests.django.support import DjangoProject
from tests.support.databases import postgres_url, sqlite_url
from tests.support.emulator import ENV, blocking, shared_moto
from tests.support.node import RouterNode
from tests.support.polling import until

EXISTING = 200


def empty_emulator(sns, sqs, topic, clients):
    """What a restarted local emulator holds of ``topic``: nothing (topic, queues, subscriptions gone)."""
    arn = next(item["TopicArn"] for item in sns.list_topics()["Topics"] if item["TopicArn"].endswith(":" + topic))
    sns.delete_topic(TopicArn=arn)
    names = [provision.request_queue_name(topic)]
    for client in clients:
        names += [provision.queue_name(topic, client), provision.queue_name(topic, client, dead_letter=True)]
    for name in names:
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])


class DevNodeOnDjangoTests(unittest.TestCase):
    timeout = 300

    @defer.inlineCallbacks
    def test_existing_users_arrive_and_changes_made_while_down_follow_a_restart(self):
        """200 Django users reach the client at the first start; changes made while the hub was down follow."""
        moto = yield shared_moto()
        topic = "djconv-" + uuid.uuid4().hex[:8]
        project = DjangoProject(postgres_url(self))
        yield project.manage("migrate", "--noinput")
        yield project.orm("User.objects.bulk_create([User(username='dj%03d' % i, first_name='First %d' % i)"
                          " for i in range({})])".format(EXISTING))
        client_url = sqlite_url(self)
        client = Database(client_url)
        self.addCleanup(client.close)
        master = project.database(self)
        node = RouterNode(name="djconv", env=dict(
            ENV, AWS_ENDPOINT_URL=moto.url, USERSYNC_PROVISION="on", USERSYNC_TOPIC_NAME=topic,
            MASTER_DATABASE_URL=project.database_url, DATABASE_URL=client_url, AUTH_USER_TABLE_OWNER="django",
            USERSYNC_WAIT="1", USERSYNC_BEACON="1", USERSYNC_GAP_GRACE="1", USERSYNC_BACKOFF_MAX="1"))
        self.addCleanup(node.cleanup)

        def directory(db):
            return db.query("SELECT username, first_name FROM auth_user").addCallbacks(set, lambda failure: set())

        @defer.inlineCallbacks
        def equal():
            wanted, held = yield defer.gatherResults([directory(master), directory(client)])
            return bool(wanted) and wanted == held

        def converged(what):
            return until(equal, timeout=90, message="{}: the client is not equal to Django's table\n{}".format(
                what, node.log_tail(30)))

        yield node.start()
        yield converged("first start on 200 existing users")
        self.assertEqual(len((yield directory(client))), EXISTING)

        yield node.stop()
        yield project.orm("User.objects.filter(username__in=['dj001', 'dj002', 'dj150']).update(first_name='Renamed')\n"
                          "User.objects.create_user('newcomer', first_name='New')\n"
                          "User.objects.get(username='dj007').delete()")
        yield blocking(empty_emulator, moto.client("sns"), moto.client("sqs"), topic, ["dev"])
        yield node.start()
        yield converged("restart after changes made while down, emulator empty")
        held = dict((yield directory(client)))
        self.assertEqual((held["dj001"], held["newcomer"], "dj007" in held), ("Renamed", "New", False))
