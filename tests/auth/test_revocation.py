"""
Rights follow the directory (components.auth.credentials, revocation and the
authenticator), through a real router: whoever changes the user table (plain
SQL here, as Django or a console would), the user's open sessions end with
``reactive.error.auth.revoked`` and the tokens issued before are refused at
join; a logout ends only the tokens of its own login session.
"""

import os
import sqlite3
import time

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, task
from twisted.trial import unittest

from components.auth import AUTH_REVOKED, credentials
from components.auth.session_revocation import RevocationWatch
from components.db.database import Cursor, Database
from tests.support.clients import connect, post_json, token
from tests.support.node import shared_node
from tests.support.polling import eventually
from tests.support.users import add_users

PASSWORD = "revocation-password-1"


class _SyncDatabase:
    """``run(interaction, *args)`` on one in-memory SQLite database, at once (for the watch on a test clock)."""

    dialect = "sqlite"

    def __init__(self):
        self.connection = sqlite3.connect(":memory:")
        self.cursor = Cursor(self.connection.cursor(), "sqlite")
        for statement in credentials.MIGRATIONS[0].sqlite:
            self.cursor.execute(statement)

    def run(self, interaction, *args):
        try:
            result = interaction(self.cursor, *args)
            self.connection.commit()
            return defer.succeed(result)
        except Exception:
            return defer.fail()


class RuleTests(unittest.SynchronousTestCase):
    """The revocation rule and the watch's choice of sessions, without a database."""

    def test_token_with_credential_version(self):
        self.assertFalse(credentials.is_revoked({"cv": 3}, 3, 1000, False))
        self.assertTrue(credentials.is_revoked({"cv": 2}, 3, 1000, False))
        self.assertTrue(credentials.is_revoked({"cv": 3}, 3, 1000, True), "a logged-out login session")
        self.assertFalse(credentials.is_revoked({"cv": 0}, 0, 0, False), "a user that never changed")

    def test_token_without_credential_version_goes_by_its_issue_second(self):
        changed_ms = 1_700_000_000_400
        self.assertTrue(credentials.is_revoked({"iat": 1_699_999_999}, 1, changed_ms, False))
        self.assertTrue(credentials.is_revoked({"iat": 1_700_000_000}, 1, changed_ms, False), "same second: revoked")
        self.assertFalse(credentials.is_revoked({"iat": 1_700_000_001}, 1, changed_ms, False))
        self.assertFalse(credentials.is_revoked({"iat": 1}, 0, 0, False), "never changed: valid until exp")

    def test_issuer_clock_ahead_by_the_leeway_still_counts_as_before(self):
        changed_ms = 1_700_000_000_400
        self.assertTrue(credentials.is_revoked({"iat": 1_700_000_004}, 1, changed_ms, False, leeway=5))
        self.assertFalse(credentials.is_revoked({"iat": 1_700_000_006}, 1, changed_ms, False, leeway=5))
        self.assertTrue(credentials.is_revoked({"iat": float("nan")}, 1, changed_ms, False), "no iat to trust")

    def test_watch_picks_the_revoked_sessions_only(self):
        watch = RevocationWatch(db=None, reactor=None, end_session=lambda session_id: None)
        watch.joined(1, "ann", "user", {"cv": 4, "sid": "a"})
        watch.joined(2, "ann", "admin", {"cv": 5, "sid": "b"})
        watch.joined(3, "bob", "user", {"cv": 1, "sid": "c"})
        watch.joined(4, "ann", "device", {})
        self.assertEqual(watch.revoked_sessions([("ann", 5, 10)], []), [1])
        self.assertEqual(watch.revoked_sessions([], [("c", "bob")]), [3])
        watch.end([1])
        self.assertEqual(watch.revoked_sessions([("ann", 6, 10)], []), [2], "a session being ended is not ended twice")
        watch.left(2)
        watch.left(3)
        self.assertEqual((sorted(watch.by_authid), sorted(watch.by_sid)), (["ann"], ["a"]), "indexes follow leaves")

    def test_watch_sees_a_change_committed_after_the_overlap_at_its_recheck(self):
        """A long transaction: its row carries a time older than the overlap when it commits; the recheck finds it."""
        clock = task.Clock()
        db = _SyncDatabase()
        ended = []
        watch = RevocationWatch(db, clock, ended.append, interval=0.5, overlap=5.0, recheck=10.0)
        watch.joined(7, "ann", "user", {"cv": 0})
        watch.start()
        clock.advance(1)
        old = credentials.database_now_ms(db.cursor) - 60_000
        db.cursor.execute("INSERT INTO hub_credential (username, version, changed_ms, noted_ms) VALUES (?, 1, ?, ?)",
                          ("ann", old, old))
        clock.pump([0.5] * 4)
        self.assertEqual(ended, [], "outside the overlap: not seen by the poll")
        clock.pump([0.5] * 20)
        self.assertEqual(ended, [7])
        watch.stop()
        clock.advance(1)

    def test_revoke_everyone(self):
        """A lost trigger: every user's version moves (known or not yet in hub_credential), every login ends."""
        db = _SyncDatabase()
        cursor = db.cursor
        cursor.execute("CREATE TABLE auth_user (username VARCHAR(150))")
        cursor.execute("CREATE TABLE hub_login_session (id_hash VARCHAR(64), username VARCHAR(150))")
        for name in ("ann", "bob"):
            cursor.execute("INSERT INTO auth_user (username) VALUES (?)", (name,))
        cursor.execute("INSERT INTO hub_login_session VALUES ('h', 'ann')")
        credentials.note_credential(cursor, "ann", 4, 1000)
        credentials.note_credential(cursor, "gone", 2, 1000)
        self.assertEqual(credentials.revoke_everyone(cursor, "auth_user"), 3)
        self.assertEqual(cursor.execute("SELECT username, version FROM hub_credential ORDER BY username").fetchall(),
                         [("ann", 5), ("bob", 1), ("gone", 3)])
        self.assertEqual(cursor.execute("SELECT COUNT(*) FROM hub_login_session").fetchone()[0], 0)


class RevocationTests(unittest.TestCase):
    """Every trigger kind on a dev node (master database: SQLite)."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("revocation", env={"JWT_LEEWAY": "1"})
        self.master = Database("sqlite:///" + os.path.join(self.node.directory, "master.db"))
        self.addCleanup(self.master.close)

    @defer.inlineCallbacks
    def login(self, username, admin=False, create=True):
        """Log ``username`` in at /auth/login; fire with the login cookies."""
        if create:
            yield add_users(self.node, [(username, username.title(), admin)], PASSWORD)
        code, body, response = yield post_json(self.node.http + "/auth/login",
                                               {"username": username, "password": PASSWORD})
        self.assertEqual(code, 200, body)
        return {cookie.name: cookie.value for cookie in response.cookies()}

    @defer.inlineCallbacks
    def fresh_token(self, cookies, expect=200):
        code, body, _ = yield post_json(self.node.http + "/auth/token", cookies=cookies)
        self.assertEqual(code, expect, body)
        return body

    @defer.inlineCallbacks
    def join(self, ticket):
        """A session joined with ``ticket`` (no reconnects) and the list its leave details go to."""
        client = yield connect(self, self.node, ticket=ticket, reconnect=False)
        left = []
        client.on_leave(left.append)
        return client, left

    @defer.inlineCallbacks
    def assertEnded(self, left, within=2.0):
        yield eventually(lambda: left, timeout=within, message="the session was not ended")
        self.assertEqual(left[0].reason, AUTH_REVOKED)

    @defer.inlineCallbacks
    def assertRefusedAtJoin(self, ticket):
        with self.assertRaises(ApplicationError) as caught:
            yield connect(self, self.node, ticket=ticket, reconnect=False)
        self.assertEqual(caught.exception.error, AUTH_REVOKED)

    @defer.inlineCallbacks
    def check_change(self, username, sql, params, cookies_survive=False):
        cookies = yield self.login(username)
        issued = yield self.fresh_token(cookies)
        client, left = yield self.join(issued["token"])
        yield client.session.call("counter.get")
        yield self.master.execute(sql, params)
        yield self.assertEnded(left)
        yield self.assertRefusedAtJoin(issued["token"])
        yield self.fresh_token(cookies, expect=200 if cookies_survive else 401)

    def test_deactivation(self):
        """is_active false: sessions end, earlier tokens refused, the login session is gone."""
        return self.check_change("rv_inactive", "UPDATE auth_user SET is_active = ? WHERE username = ?",
                                 (False, "rv_inactive"))

    def test_deletion(self):
        return self.check_change("rv_deleted", "DELETE FROM auth_user WHERE username = ?", ("rv_deleted",))

    def test_rename(self):
        return self.check_change("rv_renamed", "UPDATE auth_user SET username = ? WHERE username = ?",
                                 ("rv_renamed_2", "rv_renamed"))

    def test_password_change(self):
        """A new password hash (any writer): every login session of the user ends and earlier tokens are refused."""
        return self.check_change("rv_password", "UPDATE auth_user SET password = ? WHERE username = ?",
                                 ("pbkdf2_sha256$1000$salt$AAAA", "rv_password"))

    @defer.inlineCallbacks
    def test_unrelated_change_revokes_nothing(self):
        """A profile edit (first_name) leaves sessions and tokens alone."""
        cookies = yield self.login("rv_profile")
        issued = yield self.fresh_token(cookies)
        client, left = yield self.join(issued["token"])
        control = (yield self.fresh_token((yield self.login("rv_profile_control"))))["token"]
        _, control_left = yield self.join(control)
        yield self.master.execute("UPDATE auth_user SET first_name = ?, last_login = NULL WHERE username = ?",
                                  ("Renamed", "rv_profile"))
        yield self.master.execute("UPDATE auth_user SET is_active = ? WHERE username = ?",
                                  (False, "rv_profile_control"))
        # the control's session ended: the watch has looked past both changes
        yield self.assertEnded(control_left)
        yield client.session.call("counter.get")
        self.assertEqual(left, [])
        again = yield connect(self, self.node, ticket=issued["token"], reconnect=False)
        self.assertIsNotNone(again.session)

    @defer.inlineCallbacks
    def test_demoted_admin_rejoins_as_user(self):
        """is_superuser false: the admin session ends; the same login gets a user token and joins, no new login."""
        cookies = yield self.login("rv_boss", admin=True)
        issued = yield self.fresh_token(cookies)
        self.assertEqual(issued["role"], "admin")
        client, left = yield self.join(issued["token"])
        yield client.session.call("master.users.list")
        yield self.master.execute("UPDATE auth_user SET is_superuser = ? WHERE username = ?", (False, "rv_boss"))
        yield self.assertEnded(left)
        yield self.assertRefusedAtJoin(issued["token"])
        again = yield self.fresh_token(cookies)
        self.assertEqual(again["role"], "user")
        rejoined, _ = yield self.join(again["token"])
        with self.assertRaises(ApplicationError) as caught:
            yield rejoined.session.call("master.users.list")
        self.assertEqual(caught.exception.error, "wamp.error.not_authorized")

    @defer.inlineCallbacks
    def test_logout_ends_its_own_login_session_only(self):
        """Logout of one browser: its tokens are refused and its sessions end; another login of the user stays."""
        first = yield self.login("rv_two_browsers")
        second = yield self.login("rv_two_browsers", create=False)
        token_one = (yield self.fresh_token(first))["token"]
        token_two = (yield self.fresh_token(second))["token"]
        one, left_one = yield self.join(token_one)
        two, left_two = yield self.join(token_two)
        code, body, _ = yield post_json(self.node.http + "/auth/logout", cookies=first)
        self.assertEqual(code, 200, body)
        yield self.assertEnded(left_one)
        yield self.assertRefusedAtJoin(token_one)
        yield self.fresh_token(first, expect=401)
        # the look that ended the first browser's session saw the logout: the second one would have ended with it
        yield two.session.call("counter.get")
        self.assertEqual(left_two, [], "the other browser's session ended too")
        yield self.fresh_token(second)

    @defer.inlineCallbacks
    def test_foreign_token_without_version_goes_by_issue_time(self):
        """A token another application minted (no cv) works until the user's credential version moves."""
        yield add_users(self.node, [("rv_foreign", "Foreign", False)], PASSWORD)
        before = token("rv_foreign")
        client, left = yield self.join(before)
        yield self.master.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (False, "rv_foreign"))
        yield self.master.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (True, "rv_foreign"))
        changed_second = int(time.time())
        yield self.assertEnded(left)
        yield self.assertRefusedAtJoin(before)
        # iat has a resolution of one second: a token counts as after the change once it is issued past the
        # change's second and the leeway (1 s here)
        yield eventually(lambda: int(time.time()) > changed_second + 1, timeout=3)
        after, _ = yield self.join(token("rv_foreign"))
        yield after.session.call("counter.get")

    @defer.inlineCallbacks
    def test_device_tokens_are_not_users(self):
        """A device named like a deactivated user is not revoked by the directory."""
        yield add_users(self.node, [("rv_sensor", "Sensor", False)], PASSWORD)
        yield self.master.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (False, "rv_sensor"))
        client, left = yield self.join(token("rv_sensor", role="device"))
        self.assertIsNotNone(client.session)
