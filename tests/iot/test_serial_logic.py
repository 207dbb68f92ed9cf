"""
The serial reader's logic without a device: line splitting, reading
parsing, dead band, stale mark, garbage counting and reconnect backoff, on an
injected clock.
"""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from components.core.backoff import Backoff
from components.iot.live import LiveValue, changed_beyond
from components.iot.readings import Garbage, LineSplitter, parse_reading

from components.iot.serial_reader import SerialReader


class ParseReadingTests(SynchronousTestCase):
    """parse_reading accepts short ASCII integers only."""

    def test_integers(self):
        """Plain, signed, padded and CRLF-terminated integers parse."""
        self.assertEqual(parse_reading(b"512"), 512)
        self.assertEqual(parse_reading(b" -3\r"), -3)
        self.assertEqual(parse_reading(b"+0007"), 7)

    def test_garbage(self):
        """Text, floats, empty lines, non-ASCII bytes and overlong numbers are Garbage with a reason."""
        reasons = {}
        for line in (b"hello", b"1.5", b"", b"\xff\xfe12", b"1" * 13, b"12 34"):
            with self.assertRaises(Garbage) as raised:
                parse_reading(line)
            reasons[line] = raised.exception.reason
        self.assertEqual(reasons[b"\xff\xfe12"], "not ASCII")
        self.assertEqual(reasons[b""], "empty line")
        self.assertEqual(reasons[b"hello"], "not an integer")


class LineSplitterTests(SynchronousTestCase):
    """LineSplitter joins chunks into lines and rejects what cannot be a line."""

    def test_lines_across_chunks(self):
        """A line split over several chunks comes out once, complete."""
        splitter = LineSplitter()
        out = list(splitter.feed(b"12\n3")) + list(splitter.feed(b"4")) + list(splitter.feed(b"\n56\n"))
        self.assertEqual(out, [(b"12", None), (b"34", None), (b"56", None)])

    def test_huge_line_reported_once(self):
        """A line longer than the limit is reported once and skipped up to its newline."""
        splitter = LineSplitter(max_line=8)
        out = []
        for chunk in (b"x" * 20, b"y" * 20, b"zz\n7\n"):
            out += list(splitter.feed(chunk))
        self.assertEqual(len([g for _, g in out if g is not None]), 1)
        self.assertEqual(out[-1], (b"7", None))

    def test_resync_drops_fragment(self):
        """After resync() the bytes up to the next newline are a partial line."""
        splitter = LineSplitter()
        splitter.resync()
        out = list(splitter.feed(b"23\n1023\n"))
        self.assertEqual(out[0][1].reason, "partial line")
        self.assertEqual(out[1], (b"1023", None))

    def test_reset_reports_unfinished_fragment(self):
        """reset() turns an unfinished line into a partial-line Garbage."""
        splitter = LineSplitter()
        list(splitter.feed(b"10"))
        self.assertEqual(splitter.reset().reason, "partial line")
        self.assertIsNone(splitter.reset())


class LiveValueTests(SynchronousTestCase):
    """LiveValue publishes changes beyond the band and the stale mark."""

    def test_dead_band(self):
        """Changes of at most the band are swallowed; larger ones compare with the last published value."""
        live = LiveValue(task.Clock().seconds, changed_beyond(3))
        published = [live.offer(v) for v in (100, 102, 103, 104, 101, 108)]
        self.assertEqual([s["value"] for s in published if s], [100, 104, 108])

    def test_stale_and_recovery(self):
        """lose() marks stale once; the next reading is published even when unchanged."""
        live = LiveValue(task.Clock().seconds, changed_beyond(0))
        self.assertTrue(live.snapshot()["stale"])
        first = live.offer(5)
        lost = live.lose()
        self.assertIsNone(live.lose())
        back = live.offer(5)
        self.assertEqual((lost["value"], lost["stale"]), (5, True))
        self.assertEqual((back["value"], back["stale"]), (5, False))
        self.assertLess(first["seq"], lost["seq"])
        self.assertLess(lost["seq"], back["seq"])


class RecordingPort:
    """A port object that records start/stop; the test drives the callbacks."""

    def __init__(self, opened, received, lost):
        self.opened, self.received, self.lost = opened, received, lost
        self.started = self.stopped = False

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True


class SerialReaderTests(SynchronousTestCase):
    """SerialReader turns port callbacks into events, stale marks and reconnects."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.ports = []
        self.events = []

        def connect(opened, received, lost):
            self.ports.append(RecordingPort(opened, received, lost))
            return self.ports[-1]

        self.reader = SerialReader(self.clock, connect, self.events.append, dead_band=2,
                                   backoff=Backoff(0.5, 2.0, random=lambda: 1.0))
        self.reader.start()

    def test_readings_and_garbage(self):
        """Valid lines beyond the dead band are published; garbage is counted and never published."""
        port = self.ports[0]
        port.opened(False)
        chunks = (b"100\r\n", b"101\r\nabc\r\n", b"\xff\xff\r\n", b"105\r\n", b"9" * 100 + b"\r\n106\r\n")
        for chunk in chunks:
            port.received(chunk)
        self.assertEqual([e["value"] for e in self.events], [100, 105])
        self.assertEqual(self.reader.garbage, 3)
        self.assertEqual(self.reader.state()["value"], 105)
        self.assertFalse(self.reader.state()["stale"])

    def test_lines_of_one_read_are_conflated(self):
        """Of the lines that arrive in one read only the newest publishable state is published."""
        self.ports[0].opened(False)
        self.ports[0].received(b"10\n20\n30\n31\n")
        self.assertEqual([e["value"] for e in self.events], [30])
        self.assertEqual(self.reader.readings, 4)
        self.assertEqual(self.reader.state()["value"], 30)

    def test_mid_stream_open_drops_first_fragment(self):
        """When bytes were waiting at open, the first fragment is dropped as a partial line."""
        self.ports[0].opened(True)
        self.ports[0].received(b"23\r\n1023\r\n")
        self.assertEqual([e["value"] for e in self.events], [1023])
        self.assertEqual(self.reader.garbage, 1)

    def test_lost_device_goes_stale_and_reconnects_with_backoff(self):
        """A lost device marks the value stale, reopens after 0.5, 1, 2, 2 s, and resumes."""
        self.ports[0].opened(False)
        self.ports[0].received(b"300\n")
        self.ports[0].lost(OSError("gone"))
        self.assertEqual((self.events[-1]["value"], self.events[-1]["stale"]), (300, True))
        for delay in (0.5, 1.0, 2.0, 2.0):
            self.clock.advance(delay - 0.01)
            count = len(self.ports)
            self.clock.advance(0.01)
            self.assertEqual(len(self.ports), count + 1)
            self.ports[-1].lost(OSError("no such file"))
        self.assertEqual(len([e for e in self.events if e["stale"]]), 1)
        self.clock.advance(2.0)
        self.ports[-1].opened(False)
        self.ports[-1].received(b"300\n")
        self.assertEqual((self.events[-1]["value"], self.events[-1]["stale"]), (300, False))
        self.assertEqual(self.reader.backoff.current, 0.5)

    def test_stop_cancels_retry(self):
        """stop() stops the port and cancels a pending reconnect."""
        self.ports[0].lost(OSError("gone"))
        self.reader.stop()
        self.clock.advance(60)
        self.assertEqual(len(self.ports), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

