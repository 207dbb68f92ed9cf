"""
What a fresh node writes when its output is not a terminal: with
crossbar_site on PYTHONPATH (as every launcher sets it) the worker lines are
plain log lines, as without it (no raw JSON records of Crossbar's worker log
protocol, no ANSI codes), and a healthy start writes nothing to stderr, where
Crossbar puts its warn and error lines. And the controller keeps the worker
records that arrive in one read with the log handshake
(components.node.patches.handshake).
"""

import atexit
import os
import re
import subprocess
import time

import treq
from crossbar._logging import cb_logging_aware, record_separator
from crossbar.node.worker import WorkerProcess
from twisted.internet import defer, task
from twisted.trial import unittest

from components.node.patches import PatchUnavailable, fast_send, handshake, registry
from tests.support.node import CROSSBAR, CROSSBAR_SITE, READY_MARKER, NodeFailed, RouterNode

WORKER_LINE = re.compile(r"^\S+ \[(?:Router|Container|Proxy)\s+\d+\] (?P<text>.*)$")
# lines of the router worker itself (crossbar.worker.main and its controller session), in every start
WORKER_MESSAGES = ("Entering event reactor ...", 'Router worker session for "router" ready')
ANSI = ("\x1b", "\\u001b")


class Start:
    """
    A fresh node (a RouterNode's directory and environment, with or without
    crossbar_site) started at log level info with Crossbar's own colour choice
    (no ``--color``), its stdout and stderr in two files.
    """

    def __init__(self, name, site):
        self.node = RouterNode(name=name)
        if not site:
            path = [entry for entry in self.node.env["PYTHONPATH"].split(os.pathsep)
                    if entry and entry != CROSSBAR_SITE]
            if path:
                self.node.env["PYTHONPATH"] = os.pathsep.join(path)
            else:
                del self.node.env["PYTHONPATH"]
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
        from twisted.internet import reactor
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.node.process = subprocess.Popen(
                [CROSSBAR, "start", "--cbdir", self.node.directory, "--loglevel", "info"],
                stdout=out, stderr=err, env=self.node.env, cwd=self.node.directory, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if READY_MARKER in self.stdout():
                try:
                    response = yield treq.get(self.node.http + "/health/ready", persistent=False, timeout=5)
                    yield response.content()
                    if response.code == 200:
                        return self
                except Exception:
                    pass
            if self.node.process.poll() is not None:
                raise NodeFailed("node exited with {}:\n{}\n{}".format(
                    self.node.process.returncode, self.stdout()[-3000:], self.stderr()[-3000:]))
            if time.monotonic() > deadline:
                raise NodeFailed("node not ready after {}s:\n{}".format(timeout, self.stdout()[-3000:]))
            yield task.deferLater(reactor, 0.1, lambda: None)


_starts = {}


@defer.inlineCallbacks
def started():
    """``{"site": Start, "plain": Start}``: both fresh nodes, started together once per test process."""
    if not _starts:
        starts = {"site": Start("logs-site", site=True), "plain": Start("logs-plain", site=False)}
        _starts.update(starts)
        yield defer.gatherResults([start.start() for start in starts.values()], consumeErrors=True)
    return _starts


@atexit.register
def _clean_up():
    for start in _starts.values():
        start.node.cleanup()


class NodeLogTests(unittest.TestCase):
    timeout = 150

    @defer.inlineCallbacks
    def test_worker_lines_are_plain_with_and_without_crossbar_site(self):
        """Router worker lines render as plain text, never as raw JSON records, with or without crossbar_site."""
        starts = yield started()
        for name, start in starts.items():
            texts = start.worker_texts()
            records = [text for text in texts if text.startswith("{") or '"log_time"' in text]
            self.assertEqual(records[:3], [], name)
            for message in WORKER_MESSAGES:
                self.assertIn(message, texts, name)

    @defer.inlineCallbacks
    def test_patch_note_is_a_plain_worker_line(self):
        """With crossbar_site the fast-send note is one plain router line; without it there is none."""
        starts = yield started()
        note = registry.installed_note(fast_send)
        self.assertEqual(sum(text.startswith(note) for text in starts["site"].worker_texts()), 1)
        self.assertNotIn(registry.installed_note(fast_send), starts["plain"].stdout())

    @defer.inlineCallbacks
    def test_no_ansi_codes_when_not_a_terminal(self):
        """Output to a file carries no ANSI escape (neither raw nor JSON-escaped), with or without crossbar_site."""
        starts = yield started()
        for name, start in starts.items():
            for output in (start.stdout(), start.stderr()):
                for code in ANSI:
                    self.assertNotIn(code, output, name)

    @defer.inlineCallbacks
    def test_healthy_start_writes_no_warn_or_error_line(self):
        """A healthy start (router ready, /health/ready 200) writes nothing to stderr, with or without crossbar_site."""
        starts = yield started()
        for name, start in starts.items():
            self.assertEqual(start.stderr(), "", name)


class _Logger:
    def __init__(self):
        self.texts = []

    def emit(self, level, text, **_):
        self.texts.append(text)

    info = warn = lambda self, text, **_: self.texts.append(text)


def _worker():
    """A Crossbar WorkerProcess before its first output, logging into a list."""
    worker = WorkerProcess(None, "router")
    worker.pid = 4242
    worker._log_topic = None
    worker._logger = _Logger()
    return worker


def _record(text):
    return '{{"level": "info", "namespace": "test", "text": "{}"}}'.format(text) + record_separator


class HandshakeTests(unittest.SynchronousTestCase):
    """components.node.patches.handshake.split_handshake around Crossbar's own WorkerProcess.log."""

    def test_records_in_the_handshake_chunk_are_kept(self):
        """A record read in one chunk with the handshake phrase is logged (Crossbar alone drops it)."""
        chunk = (cb_logging_aware + "\n" + _record("note one") + _record("note two")).encode("utf8")
        stock = _worker()
        WorkerProcess.log(stock, 2, chunk)
        self.assertEqual(stock._logger.texts, [])
        patched = _worker()
        handshake.split_handshake(WorkerProcess.log, cb_logging_aware)(patched, 2, chunk)
        self.assertEqual(patched._logger.texts, ["note one", "note two"])
        self.assertTrue(patched._log_rich)

    def test_separate_chunks_and_plain_workers_as_before(self):
        """The phrase alone, later chunks, and a worker without the handshake behave as without the patch."""
        split_log = handshake.split_handshake(WorkerProcess.log, cb_logging_aware)
        rich = _worker()
        split_log(rich, 2, (cb_logging_aware + "\n").encode("utf8"))
        split_log(rich, 2, _record("later").encode("utf8"))
        self.assertEqual(rich._logger.texts, ["later"])
        plain = _worker()
        split_log(plain, 1, b"moto server listening\n")
        self.assertEqual((plain._logger.texts, plain._log_rich), (["moto server listening"], False))

    def test_install_patches_once(self):
        """install() replaces the class's log once; a class without one is left alone."""
        class Process:
            def log(self, childFD, data):
                pass
        self.assertTrue(handshake.install(Process, cb_logging_aware))
        self.assertFalse(handshake.install(Process, cb_logging_aware))
        self.assertTrue(getattr(Process.log, handshake.PATCHED))
        self.assertRaises(PatchUnavailable, handshake.install, type("Other", (), {}), cb_logging_aware)
