"""
What the database commands show a person: what they did on stdout, nothing
on stderr when all went well, and no Twisted lines of their own
(``Main loop terminated.``).
"""

import io
import os
import subprocess
import sys

from twisted.logger import Logger, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from components.core.command_log import command_observer

SCRIPT = os.path.join(os.path.dirname(sys.executable), "reactive-hub")


class CommandObserverTests(SynchronousTestCase):
    """components.core.command_log.command_observer."""

    def test_levels_and_twisted_lines(self):
        """Our info lines go to out, warnings (anyone's) to err, Twisted's info lines nowhere."""
        out, err = io.StringIO(), io.StringIO()
        publisher = LogPublisher(command_observer(out, err))
        Logger(namespace="migrate", observer=publisher).info("schema {name}: up to date", name="directory")
        Logger(namespace="migrate", observer=publisher).warn("slow")
        Logger(namespace="twisted.internet.base", observer=publisher).info("Main loop terminated.")
        Logger(namespace="twisted.internet.base", observer=publisher).error("broken")
        self.assertIn("[migrate#info] schema directory: up to date", out.getvalue())
        self.assertEqual(out.getvalue().count("\n"), 1, out.getvalue())
        self.assertIn("[migrate#warn] slow", err.getvalue())
        self.assertIn("[twisted.internet.base#error] broken", err.getvalue())
        self.assertEqual(err.getvalue().count("\n"), 2, err.getvalue())


class DatabaseCommandOutputTests(SynchronousTestCase):
    """migrate, sync migrate and sync resync on a node directory's SQLite databases, as subprocesses."""

    def setUp(self):
        node = os.path.abspath(self.mktemp())
        os.makedirs(node)
        self.env = dict(os.environ, CROSSBAR_DIR=node)

    def run_command(self, *argv):
        result = subprocess.run([SCRIPT] + list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=120, env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Main loop terminated", result.stdout + result.stderr)
        self.assertNotIn("#info]", result.stderr)
        return result

    def test_migrate(self):
        """`migrate` says which schemas it applied, on stdout."""
        result = self.run_command("migrate")
        self.assertIn("schema directory: applied [1]", result.stdout)
        self.assertEqual(result.stderr, "")

    def test_sync_migrate_and_resync(self):
        """`sync migrate` says where it installed the triggers on stdout; `sync resync` prints its one result line."""
        self.run_command("migrate")
        migrated = self.run_command("sync", "migrate")
        self.assertIn("triggers installed on auth_user", migrated.stdout)
        self.assertIn("schema directory: up to date", migrated.stdout)
        resynced = self.run_command("sync", "resync")
        self.assertIn("resync of auth_user: 0 user events", resynced.stdout)
