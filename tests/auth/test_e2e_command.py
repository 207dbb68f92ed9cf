"""
``reactive-hub e2e rotate --user NAME`` creates a key only for a user of the
directory (the master's user table): a typo is refused in one line, exit 1.
"""

import os
import sqlite3
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

SCRIPT = os.path.join(os.path.dirname(sys.executable), "reactive-hub")


class RotateUnknownUserTests(SynchronousTestCase):
    """e2e rotate on a node directory's SQLite databases (subprocesses, as a person runs them)."""

    def setUp(self):
        self.node = os.path.abspath(self.mktemp())
        os.makedirs(self.node)
        self.env = dict(os.environ, CROSSBAR_DIR=self.node)
        for name in ("DATABASE_URL", "MASTER_DATABASE_URL", "E2E_KEK", "E2E_KEK_FILE", "AUTH_USER_TABLE"):
            self.env.pop(name, None)

    def run_command(self, *argv, stdin=None):
        return subprocess.run([SCRIPT] + list(argv), input=stdin, capture_output=True, text=True, timeout=120,
                              env=self.env)

    def keys_of(self, username):
        with sqlite3.connect(os.path.join(self.node, "client.db")) as connection:
            return connection.execute("SELECT COUNT(*) FROM e2e_user_key WHERE username = ?",
                                      (username,)).fetchone()[0]

    def test_unknown_user_refused(self):
        """A name not in the user table: one line naming it and the table, exit 1, no key created."""
        self.assertEqual(self.run_command("migrate").returncode, 0)
        result = self.run_command("e2e", "rotate", "--user", "nobody")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("error: no user 'nobody' in the user table auth_user", result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.keys_of("nobody"), 0)

    def test_unknown_user_without_a_user_table(self):
        """Before any migrate (no user table yet), the name is refused the same way, not a traceback."""
        result = self.run_command("e2e", "rotate", "--user", "nobody")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("no user 'nobody'", result.stderr)

    def test_known_user_rotated(self):
        """A user of the directory gets a new key."""
        added = self.run_command("user", "add", "alice", "--password-stdin", stdin="alice-password-1\n")
        self.assertEqual(added.returncode, 0, added.stderr)
        result = self.run_command("e2e", "rotate", "--user", "alice")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("new key", result.stdout)
        self.assertEqual(self.keys_of("alice"), 1)
