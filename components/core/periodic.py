"""
Work done every few seconds on an injected clock: :class:`Periodic` runs
``tick()`` every ``interval`` seconds of ``clock`` from ``start()`` (at once,
then on the interval) until ``stop()``.
"""

from twisted.internet import task


class Periodic:
    """Subclasses set ``clock`` and ``interval`` and define ``tick()`` (its Deferred is waited for)."""

    clock = None
    interval = None
    _loop = None

    def start(self):
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
