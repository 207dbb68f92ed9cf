"""
The serial reader through a real router, with a real pseudo-terminal pair
playing the Arduino: the reader opens the pty's slave side through a symlink
(the device path), the test writes lines on the master side.
"""

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.clients import connect, eventually
from tests.support.node import RouterNode
from tests.support.serialpty import FakeArduino


class SerialThroughRouterTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.arduino = FakeArduino()
        self.addCleanup(self.arduino.close)
        self.node = RouterNode(name="serial", env={"SERIAL_URL": self.arduino.path, "SERIAL_DEADBAND": "3"})
        self.addCleanup(self.node.cleanup)
        yield self.node.start()
        yield eventually(lambda: "serial device open" in self.node.log_text(),
                         message="reader did not open the pty")
        self.client = yield connect(self, self.node)
        self.events = []
        yield self.client.session.subscribe(self.events.append, "iot.serial.reader")

    def values(self):
        return [event["value"] for event in self.events]

    @defer.inlineCallbacks
    def test_readings_dead_band_and_garbage(self):
        """Readings reach a subscriber beyond the dead band only; garbage is logged, never published."""
        self.arduino.write(b"500\r\n")
        yield eventually(lambda: self.values() == [500], message="500 not published")
        self.arduino.write(b"501\r\n503\r\nhello\r\n\xff\xfe\r\n" + b"7" * 500 + b"\r\n5.5\r\n504\r\n")
        yield eventually(lambda: self.values()[-1:] == [504], message="504 not published")
        self.arduino.write(b"520\r\n")
        yield eventually(lambda: self.values()[-1:] == [520], message="520 not published")
        self.assertEqual(self.values(), [500, 504, 520])
        seqs = [event["seq"] for event in self.events]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertFalse(any(event["stale"] for event in self.events))
        state = yield self.client.session.call("iot.serial.get")
        self.assertEqual((state["value"], state["seq"], state["stale"]), (520, seqs[-1], False))
        self.assertIn("serial garbage ignored", self.node.log_text())

    @defer.inlineCallbacks
    def test_unplug_marks_stale_and_replug_resumes(self):
        """Unplugging keeps the value as stale; plugging back in resumes readings without a restart."""
        self.arduino.write(b"42\n")
        yield eventually(lambda: self.values() == [42], message="42 not published")
        self.arduino.unplug()
        yield eventually(lambda: self.events[-1]["stale"], message="no stale mark after unplug")
        state = yield self.client.session.call("iot.serial.get")
        self.assertEqual((state["value"], state["stale"]), (42, True))
        self.arduino.plug()
        yield eventually(lambda: self.node.log_text().count("serial device open") >= 2, timeout=15,
                         message="reader did not reopen the device")
        self.arduino.write(b"42\n43\n")
        yield eventually(lambda: not self.events[-1]["stale"], message="no fresh reading after replug")
        self.assertEqual((self.events[-1]["value"], self.events[-1]["stale"]), (42, False))
        state = yield self.client.session.call("iot.serial.get")
        self.assertEqual((state["value"], state["stale"]), (42, False))
