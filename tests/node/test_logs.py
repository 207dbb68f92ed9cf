"""
What a fresh node writes when its output is not a terminal: with the boot
component that installs the patches (components.node.boot) the worker lines
are plain log lines, as without it (no raw JSON records of Crossbar's worker
log protocol, no ANSI codes), and a healthy start writes nothing to stderr,
where Crossbar puts its warn and error lines (without the boot component,
only the safety net's one warning that the config lacks it).
"""

import os
import re
import subprocess

from twisted.internet import defer
from twisted.trial import unittest

from components.node import boot
from components.node.patches import fast_send, registry
from tests.support.clients import status_of
from tests.support.node import CROSSBAR, READY_MARKER, NodeFailed, RouterNode, node_alive, router_worker, shared
from tests.support.polling import eventually

WORKER_LINE = re.compile(r"^\S+ \[(?:Router|Container|Proxy)\s+\d+\] (?P<text>.*)$")
# lines of the router worker itself (crossbar.worker.main and its controller session), in every start
WORKER_MESSAGES = ("Entering event reactor ...", 'Router worker session for "router" ready')
ANSI = ("\x1b", "\\u001b")


class Start:
    """
    A fresh node (a RouterNode's directory and environment, with or without
    the boot component) started at log level info with Crossbar's own colour
    choice (no ``--color``), its stdout and stderr in two files.
    """

    def __init__(self, name, booted):
        self.node = RouterNode(name=name, transform=None if booted else _without_boot)
        self.stdout_path = os.path.join(self.node.directory, "stdout.log")
        self.stderr_path = os.path.join(self.node.directory, "stderr.log")

    def _read(self, path):
        try:
            with open(path, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def stdout(self):
        return self._read(self.stdout_path)

    def stderr(self):
        return self._read(self.stderr_path)

    def worker_texts(self):
        """The text of every worker line on stdout (after the time stamp and ``[Router  pid]``)."""
        return [match.group("text") for match in map(WORKER_LINE.match, self.stdout().splitlines()) if match]

    @defer.inlineCallbacks
    def start(self, timeout=90.0):
        """Fire once the router is configured and ``/health/ready`` answers 200."""
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.node.process = subprocess.Popen(
                [CROSSBAR, "start", "--cbdir", self.node.directory, "--loglevel", "info"],
                stdout=out, stderr=err, env=self.node.env, cwd=self.node.directory, start_new_session=True)

        @defer.inlineCallbacks
        def ready():
            if READY_MARKER in self.stdout():
                if (yield status_of(self.node.http + "/health/ready", timeout=5)) == 200:
                    return True
            if self.node.process.poll() is not None:
                raise NodeFailed("node exited with {}:\n{}\n{}".format(
                    self.node.process.returncode, self.stdout()[-3000:], self.stderr()[-3000:]))
            return False
        try:
            yield eventually(ready, timeout=timeout, interval=0.1)
        except AssertionError:
            raise NodeFailed("node not ready after {}s:\n{}".format(timeout, self.stdout()[-3000:]))
        return self


def _without_boot(config):
    router = router_worker(config)
    router["components"] = [item for item in router["components"] if item.get("id") != boot.BOOT_ID]
    return config


def started():
    """``{"booted": Start, "plain": Start}``: both fresh nodes, started together, shared (tests.support.node.shared)."""
    return shared("logs", build=lambda: {"booted": Start("logs-booted", booted=True),
                                         "plain": Start("logs-plain", booted=False)},
                  start=lambda starts: defer.gatherResults([start.start() for start in starts.values()],
                                                           consumeErrors=True),
                  alive=lambda starts: all(node_alive(start.node) for start in starts.values()),
                  dispose=lambda starts: [start.node.cleanup() for start in starts.values()])


class NodeLogTests(unittest.TestCase):
    timeout = 150

    @defer.inlineCallbacks
    def test_worker_lines_are_plain_with_and_without_boot(self):
        """Router worker lines render as plain text, never as raw JSON records, with or without the boot component."""
        starts = yield started()
        for name, start in starts.items():
            texts = start.worker_texts()
            records = [text for text in texts if text.startswith("{") or '"log_time"' in text]
            self.assertEqual(records[:3], [], name)
            for message in WORKER_MESSAGES:
                self.assertIn(message, texts, name)

    @defer.inlineCallbacks
    def test_patch_note_is_a_plain_worker_line(self):
        """The fast-send note is one plain router line, from the boot component or, without it, from the safety net."""
        starts = yield started()
        note = registry.installed_note(fast_send)
        for name, start in starts.items():
            self.assertEqual(sum(text.startswith(note) for text in start.worker_texts()), 1, name)

    @defer.inlineCallbacks
    def test_no_ansi_codes_when_not_a_terminal(self):
        """Output to a file carries no ANSI escape (neither raw nor JSON-escaped), with or without the boot component."""
        starts = yield started()
        for name, start in starts.items():
            for output in (start.stdout(), start.stderr()):
                for code in ANSI:
                    self.assertNotIn(code, output, name)

    @defer.inlineCallbacks
    def test_healthy_start_writes_no_warn_or_error_line(self):
        """A healthy start (router ready, /health/ready 200) writes nothing to stderr with the boot component; without
        it, only the safety net's one warning that the config has no boot entry."""
        starts = yield started()
        self.assertEqual(starts["booted"].stderr(), "")
        lines = [line for line in starts["plain"].stderr().splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("this worker's config has no boot entry", lines[0])
