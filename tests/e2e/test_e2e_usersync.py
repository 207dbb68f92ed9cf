"""
End-to-end encryption on the real user-sync path: a master edit travels
SNS -> SQS -> client bridge -> users.relay -> users.changed sealed for that
user. The user's session receives an envelope that opens with the user's key
(and only for users.changed and its seq); a router-side subscriber of
users.relay and the router's log never see the plaintext; users.me answers
sealed too.
"""

import json
import os
import uuid

from twisted.internet import defer
from twisted.trial import unittest

from components.e2e import envelope
from components.e2e.keys import UserKeys, load_kek
from components.db.database import Database
from components.usersync import provision
from components.core.settings import Settings
from tests.support.clients import connect
from tests.support.databases import sqlite_url
from tests.support.emulator import ENV, blocking, shared_moto
from tests.support.node import RouterNode, router_worker
from tests.support.polling import eventually
from tests.support.users import add_users

SECRET_NAME = "Zyxwvut"  # a first name that must never appear in clear outside the user's own session


def spy_on_relay(config):
    """Test-only: let device tokens subscribe users.relay, to look at what the router carries."""
    realm = router_worker(config)["realms"][0]
    role = next(role for role in realm["roles"] if role["name"] == "device")
    role["permissions"].append({"uri": "users.relay", "match": "exact",
                                "allow": {"call": False, "register": False, "publish": False, "subscribe": True},
                                "disclose": {"caller": False, "publisher": False}, "cache": True})
    return config


class EncryptedUserSyncTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_profile_sealed_for_its_user_only(self):
        """A master edit reaches the user sealed; the relay and the router log see only ciphertext."""
        moto = yield shared_moto()
        plan = provision.Plan("users-" + uuid.uuid4().hex[:8], ["a"], max_receives=3, visibility_timeout=5)
        aws = yield blocking(provision.provision, moto.client("sns"), moto.client("sqs"), plan)
        client_url = sqlite_url(self)
        env = dict(ENV, E2E_ENCRYPTION="on", SNS_TOPIC_ARN=aws["topic_arn"],
                   SQS_QUEUE_URL=aws["clients"]["a"]["queue_url"], AWS_ENDPOINT_URL=moto.url,
                   MASTER_DATABASE_URL=sqlite_url(self), DATABASE_URL=client_url, USERSYNC_WAIT="1")
        node = RouterNode(name="e2e-usersync", env=env, transform=spy_on_relay)
        self.addCleanup(node.cleanup)
        yield node.start()
        # admin procedures check their caller against the directory
        yield add_users(node, [("root", "Root", True)], "root-password-1", url=env["MASTER_DATABASE_URL"])

        username = "enc_" + uuid.uuid4().hex[:8]
        admin = yield connect(self, node, sub="root", role="admin")
        user = yield connect(self, node, sub=username, role="user")
        spy = yield connect(self, node, sub="spy", role="device")
        received, relayed = [], []
        yield user.session.subscribe(received.append, "users.changed")
        yield spy.session.subscribe(relayed.append, "users.relay")

        yield admin.session.call("master.users.save", {"username": username, "first_name": SECRET_NAME,
                                                        "email": username + "@example.com"})
        yield eventually(lambda: received and relayed, timeout=60, message="no sealed users.changed arrived")

        state = received[-1]
        self.assertTrue(envelope.is_envelope(state["value"]), state)
        self.assertNotIn(SECRET_NAME, json.dumps(state))
        self.assertNotIn(SECRET_NAME, json.dumps(relayed))
        self.assertNotIn(SECRET_NAME, node.log_text())

        db = Database(client_url)
        self.addCleanup(db.close)
        keys = UserKeys(db, load_kek(Settings({}, {}, node.directory)))
        kid = envelope.parse(state["value"])[0]
        key = yield keys.key(username, kid)
        profile = envelope.open_envelope(key, "users.changed", state["seq"], state["value"])
        self.assertEqual((profile["username"], profile["first_name"]), (username, SECRET_NAME))
        self.assertNotIn("password", profile)
        with self.assertRaises(envelope.EnvelopeError):
            envelope.open_envelope(key, "users.changed", state["seq"] + 1, state["value"])
        other_kid, other_key = yield keys.current("someone_else")
        with self.assertRaises(envelope.EnvelopeError):
            envelope.open_envelope(other_key, "users.changed", state["seq"], state["value"])

        me = yield user.session.call("users.me")
        self.assertNotIn(SECRET_NAME, json.dumps(me))
        self.assertEqual(envelope.open_envelope(key, "users.changed", me["seq"], me["value"])["first_name"],
                         SECRET_NAME)
        nobody = yield connect(self, node, sub="nobody_" + uuid.uuid4().hex[:6], role="user")
        empty = yield nobody.session.call("users.me")
        self.assertTrue(envelope.is_envelope(empty["value"]), "a missing profile is sealed too")
        self.assertTrue(os.path.exists(os.path.join(node.directory, "secrets", "e2e_kek")))
