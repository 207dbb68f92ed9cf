"""
The installed console script and the old ``python -m`` forms, run as a
person runs them (subprocesses): help, and failures that are one line and
a documented code, never a traceback. No node is started.
"""

import os
import socket
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

SCRIPT = os.path.join(os.path.dirname(sys.executable), "reactive-hub")


def run(argv, **options):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, **options)


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ConsoleScriptTests(SynchronousTestCase):
    """The console script installed in the virtualenv."""

    def test_installed(self):
        """`make install` puts reactive-hub beside the venv's Python; --help lists the commands and exits 0."""
        self.assertTrue(os.access(SCRIPT, os.X_OK), "{} missing: run make install".format(SCRIPT))
        result = run([SCRIPT, "--help"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("start", result.stdout)
        self.assertIn("device", result.stdout)

    def test_start_outside_a_node_directory(self):
        """`start` where there is no node config: one line saying what to do, exit 78, no node started."""
        empty = os.path.abspath(self.mktemp())
        os.makedirs(empty)
        result = run([SCRIPT, "start", "--cbdir", empty])
        self.assertEqual(result.returncode, 78, result.stderr)
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("--cbdir", result.stderr)

    def test_simulator_without_a_hub(self):
        """`device simulate` against a closed port: one line naming the URL, exit 1."""
        url = "http://127.0.0.1:{}/publish".format(closed_port())
        result = run([SCRIPT, "device", "simulate", "--key", "k", "--secret", "s", "--value", "1", "--url", url])
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stderr, "error: cannot post to {}: [Errno 111] Connection refused\n".format(url))


class OldFormTests(SynchronousTestCase):
    """The python -m forms stay, with the same endings."""

    def test_password_prompt_without_terminal(self):
        """`python -m components.auth adduser` with no terminal: one line, exit 1, no EOFError traceback."""
        result = run([sys.executable, "-m", "components.auth", "adduser", "bob"])
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("--password-stdin", result.stderr)

    def test_usage_error(self):
        """A wrong command line is exit code 2 in both forms."""
        self.assertEqual(run([sys.executable, "-m", "components.iot", "device", "bogus"]).returncode, 2)
        self.assertEqual(run([SCRIPT, "device", "bogus"]).returncode, 2)


REACT = """
import os, signal, sys
from twisted.internet import defer
from components.core import exits

def work(reactor):
    if sys.argv[1] == "interrupt":
        reactor.callLater(0.2, os.kill, os.getpid(), signal.SIGINT)
        return defer.Deferred()  # never done
    return defer.succeed(None)
exits.react(work)
"""


class ReactTests(SynchronousTestCase):
    """components.core.exits.react, which the database commands run on: Ctrl-C is not a success."""

    def test_interrupted(self):
        """SIGINT before the work is done: 'interrupted' and 130 (task.react alone exits 0)."""
        result = run([sys.executable, "-c", REACT, "interrupt"])
        self.assertEqual((result.returncode, result.stderr), (130, "interrupted\n"))

    def test_done(self):
        """Work that finishes exits 0 with nothing on stderr."""
        result = run([sys.executable, "-c", REACT, "done"])
        self.assertEqual((result.returncode, result.stderr), (0, ""))
