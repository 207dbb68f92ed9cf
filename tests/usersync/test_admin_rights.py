"""
The admin procedures (master.users.*) of components.usersync.master check
their caller against the directory at every call, through a real router: the
role in an admin token is not enough once the directory says otherwise.
"""

import os

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest

from components.db.database import Database
from tests.support.clients import connect
from tests.support.node import shared_node
from tests.support.users import add_users

PASSWORD = "admin-password-1"


class AdminRightsTests(unittest.TestCase):
    """A demoted, deactivated or deleted admin, or an admin token for a stranger, is refused at its next call."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        # revocation off: this is the directory check at call time alone (the session would be ended too)
        self.node = yield shared_node("admin-rights", env={"REVOCATION_DATABASE": "off"})
        self.master = Database("sqlite:///" + os.path.join(self.node.directory, "master.db"))
        self.addCleanup(self.master.close)

    @defer.inlineCallbacks
    def admin(self, username):
        """An admin session of ``username``, a superuser in the directory now."""
        yield add_users(self.node, [(username, "Boss", True)], PASSWORD)
        client = yield connect(self, self.node, sub=username, role="admin")
        return client.session

    @defer.inlineCallbacks
    def assertRefused(self, session, procedure, *args):
        with self.assertRaises(ApplicationError) as caught:
            yield session.call(procedure, *args)
        self.assertEqual(caught.exception.error, "reactive.error.not_authorized")

    @defer.inlineCallbacks
    def test_demoted_admin_cannot_promote_itself_back(self):
        """After is_superuser goes false (any writer: plain SQL here), the same session's save is refused."""
        session = yield self.admin("boss_demoted")
        listed = yield session.call("master.users.list")
        self.assertIn("boss_demoted", [user["username"] for user in listed])
        yield self.master.execute("UPDATE auth_user SET is_superuser = ? WHERE username = ?", (False, "boss_demoted"))
        yield self.assertRefused(session, "master.users.save", {"username": "boss_demoted", "is_superuser": True})
        rows = yield self.master.query("SELECT is_superuser FROM auth_user WHERE username = ?", ("boss_demoted",))
        self.assertFalse(rows[0][0], "the refused call changed the directory")

    @defer.inlineCallbacks
    def test_deactivated_and_deleted_admins_are_refused(self):
        """is_active false, then a deleted row: list and delete are refused, nothing is deleted."""
        session = yield self.admin("boss_gone")
        yield add_users(self.node, [("victim_1", "Victim", False)], PASSWORD)
        yield self.master.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (False, "boss_gone"))
        yield self.assertRefused(session, "master.users.list")
        yield self.master.execute("DELETE FROM auth_user WHERE username = ?", ("boss_gone",))
        yield self.assertRefused(session, "master.users.delete", "victim_1")
        rows = yield self.master.query("SELECT 1 FROM auth_user WHERE username = ?", ("victim_1",))
        self.assertEqual(len(rows), 1)

    @defer.inlineCallbacks
    def test_admin_token_for_a_stranger_is_refused(self):
        """A valid admin token whose subject is not a superuser in the directory gets not_authorized."""
        client = yield connect(self, self.node, sub="not_in_directory", role="admin")
        yield self.assertRefused(client.session, "master.users.save", {"username": "created_by_stranger"})
        rows = yield self.master.query("SELECT 1 FROM auth_user WHERE username = ?", ("created_by_stranger",))
        self.assertEqual(rows, [])
