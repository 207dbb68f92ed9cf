"""tests.support.ports: test server ports below the ephemeral range, reserved across test processes."""

import os
import socket
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from tests.support import ports


class FreePortTests(SynchronousTestCase):

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="hub-ports-")
        self.patch(ports, "RESERVATIONS", self.directory)
        self.patch(ports, "_mine", set())

    def reservation(self, port, owner):
        with open(os.path.join(self.directory, str(port)), "w") as handle:
            handle.write(str(owner))

    def sequence(self, *choices):
        found = iter(choices)
        return lambda low, high: next(found)

    def test_below_the_ephemeral_range_and_reserved(self):
        """The port is bindable, below the ephemeral range, and its reservation names this process."""
        port = ports.free_port()
        self.assertGreaterEqual(port, ports.LOWEST)
        self.assertLess(port, ports._ephemeral_low())
        with open(os.path.join(self.directory, str(port))) as handle:
            self.assertEqual(handle.read(), str(os.getpid()))
        self.assertTrue(ports._bindable(port))

    def test_reserved_by_a_running_process_is_skipped(self):
        """A port another running process reserved is never handed out, nor one this process had already."""
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.addCleanup(other.wait)
        self.addCleanup(other.kill)
        self.reservation(25001, other.pid)
        ports._mine.add(25002)
        self.assertEqual(ports.free_port(self.sequence(25001, 25002, 25003)), 25003)

    def test_reservation_of_an_ended_process_is_taken_over(self):
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()
        self.reservation(25004, ended.pid)
        self.assertEqual(ports.free_port(self.sequence(25004)), 25004)
        with open(os.path.join(self.directory, "25004")) as handle:
            self.assertEqual(handle.read(), str(os.getpid()))

    def test_half_written_reservation_is_respected(self):
        """An empty reservation file is a process writing its pid right now: the port is not taken."""
        self.reservation(25005, "")
        self.assertEqual(ports.free_port(self.sequence(25005, 25006)), 25006)

    def test_port_in_use_is_skipped(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            busy = taken.getsockname()[1]
            free = ports.free_port(self.sequence(busy, 25007))
        self.assertEqual(free, 25007)

    def test_gives_up_loudly(self):
        ports._mine.add(25008)
        with self.assertRaises(RuntimeError):
            ports.free_port(lambda low, high: 25008)

    def test_an_ephemeral_range_reaching_down_is_named(self):
        """Where every port is ephemeral there is nothing safe to hand out: one clear error."""
        self.patch(ports, "_ephemeral_low", lambda: 1024)
        with self.assertRaises(RuntimeError) as raised:
            ports.free_port()
        self.assertIn("ip_local_port_range", str(raised.exception))
