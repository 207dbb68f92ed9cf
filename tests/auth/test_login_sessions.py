"""
components.auth.loginsessions on real SQLite and PostgreSQL: a user's login
sessions end when the directory changes the password, deactivates, renames
or deletes the user, whoever writes it.
"""

from twisted.internet import defer
from twisted.trial import unittest

from components.auth import credentials
from components.auth.directory import Directory, UserTable, columns_of, ensure_table
from components.auth.loginsessions import MIGRATIONS, LoginSessions, postgresql_statements, sqlite_statements
from components.auth.master_tables import install_table, master_schemas
from components.db.database import Database
from components.db.migrations import Migration, migrate_all
from tests.support.databases import OnPostgreSQL, OnSQLite


class LoginSessionEndingMixin:
    """The behaviour, for a database URL from ``database_url``."""

    @defer.inlineCallbacks
    def setUp(self):
        self.db = Database(self.database_url())
        self.addCleanup(self.db.close)
        yield migrate_all(self.db, master_schemas())
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

    @defer.inlineCallbacks
    def test_endings_follow_a_custom_user_table(self):
        """With AUTH_USER_TABLE=accounts_user the endings sit on that table, and no auth_user is made for it."""
        db = Database(self.database_url())
        self.addCleanup(db.close)
        yield migrate_all(db, master_schemas(UserTable("accounts_user", "hub")))
        self.assertIsNone((yield db.run(lambda cursor: columns_of(cursor, "auth_user"))))
        directory = Directory(db, iterations=1000, table="accounts_user")
        sessions = LoginSessions(db, lifetime=3600)
        yield directory.create_user("ann", "first-password")
        session_id = yield sessions.create("ann")
        self.assertEqual((yield sessions.lookup(session_id)), "ann")
        yield directory.set_password("ann", "second-password")
        self.assertIsNone((yield sessions.lookup(session_id)))

    @defer.inlineCallbacks
    def test_reinstall_on_a_recreated_table_is_idempotent(self):
        """install_table twice, and again after the table was dropped and re-created: the endings work."""
        table = UserTable("auth_user", "hub")
        yield self.db.run(install_table, table)
        yield self.db.run(lambda cursor: cursor.execute("DROP TABLE auth_user"))
        self.assertTrue((yield self.db.run(install_table, table)))
        yield self.directory.create_user("ann", "first-password")
        yield self.assertEnded(self.directory.set_password, "ann", "second-password")


class UpgradeMixin:
    """A database migrated by the earlier hub (static user-table migrations) upgrades in place."""

    @defer.inlineCallbacks
    def test_database_of_the_static_migrations_upgrades(self):
        """The old history (auth_user and its triggers as migrations) stays valid; the start-up install takes over."""
        db = Database(self.database_url())
        self.addCleanup(db.close)
        table = UserTable("auth_user", "hub")
        old_endings = Migration(2, "endings", sqlite=sqlite_statements("auth_user"),
                                postgresql=postgresql_statements("auth_user")[:3])
        create = Migration(1, "auth_user", sqlite=lambda cursor: ensure_table(cursor, table),
                           postgresql=lambda cursor: ensure_table(cursor, table))
        yield migrate_all(db, [("directory", [create]), ("login_sessions", [MIGRATIONS[0], old_endings]),
                               ("credentials", credentials.MIGRATIONS)])
        directory = Directory(db, iterations=1000)
        yield directory.create_user("ann", "first-password")
        applied = yield migrate_all(db, master_schemas(table))
        self.assertEqual(applied, {"directory": [], "login_sessions": [], "credentials": [], "user_table.auth_user": [1]})
        self.assertEqual((yield db.run(install_table, table)), False)
        sessions = LoginSessions(db, lifetime=3600)
        session_id = yield sessions.create("ann")
        yield directory.set_password("ann", "second-password")
        self.assertIsNone((yield sessions.lookup(session_id)))
        self.assertEqual((yield db.run(credentials.version_of, "ann"))[0], 1)


class SQLiteUpgradeTests(OnSQLite, UpgradeMixin, unittest.TestCase):
    """The upgrade on SQLite."""


class PostgreSQLUpgradeTests(OnPostgreSQL, UpgradeMixin, unittest.TestCase):
    """The upgrade on PostgreSQL."""


class SQLiteLoginSessionTests(OnSQLite, LoginSessionEndingMixin, unittest.TestCase):
    """The login-session endings on SQLite."""


class PostgreSQLLoginSessionTests(OnPostgreSQL, LoginSessionEndingMixin, unittest.TestCase):
    """The login-session endings on PostgreSQL."""

    @defer.inlineCallbacks
    def test_truncate_ends_every_login(self):
        """A TRUNCATE of the user table (Django's flush) ends every login session and moves every credential."""
        ann = yield self.logged_in("ann")
        other = yield self.logged_in("bystander")
        yield self.db.execute("TRUNCATE auth_user")
        self.assertEqual([(yield self.sessions.lookup(ann)), (yield self.sessions.lookup(other))], [None, None])
        versions = yield self.db.query("SELECT username, version FROM hub_credential ORDER BY username")
        self.assertEqual([name for name, _ in versions], ["ann", "bystander"])
