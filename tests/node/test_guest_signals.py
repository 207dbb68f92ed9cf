"""
The dev node's guest programs (``.crossbar/config.json``: ``aws-emulator``
runs ``sync emulator``, ``demo`` the demo runner) end with exit code 0 when
the node stops. Crossbar logs "Guest ... exited with error" for any other end;
a Ctrl-C of the node sends SIGINT to the whole process group and the
controller's SIGTERM follows at once, so the tests send both, 10 ms apart
(before the fix both programs died by the SIGTERM: "process ended by signal 15").
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.support.node import free_port
from tests.support.polling import eventually
from tests.support.processes import run_until_said


def listening(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def ctrl_c_of_the_node(process):
    """SIGINT (the terminal's Ctrl-C reaches the group), then the controller's SIGTERM 10 ms later; the exit code."""
    process.send_signal(signal.SIGINT)
    time.sleep(0.01)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


class GuestStopTests(unittest.TestCase):
    """Each guest program, started as the node starts it, then stopped as a Ctrl-C of the node stops it."""

    timeout = 120

    def directory(self):
        directory = tempfile.mkdtemp(prefix="hub-guest-")
        self.addCleanup(shutil.rmtree, directory, True)
        return directory

    @defer.inlineCallbacks
    def test_emulator_exits_0(self):
        """The SNS/SQS emulator, serving on its port, ends with 0."""
        port = free_port()
        process = subprocess.Popen([sys.executable, "-m", "components.usersync", "emulator", "--port", str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: process.poll() is None and (process.kill(), process.wait()))
        yield eventually(lambda: listening(port) or process.poll() is not None, timeout=60,
                         message="the emulator does not listen")
        self.assertIsNone(process.poll())
        code = yield threads.deferToThread(ctrl_c_of_the_node, process)
        self.assertEqual(code, 0)

    @defer.inlineCallbacks
    def test_idle_emulator_exits_0(self):
        """An emulator idling because its port is taken (another emulator there) ends with 0 on SIGTERM."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            process, said = yield run_until_said(
                self, self.directory(), ["components.usersync", "emulator", "--port", str(taken.getsockname()[1])],
                "is already in use")
            self.assertTrue(said)
            process.send_signal(signal.SIGTERM)
            code = yield threads.deferToThread(process.wait, 60)
        self.assertEqual(code, 0)

    @defer.inlineCallbacks
    def test_demo_exits_0(self):
        """The demo runner, with its Arduino, OData service and device running, ends with 0 and removes its link."""
        node = self.directory()
        env = dict(os.environ, DEMO_ODATA_PORT=str(free_port()), PORT=str(free_port()))
        process, said = yield run_until_said(self, node, ["components.iot.demo", "run", "--cbdir", node],
                                             "demo: device demo-device posting", env=env, timeout=60)
        self.assertTrue(said, open(os.path.join(node, "process.log")).read())
        code = yield threads.deferToThread(ctrl_c_of_the_node, process)
        self.assertEqual(code, 0, open(os.path.join(node, "process.log")).read())
        self.assertFalse(os.path.lexists(os.path.join(node, "run", "arduino")))

    @defer.inlineCallbacks
    def test_demo_off_exits_0(self):
        """The demo idling with DEMO=off ends with 0 on SIGTERM."""
        node = self.directory()
        process, said = yield run_until_said(self, node, ["components.iot.demo", "run", "--cbdir", node],
                                             "off (DEMO=off)", env=dict(os.environ, DEMO="off"))
        self.assertTrue(said)
        process.send_signal(signal.SIGTERM)
        code = yield threads.deferToThread(process.wait, 60)
        self.assertEqual(code, 0)
