"""
Group commit without giving up per-item answers: callers ``submit`` items one
at a time; one ``flush(items)`` runs at a time with every item that waited
for it, and each caller's Deferred fires with its own entry of the result
list (or the batch's failure). Alone, an item is flushed at once; under load
batches grow by themselves, so throughput follows the load and no timer adds
latency.
"""

from collections import deque

from twisted.internet import defer
from twisted.python.failure import Failure


class NotStarted(Exception):
    """Cancelled before its batch started: the item had no effect."""


class OutcomeUnknown(Exception):
    """Cancelled while its batch was running: the item may or may not take effect."""


class Batcher:
    """
    ``flush(items)`` returns a list with one result per item (or a Deferred of
    it); it is never called again before the previous call finished.
    """

    def __init__(self, flush, max_batch=100):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._flush = flush
        self.max_batch = max_batch
        self._waiting = deque()
        self._running = False
        self.batches = 0
        self.items = 0

    @property
    def pending(self):
        """Items waiting for a batch (not counting the running one)."""
        return len(self._waiting)

    def submit(self, item):
        """Queue ``item``; fire with its result once its batch is done."""
        done = defer.Deferred(self._cancel)
        self._waiting.append((item, done))
        self._next()
        return done

    def fail_waiting(self, exception):
        """Fail every item that has not started (e.g. on shutdown); they have no effect."""
        waiting, self._waiting = self._waiting, deque()
        for _, done in waiting:
            done.errback(exception)

    def _cancel(self, done):
        for entry in self._waiting:
            if entry[1] is done:
                self._waiting.remove(entry)
                done.errback(NotStarted("cancelled before it was started"))
                return
        done.errback(OutcomeUnknown("cancelled while it was being applied"))

    def _next(self):
        if self._running or not self._waiting:
            return
        count = min(self.max_batch, len(self._waiting))
        batch = [self._waiting.popleft() for _ in range(count)]
        self._running = True
        self.batches += 1
        self.items += count
        d = defer.maybeDeferred(self._flush, [item for item, _ in batch])
        d.addBoth(self._finished, batch)

    def _finished(self, result, batch):
        if not isinstance(result, Failure) and len(result) != len(batch):
            result = Failure(AssertionError("flush returned {} results for {} items".format(
                len(result), len(batch))))
        # answer every caller first; items they submit meanwhile join the next batch
        for index, (_, done) in enumerate(batch):
            if done.called:  # timed out / cancelled meanwhile
                continue
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(result[index])
        self._running = False
        self._next()
