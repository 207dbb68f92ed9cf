"""
The serial reader: integer readings from a serial device (the Arduino
potentiometer of ``firmware/arduino_potentiometer``) published on
``iot.serial.reader`` when they move by more than the dead band, and the last
state served by ``iot.serial.get``.

The port is read in a thread (``components.iot.serialport``); the lines of one
read are conflated into at most one event (the newest). Garbage lines are
counted and logged, never published. When the device goes away the last value
stays, marked ``stale``, and the port is reopened with exponential backoff
until the device is back. Off when ``SERIAL_URL`` is unset. Every published
state is also kept in the IoT history, and seq continues above the highest
stored one (:mod:`components.iot.history_writer`, :mod:`components.iot.history_seed`).
"""

from autobahn import wamp
from twisted.internet import defer
from twisted.logger import Logger

from components.core.arguments import no_arguments
from components.core.backoff import Backoff
from components.iot import SERIAL_GET, SERIAL_TOPIC, iot_settings
from components.iot.live import LiveValue, changed_beyond
from components.iot.readings import Garbage, LineSplitter, parse_reading
from components.iot.serialport import SerialThread, pyserial_opener
from components.iot.source import SourceComponent


class SerialReader:
    """
    The reader's logic, driven by the port callbacks. ``connect(opened,
    received, lost)`` returns a port object with ``start()`` and ``stop()``
    (a ``SerialThread`` in production); ``publish(state)`` sends an event.
    """

    log = Logger()

    def __init__(self, clock, connect, publish, dead_band=0, retry_initial=0.5, retry_max=10.0,
                 garbage_log_interval=10.0, max_line=64, backoff=None):
        self.clock = clock
        self.connect = connect
        self.publish = publish
        self.live = LiveValue(clock.seconds, changed_beyond(dead_band))
        self.splitter = LineSplitter(max_line)
        self.backoff = backoff or Backoff(retry_initial, retry_max)
        self.garbage_log_interval = garbage_log_interval
        self.garbage = 0
        self.readings = 0
        self.opens = 0
        self._garbage_logged_at = None
        self._garbage_unlogged = 0
        self._failing = False
        self._port = None
        self._retry = None
        self._stopped = False

    def start(self):
        self._stopped = False
        self._open()

    def stop(self):
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._port is not None:
            self._port.stop()

    def state(self):
        return self.live.snapshot()

    def _open(self):
        self._retry = None
        self._port = self.connect(self._opened, self._received, self._lost)
        self._port.start()

    def _opened(self, mid_stream):
        self.opens += 1
        self.backoff.reset()
        self.splitter.reset()
        if mid_stream:
            self.splitter.resync()
        self._failing = False
        self.log.info("serial device open")

    def _received(self, data):
        # Lines that arrive in one read are conflated: only the newest state
        # that passed the dead band is published, so a burst (a backlog after
        # a stall, a fast device) never queues stale events behind it.
        newest = None
        for line, garbage in self.splitter.feed(data):
            if garbage is None:
                try:
                    value = parse_reading(line)
                except Garbage as error:
                    garbage = error
            if garbage is not None:
                self._count_garbage(garbage)
                continue
            self.readings += 1
            newest = self.live.offer(value) or newest
        self._emit(newest)

    def _emit(self, state):
        if state is not None:
            self.publish(state)

    def _count_garbage(self, garbage):
        self.garbage += 1
        self._garbage_unlogged += 1
        now = self.clock.seconds()
        if self._garbage_logged_at is None or now - self._garbage_logged_at >= self.garbage_log_interval:
            self.log.warn("serial garbage ignored ({reason}): {line!r}; {count} garbage line(s) since the "
                          "last report, {total} in all", reason=garbage.reason, line=garbage.line,
                          count=self._garbage_unlogged, total=self.garbage)
            self._garbage_logged_at = now
            self._garbage_unlogged = 0

    def _lost(self, reason):
        self._port = None
        fragment = self.splitter.reset()
        if fragment is not None:
            self._count_garbage(fragment)
        if self._stopped:
            return
        self._emit(self.live.lose())
        delay = self.backoff.next()
        if not self._failing:
            self._failing = True
            self.log.warn("serial device unavailable ({reason}); value kept as stale, retrying with backoff",
                          reason=reason)
        else:
            self.log.debug("serial device still unavailable ({reason}); next try in {delay}s",
                           reason=reason, delay=delay)
        self._retry = self.clock.callLater(delay, self._open)


class SerialReaderComponent(SourceComponent):
    """Runs a SerialReader on ``SERIAL_URL`` and serves ``iot.serial.get``."""

    topic = SERIAL_TOPIC

    @defer.inlineCallbacks
    def start(self):
        url = self.settings.get(iot_settings.SERIAL_URL)
        if not url:
            self.log.info("serial reader off (SERIAL_URL unset)")
            return
        baud = self.settings.get(iot_settings.SERIAL_BAUD)
        band = self.settings.get(iot_settings.SERIAL_DEADBAND)
        opener = pyserial_opener(url, baud)

        def connect(opened, received, lost):
            return SerialThread(self.reactor, opener, opened, received, lost)

        self.source = SerialReader(self.reactor, connect, self.publish_state, dead_band=band)
        yield self.seed_history(self.source.live)
        yield self.register(self)
        self.source.start()
        self.log.info("serial reader on {url} at {baud} baud, dead band {band}",
                      url=url, baud=baud, band=band)

    @wamp.register(SERIAL_GET)
    def get(self, /, *args, **kwargs):
        """The latest state; ``iot.serial.get`` takes no arguments (invalid_argument otherwise)."""
        no_arguments(SERIAL_GET, args, kwargs)
        return self.current()
