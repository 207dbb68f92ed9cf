"""
The Arduino of ``firmware/arduino_potentiometer`` without the board: a
potentiometer whose wiper someone turns now and then (a random walk over the
10-bit ADC range 0..1023, with the ±1 flicker of a resting wiper), read every
100 ms, and a line ``"512\\r\\n"`` written only when the reading moved by more
than the sketch's dead band since the last line written (the first reading
is always written), exactly as ``potentiometer.h`` does.
"""

import random as _random

from components.core.periodic import Periodic

ADC_MAX = 1023
# the sketch's READ_INTERVAL_MS and DEAD_BAND
READ_INTERVAL = 0.1
DEAD_BAND = 2


class Potentiometer:
    """
    ``read()`` gives the next ADC reading. While resting (probability
    ``rest`` per read) the reading flickers by at most ±1, which the dead band
    filters; otherwise the wiper moves by up to ``step`` steps, clamped to
    0..1023. ``random`` is a ``random.Random`` (seed it for tests).
    """

    def __init__(self, random=None, start=512, step=24, rest=0.3):
        self.random = random or _random.Random()
        self.position = min(ADC_MAX, max(0, int(start)))
        self.step = step
        self.rest = rest

    def read(self):
        if self.random.random() < self.rest:
            return min(ADC_MAX, max(0, self.position + self.random.randint(-1, 1)))
        self.position = min(ADC_MAX, max(0, self.position + self.random.randint(-self.step, self.step)))
        return self.position


class DeadBandReporter:
    """``offer(reading)`` returns the line to write (bytes) or None, with the sketch's dead band rule."""

    def __init__(self, band=DEAD_BAND):
        self.band = band
        self.last = None

    def offer(self, reading):
        if self.last is not None and abs(reading - self.last) <= self.band:
            return None
        self.last = reading
        return b"%d\r\n" % reading


class ArduinoSimulator(Periodic):
    """
    Every ``interval`` seconds on ``clock`` reads ``potentiometer`` and hands
    the line that passes the dead band to ``write(data)``. ``reads`` and
    ``lines`` count what it did.
    """

    def __init__(self, clock, write, potentiometer=None, band=DEAD_BAND, interval=READ_INTERVAL):
        self.clock = clock
        self.write = write
        self.potentiometer = potentiometer or Potentiometer()
        self.reporter = DeadBandReporter(band)
        self.interval = interval
        self.reads = 0
        self.lines = 0

    def tick(self):
        self.reads += 1
        line = self.reporter.offer(self.potentiometer.read())
        if line is not None:
            self.lines += 1
            self.write(line)
