"""
Revocation across a production deployment: a master node (master.json, its
user table on PostgreSQL, the relay to SNS) and two linked client nodes
(client.json, one PostgreSQL client database, one SQS queue), all on the
local SNS/SQS emulator. A change committed on the master, by plain SQL or
by a logout at the master's /auth, ends the user's sessions on BOTH client
nodes within 2 s, and the old token is refused at join on both.
"""

import os
import shutil
import tempfile
import time
import uuid

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest

from components.auth import AUTH_REVOKED, keygen
from components.usersync import provision
from tests.node.test_production import NODE_DIR, LinkedClientNodes, _adduser, _Direct
from tests.support.clients import connect, post_json
from tests.support.databases import postgres_execute as _sql, postgres_url
from tests.support.emulator import ENV, blocking, shared_moto
from tests.support.node import RouterNode
from tests.support.polling import eventually

PASSWORD = "linked-password-1"
LIMIT = 2.0


class LinkedRevocationTests(unittest.TestCase):
    """One deployment, started once: the checks run one after the other on it."""

    timeout = 300

    @defer.inlineCallbacks
    def deployment(self):
        moto = yield shared_moto()
        plan = provision.Plan("users-" + uuid.uuid4().hex[:8], ["hub"], max_receives=5)
        aws = yield blocking(provision.provision, moto.client("sns"), moto.client("sqs"), plan)
        sync = dict(ENV, AWS_ENDPOINT_URL=moto.url, USERSYNC_WAIT="1", E2E_ENCRYPTION="off")
        # the master signs the sync with the key keygen makes; the client nodes hold its public half
        keys = tempfile.mkdtemp(prefix="hub-sync-keys-")
        self.addCleanup(shutil.rmtree, keys, True)
        signing_key, verify_key = keygen.usersync_keys(keys)
        self.pair = LinkedClientNodes(self, env=dict(sync, SQS_QUEUE_URL=aws["clients"]["hub"]["queue_url"],
                                                     USERSYNC_VERIFY_KEY_FILES=verify_key))
        self.addCleanup(self.pair.cleanup)
        private, public = self.pair.key_files
        self.master_url = postgres_url(self)
        self.master = RouterNode(name="master", config_path=os.path.join(NODE_DIR, "master.json"), env=dict(
            sync, JWT_SECRET="", JWT_PUBLIC_KEY_FILE=public, JWT_PRIVATE_KEY_FILE=private,
            MASTER_DATABASE_URL=self.master_url, DATABASE_URL=self.pair.database_url,
            SNS_TOPIC_ARN=aws["topic_arn"], USERSYNC_SIGNING_KEY_FILE=signing_key))
        self.addCleanup(self.master.cleanup)
        for username, admin in (("lr_carol", False), ("lr_dave", False), ("lr_erin", True)):
            _adduser(self.master, username, PASSWORD, superuser=admin)
        yield defer.gatherResults([self.master.start(), self.pair.start()])
        one, two = self.pair.nodes
        yield eventually(lambda: self.pair.linked(one) and self.pair.linked(two), timeout=30, message="rlinks not up")

    @defer.inlineCallbacks
    def login(self, username):
        """Log in at the master; fire with ``(cookies, token answer)``."""
        code, body, response = yield post_json(self.master.http + "/auth/login",
                                               {"username": username, "password": PASSWORD})
        self.assertEqual(code, 200, body)
        cookies = {cookie.name: cookie.value for cookie in response.cookies()}
        code, body, _ = yield post_json(self.master.http + "/auth/token", cookies=cookies)
        self.assertEqual(code, 200, body)
        return cookies, body

    @defer.inlineCallbacks
    def on_both(self, ticket):
        """The user joined on each client node; fire with the leave lists."""
        lefts = []
        for node in self.pair.nodes:
            client = yield connect(self, _Direct(node.url), ticket=ticket, reconnect=False)
            yield client.session.call("counter.get")
            left = []
            client.on_leave(left.append)
            lefts.append(left)
        return lefts

    @defer.inlineCallbacks
    def assertEndedOnBoth(self, lefts, started):
        yield eventually(lambda: all(lefts), timeout=LIMIT + 8, message="a session outlived the change")
        elapsed = time.monotonic() - started
        self.assertEqual([left[0].reason for left in lefts], [AUTH_REVOKED] * 2)
        self.assertLess(elapsed, LIMIT, "sessions ended {:.2f} s after the commit".format(elapsed))

    @defer.inlineCallbacks
    def assertRefusedOnBoth(self, ticket):
        for node in self.pair.nodes:
            with self.assertRaises(ApplicationError) as caught:
                yield connect(self, _Direct(node.url), ticket=ticket, reconnect=False)
            self.assertEqual(caught.exception.error, AUTH_REVOKED, node.url)

    @defer.inlineCallbacks
    def test_changes_on_the_master_end_sessions_on_both_client_nodes(self):
        """Deactivation by SQL, a logout, and a demotion: each ends the sessions on both client nodes in < 2 s."""
        yield self.deployment()

        _, carol = yield self.login("lr_carol")
        lefts = yield self.on_both(carol["token"])
        started = time.monotonic()
        yield _sql(self.master_url, "UPDATE auth_user SET is_active = FALSE WHERE username = %s", ("lr_carol",))
        yield self.assertEndedOnBoth(lefts, started)
        yield self.assertRefusedOnBoth(carol["token"])

        cookies, dave = yield self.login("lr_dave")
        lefts = yield self.on_both(dave["token"])
        started = time.monotonic()
        code, body, _ = yield post_json(self.master.http + "/auth/logout", cookies=cookies)
        self.assertEqual(code, 200, body)
        yield self.assertEndedOnBoth(lefts, started)
        yield self.assertRefusedOnBoth(dave["token"])

        cookies, erin = yield self.login("lr_erin")
        self.assertEqual(erin["role"], "admin")
        lefts = yield self.on_both(erin["token"])
        started = time.monotonic()
        yield _sql(self.master_url, "UPDATE auth_user SET is_superuser = FALSE WHERE username = %s", ("lr_erin",))
        yield self.assertEndedOnBoth(lefts, started)
        code, again, _ = yield post_json(self.master.http + "/auth/token", cookies=cookies)
        self.assertEqual((code, again.get("role")), (200, "user"), again)
        yield self.on_both(again["token"])
