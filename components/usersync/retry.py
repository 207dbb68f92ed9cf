"""
Waiting helpers for the sync loops: capped exponential backoff, and a
sleep that another event can cut short.
"""

from twisted.internet import defer, task


class Backoff:
    """``next()`` gives ``initial``, doubling per call up to ``maximum``; ``reset()`` after a success."""

    def __init__(self, initial=0.2, maximum=30.0):
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next(self):
        delay = min(self.maximum, self.initial * (2 ** min(self.failures, 30)))
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


@defer.inlineCallbacks
def persist(reactor, attempt, log, what, keep_going=lambda: True, maximum=10.0):
    """
    Call ``attempt()`` (may return a Deferred) until it succeeds, logging
    each failure and waiting with backoff; fire with its result, or with
    None once ``keep_going()`` turns false.
    """
    backoff = Backoff(0.5, maximum)
    while keep_going():
        try:
            result = yield attempt()
            return result
        except Exception as exc:
            delay = backoff.next()
            log.info("{what} not ready ({error}); retrying in {delay:.1f}s", what=what, error=exc,
                     delay=delay)
            yield task.deferLater(reactor, delay, lambda: None)
    return None
