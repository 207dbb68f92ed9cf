"""
The serial reader through a real router, with a real pseudo-terminal pair
playing the Arduino: the reader opens the pty's slave side through a symlink
(the device path), the test writes lines on the master side. And a
``socket://`` device: a TCP serial server in the test process.
"""

import atexit

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from tests.support.clients import connect
from tests.support.node import RouterNode, shared_node
from tests.support.polling import eventually
from tests.support.serialpty import FakeArduino


_arduino = []


def shared_arduino():
    """One pty pair per test process for the shared node below, plugged in."""
    if not _arduino:
        _arduino.append(FakeArduino())
        atexit.register(_arduino[0].close)
    if _arduino[0].master is None:
        _arduino[0].plug()
    return _arduino[0]


class SerialThroughRouterTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.arduino = shared_arduino()
        self.node = yield shared_node("serial-pty", env={"SERIAL_URL": self.arduino.path, "SERIAL_DEADBAND": "3"})
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
        yield self.node.logged("serial garbage ignored")

    @defer.inlineCallbacks
    def test_unplug_marks_stale_and_replug_resumes(self):
        """Unplugging keeps the value as stale; plugging back in resumes readings without a restart."""
        self.arduino.write(b"42\n")
        yield eventually(lambda: self.values() == [42], message="42 not published")
        opened = self.node.log_text().count("serial device open")
        self.arduino.unplug()
        yield eventually(lambda: self.events[-1]["stale"], message="no stale mark after unplug")
        state = yield self.client.session.call("iot.serial.get")
        self.assertEqual((state["value"], state["stale"]), (42, True))
        self.arduino.plug()
        yield eventually(lambda: self.node.log_text().count("serial device open") > opened, timeout=15,
                         message="reader did not reopen the device")
        self.arduino.write(b"42\n43\n")
        yield eventually(lambda: not self.events[-1]["stale"], message="no fresh reading after replug")
        self.assertEqual((self.events[-1]["value"], self.events[-1]["stale"]), (42, False))
        state = yield self.client.session.call("iot.serial.get")
        self.assertEqual((state["value"], state["stale"]), (42, False))


class SerialServer(protocol.Factory):
    """A serial-over-TCP server (as ser2net would be): remembers its connections."""

    def __init__(self):
        self.connections = []

    def buildProtocol(self, address):
        connection = protocol.Protocol()
        self.connections.append(connection)
        return connection

    def live(self):
        return [c for c in self.connections if c.transport is not None and c.transport.connected]


class SocketSerialThroughRouterTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_socket_url_reconnects(self):
        """A socket:// device: readings arrive; a dropped connection goes stale and is redialled."""
        server = SerialServer()
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        node = RouterNode(name="serial-socket",
                          env={"SERIAL_URL": "socket://127.0.0.1:{}".format(port.getHost().port)})
        self.addCleanup(node.cleanup)
        yield node.start()
        client = yield connect(self, node)
        events = []
        yield client.session.subscribe(events.append, "iot.serial.reader")
        yield eventually(lambda: server.live(), message="reader did not connect")
        server.live()[0].transport.write(b"7\r\n")
        yield eventually(lambda: [e["value"] for e in events] == [7], message="7 not published")
        server.live()[0].transport.loseConnection()
        yield eventually(lambda: events[-1]["stale"], message="no stale mark after the connection dropped")
        yield eventually(lambda: server.live(), timeout=15, message="reader did not redial")
        server.live()[0].transport.write(b"8\r\n")
        yield eventually(lambda: (events[-1]["value"], events[-1]["stale"]) == (8, False),
                         message="8 not published after redial")
        yield node.stop()
        for connection in server.live():
            connection.transport.abortConnection()
        yield eventually(lambda: not server.live(), message="server connections still open")
