"""
Waiting between attempts: one backoff rule for every retry loop of the hub
(exponential, capped, with full jitter, so many pollers retrying a restarted
database or SNS endpoint spread out instead of retrying in lockstep), a
sleep that another event can cut short, and a retry-until-it-works helper.
"""

import random as _random

from twisted.internet import defer, task


class Backoff:
    """
    ``next()`` waits a random time between 0 and the current ceiling, which
    starts at ``initial`` and doubles per failure up to ``maximum``;
    ``reset()`` after a success. ``random`` (a 0-argument callable giving
    0..1) is injectable; ``lambda: 1.0`` gives the ceilings themselves.
    """

    def __init__(self, initial=0.2, maximum=30.0, random=_random.random):
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.random = random
        self.failures = 0

    @property
    def current(self):
        """The ceiling of the next delay."""
        return min(self.maximum, self.initial * (2 ** min(self.failures, 60)))

    def next(self):
        delay = self.current * self.random()
        self.failures += 1
        return delay

    def reset(self):
        self.failures = 0


class Alarm:
    """
    ``sleep(seconds)`` fires after ``seconds`` or at the next ``ring()``,
    whichever comes first; a ring while nobody sleeps makes the next sleep
    return at once, so no wake-up is lost.
    """

    def __init__(self, reactor):
        self.reactor = reactor
        self._waiter = None
        self._call = None
        self._rung = False

    @property
    def sleeping(self):
        """True while a sleep is waiting."""
        return self._waiter is not None

    def sleep(self, seconds):
        if self._rung:
            self._rung = False
            return defer.succeed(True)
        self._waiter = defer.Deferred()
        self._call = self.reactor.callLater(seconds, self._fire, False)
        return self._waiter

    def ring(self):
        if self._waiter is None:
            self._rung = True
        else:
            self._fire(True)

    def _fire(self, rung):
        waiter, self._waiter = self._waiter, None
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        if waiter is not None:
            waiter.callback(rung)


# seconds a retried start-up step may fail before persist() says so at info level
QUIET = 10.0


def pause(reactor, seconds):
    """A Deferred that fires after ``seconds`` on ``reactor``."""
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def persist(reactor, attempt, log, what, keep_going=lambda: True, maximum=10.0, backoff=None, quiet=QUIET):
    """
    Call ``attempt()`` (may return a Deferred) until it succeeds, waiting
    with backoff between failures; fire with its result, or with None once
    ``keep_going()`` turns false. Failures within ``quiet`` seconds of the
    first attempt are the usual start-up race (a database or emulator
    starting beside the node) and logged at debug only; later ones at info,
    and then the success too.
    """
    backoff = backoff or Backoff(0.5, maximum)
    began = reactor.seconds()
    told = False
    while keep_going():
        try:
            result = yield attempt()
        except Exception as exc:
            delay = backoff.next()
            told = told or reactor.seconds() - began >= quiet
            (log.info if told else log.debug)("{what} not ready ({error}); retrying in {delay:.2g}s", what=what,
                                              error=exc, delay=delay)
            yield pause(reactor, delay)
        else:
            if told:
                log.info("{what} ready after {seconds:.0f}s", what=what, seconds=reactor.seconds() - began)
            return result
    return None
