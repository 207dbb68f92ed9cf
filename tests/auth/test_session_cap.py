"""
The per-authid session cap (components.auth.sessioncap) with a stand-in clock:
held places, announced joins and leaves, roles that are not counted.
"""

from twisted.internet.task import Clock
from twisted.trial import unittest

from components.auth import AUTH_TOO_MANY_SESSIONS
from components.auth.sessioncap import SessionCap
from components.auth.tokens import TokenError


class SessionCapTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.cap = SessionCap(3, self.clock.seconds, hold=30.0)

    def assertRefused(self, authid, role="user"):
        with self.assertRaises(TokenError) as caught:
            self.cap.admit(authid, role)
        self.assertEqual(caught.exception.uri, AUTH_TOO_MANY_SESSIONS)
        self.assertIn(authid, caught.exception.reason)

    def join(self, session_id, authid, role="user"):
        self.cap.admit(authid, role)
        self.cap.joined(session_id, authid, role)

    def test_fourth_open_session_is_refused(self):
        """Three announced sessions of one authid: the fourth admission is refused, others are not."""
        for session_id in (1, 2, 3):
            self.join(session_id, "alice")
        self.assertRefused("alice")
        self.cap.admit("bob", "user")
        self.assertEqual(self.cap.refused, 1)

    def test_burst_before_any_join_is_announced(self):
        """Admissions whose joins are not announced yet hold their places: a burst cannot pass the cap."""
        for _ in range(3):
            self.cap.admit("alice", "admin")
        self.assertRefused("alice", "admin")
        self.cap.joined(1, "alice", "admin")  # the announcement takes the held place, not a new one
        self.assertEqual(self.cap.sessions_of("alice"), 3)
        self.assertRefused("alice", "admin")

    def test_leave_frees_a_place(self):
        for session_id in (1, 2, 3):
            self.join(session_id, "alice")
        self.cap.left(2)
        self.cap.admit("alice", "user")
        self.assertEqual(self.cap.sessions_of("alice"), 3)

    def test_last_leave_forgets_the_authid(self):
        self.join(1, "alice")
        self.cap.left(1)
        self.cap.left(1)  # repeated leave is harmless
        self.assertEqual((self.cap.live, self.cap.owner, self.cap.held), ({}, {}, {}))

    def test_release_gives_back_a_held_place(self):
        """An admission refused later (revoked token) does not keep its place."""
        for _ in range(3):
            self.cap.admit("alice", "user")
        self.cap.release("alice", "user")
        self.cap.admit("alice", "user")
        self.assertRefused("alice")

    def test_held_place_lapses(self):
        """A join that is never announced gives its place back after ``hold`` seconds."""
        for _ in range(3):
            self.cap.admit("alice", "user")
        self.clock.advance(29)
        self.assertRefused("alice")
        self.clock.advance(1)
        self.cap.admit("alice", "user")
        self.assertEqual(self.cap.sessions_of("alice"), 1)

    def test_devices_are_counted(self):
        for session_id in (1, 2, 3):
            self.join(session_id, "sensor-1", "device")
        self.assertRefused("sensor-1", "device")

    def test_backend_sessions_are_not_counted(self):
        """Backend components share authids across instances: never counted nor refused."""
        for session_id in range(10):
            self.join(session_id, "backend", "backend")
        self.assertEqual(self.cap.sessions_of("backend"), 0)
        self.assertEqual(self.cap.owner, {})

    def test_announced_join_counted_once(self):
        self.join(1, "alice")
        self.cap.joined(1, "alice", "user")
        self.assertEqual(self.cap.sessions_of("alice"), 1)

    def test_zero_switches_off(self):
        cap = SessionCap(0, self.clock.seconds)
        for session_id in range(50):
            cap.admit("alice", "user")
            cap.joined(session_id, "alice", "user")
        self.assertEqual(cap.live, {})
