"""
The installed console script and the old ``python -m`` forms, run as a
person runs them (subprocesses): help, and failures that are one line and
a documented code, never a traceback. No node is started.
"""

import os
import pty
import select
import signal
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.support.polling import blocking_eventually
from tests.support.ports import free_port as closed_port  # reserved for this process, never listened on

SCRIPT = os.path.join(os.path.dirname(sys.executable), "reactive-hub")


def run(argv, **options):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, **options)


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

    def test_provision_without_aws(self):
        """`sync provision` against an emulator URL nothing listens on: one line naming it, exit 1, no traceback."""
        endpoint = "http://127.0.0.1:{}".format(closed_port())
        result = run([SCRIPT, "sync", "provision", "--clients", "dev"], env=dict(os.environ, AWS_ENDPOINT_URL=endpoint))
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stderr.count("\n"), 1, result.stderr)
        self.assertIn("error: cannot provision on " + endpoint, result.stderr)


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

class Refused(Exception):
    pass

def work(reactor):
    if sys.argv[1] == "interrupt":
        reactor.callLater(0.2, os.kill, os.getpid(), signal.SIGINT)
        return defer.Deferred()  # never done
    if sys.argv[1] == "refused":
        return defer.fail(Refused("database unavailable (connection refused)"))
    return defer.succeed(None)
exits.react(work, refusals={Refused: 1})
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

    def test_refused(self):
        """Work failing with a listed exception: its message as one line and its code, no traceback."""
        result = run([sys.executable, "-c", REACT, "refused"])
        self.assertEqual((result.returncode, result.stderr), (1, "error: database unavailable (connection refused)\n"))

    def test_missing_database_directory(self):
        """`migrate` on a node directory that does not exist: one line naming it, exit 78 (was a traceback)."""
        missing = os.path.abspath(self.mktemp())
        result = run([SCRIPT, "migrate"], env=dict(os.environ, CROSSBAR_DIR=missing))
        self.assertEqual(result.returncode, 78, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertIn("error: ", result.stderr)
        self.assertIn(missing, result.stderr)


class Terminal:
    """A command run on a real pseudo-terminal, answered prompt by prompt."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the command, the pty its terminal
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a person's shell (a background job ignores it)
            os.execve(argv[0], argv, env)
        self.seen = b""

    def read_until(self, text, timeout=60):
        """Read what the command writes until ``text`` appears after what was read before (or it ends)."""
        start, deadline = len(self.seen), time.monotonic() + timeout
        while text not in self.seen[start:] and time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.5)[0]:
                try:
                    chunk = os.read(self.fd, 1024)
                except OSError:  # the command ended
                    return
                if not chunk:
                    return
                self.seen += chunk

    def answer(self, prompt, text):
        self.read_until(prompt)
        os.write(self.fd, text)

    def finish(self, timeout=60):
        """The exit code and everything the terminal showed; a command still waiting after ``timeout`` is killed (-9)."""
        self.read_until(b"\0never\0", timeout)

        def exited():
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            return (status,) if pid else None
        try:
            (status,) = blocking_eventually(exited, timeout=timeout, message="the command still runs")
        except AssertionError:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status), self.seen.decode()


class TerminalPromptTests(SynchronousTestCase):
    """`user add` on a real terminal (getpass), against the node directory's SQLite master database."""

    def setUp(self):
        node = os.path.abspath(self.mktemp())
        os.makedirs(node)
        self.env = dict(os.environ, CROSSBAR_DIR=node)

    def test_short_password_asked_again(self):
        """A short password is refused with a reason and asked again; the next one creates the user."""
        terminal = Terminal([SCRIPT, "user", "add", "zed"], self.env)
        terminal.answer(b"Password: ", b"short\n")
        terminal.answer(b"Password: ", b"long-password\n")  # the next prompt: getpass drops what was typed before it
        terminal.answer(b"(again): ", b"long-password\n")
        code, shown = terminal.finish()
        self.assertEqual(code, 0, shown)
        self.assertIn("password must have at least 8 characters; try again", shown)
        self.assertIn("ok: add zed", shown)

    def test_ctrl_c(self):
        """Ctrl-C at the prompt: one line 'interrupted', exit 130, no traceback."""
        terminal = Terminal([SCRIPT, "user", "add", "zed"], self.env)
        terminal.answer(b"Password: ", b"\x03")
        code, shown = terminal.finish()
        self.assertEqual(code, 130, shown)
        self.assertIn("interrupted", shown)
        self.assertNotIn("Traceback", shown)
