"""
components.auth.loginsessions on real SQLite and PostgreSQL: a user's login
sessions end when the directory changes the password, deactivates, renames
or deletes the user, whoever writes it.
"""

from twisted.internet import defer
from twisted.trial import unittest

from components.auth.directory import Directory
from components.auth.loginsessions import LoginSessions
from components.auth.schemas import MASTER_SCHEMAS
from components.db.database import Database
from components.db.migrations import migrate_all
from tests.support.databases import OnPostgreSQL, OnSQLite


class LoginSessionEndingMixin:
    """The behaviour, for a database URL from ``database_url``."""

    @defer.inlineCallbacks
    def setUp(self):
        self.db = Database(self.database_url())
        self.addCleanup(self.db.close)
        yield migrate_all(self.db, MASTER_SCHEMAS)
        self.directory = Directory(self.db, iterations=1000)
        self.sessions = LoginSessions(self.db, lifetime=3600)
        for username in ("ann", "bystander"):
            yield self.directory.create_user(username, "first-password")

    @defer.inlineCallbacks
    def logged_in(self, username):
        """A fresh login session of ``username``; checks that it works."""
        session_id = yield self.sessions.create(username)
        self.assertEqual((yield self.sessions.lookup(session_id)), username)
        return session_id

    @defer.inlineCallbacks
    def assertEnded(self, change, *args):
        """After ``change(*args)`` ann's two sessions are gone and the bystander's is still there."""
        ann = [(yield self.logged_in("ann")), (yield self.logged_in("ann"))]
        other = yield self.logged_in("bystander")
        yield change(*args)
        left = yield defer.gatherResults([self.sessions.lookup(session_id) for session_id in ann])
        self.assertEqual(left, [None, None])
        self.assertEqual((yield self.sessions.lookup(other)), "bystander")

    def test_password_change_ends_every_login(self):
        """A new password (the hub's set_password) ends all of that user's login sessions."""
        return self.assertEnded(self.directory.set_password, "ann", "second-password")

    def test_deactivation_rename_and_deletion_end_logins(self):
        """is_active false, a rename and a delete, as plain SQL another application would run, end the logins."""
        sql = self.db.execute
        false = False
        d = self.assertEnded(sql, "UPDATE auth_user SET is_active = ? WHERE username = ?", (false, "ann"))
        d.addCallback(lambda _: sql("UPDATE auth_user SET is_active = ? WHERE username = ?", (True, "ann")))
        d.addCallback(lambda _: self.assertEnded(sql, "UPDATE auth_user SET username = ? WHERE username = ?",
                                                 ("ann2", "ann")))
        d.addCallback(lambda _: sql("UPDATE auth_user SET username = ? WHERE username = ?", ("ann", "ann2")))
        d.addCallback(lambda _: self.assertEnded(sql, "DELETE FROM auth_user WHERE username = ?", ("ann",)))
        return d

    @defer.inlineCallbacks
    def test_other_changes_keep_logins(self):
        """A new name, a login time or admin rights leave the login sessions alone."""
        session_id = yield self.logged_in("ann")
        yield self.db.execute("UPDATE auth_user SET first_name = ?, is_superuser = ? WHERE username = ?",
                              ("Ann", True, "ann"))
        yield self.directory.record_login("ann")
        self.assertEqual((yield self.sessions.lookup(session_id)), "ann")


class SQLiteLoginSessionTests(OnSQLite, LoginSessionEndingMixin, unittest.TestCase):
    """The login-session endings on SQLite."""


class PostgreSQLLoginSessionTests(OnPostgreSQL, LoginSessionEndingMixin, unittest.TestCase):
    """The login-session endings on PostgreSQL."""
