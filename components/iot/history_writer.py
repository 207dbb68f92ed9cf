"""
Writing history off the publish path: ``record(source, state)`` only
appends to a queue and never blocks or fails; the queue is written to the
:class:`components.iot.history.HistoryStore` in one transaction every
``flush_interval`` seconds, or as soon as ``batch`` states wait. One write
runs at a time.

When the database is in trouble the states stay queued (in order) and the
write is retried with backoff; the trouble is logged once per streak and its
end is logged with what it cost. The queue is bounded (``queue_limit``):
when it is full the oldest waiting state is dropped and counted (``dropped``,
in the log lines), so a long outage costs the oldest states, never memory,
and never silently.

This is not :class:`components.core.batching.Batcher`: nobody waits for a
state's write, so there are no per-item answers, and writes are paced by a
timer (many states per transaction) rather than flushed at once.

One writer per worker process and database (:func:`shared_writer`): every
source component and the device bridge of a worker hand their states to it.
"""

from collections import deque

from twisted.internet import defer
from twisted.logger import Logger

from components.core.backoff import Backoff
from components.core.settings import SettingsError
from components.db import db_settings
from components.db.database import Database
from components.iot import iot_settings
from components.iot.history import HistoryStore

DEFAULT_FLUSH_INTERVAL = iot_settings.HISTORY_FLUSH_INTERVAL.default
DEFAULT_BATCH = iot_settings.HISTORY_BATCH.default
DEFAULT_QUEUE_LIMIT = iot_settings.HISTORY_QUEUE_LIMIT.default


class HistoryWriter:
    """Queues states for ``store`` and writes them in batches on ``clock`` (see the module doc)."""

    log = Logger()

    def __init__(self, store, clock, flush_interval=DEFAULT_FLUSH_INTERVAL, batch=DEFAULT_BATCH,
                 queue_limit=DEFAULT_QUEUE_LIMIT, backoff=None):
        self.store = store
        self.clock = clock
        self.flush_interval = flush_interval
        self.batch = batch
        self.queue_limit = max(queue_limit, batch)
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.queue = deque()
        self.recorded = 0
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self._timer = None
        self._writing = None
        self._troubled = False
        self._dropped_in_streak = 0

    @property
    def pending(self):
        """States waiting to be written (the running write included)."""
        return len(self.queue) + (len(self._writing) if self._writing else 0)

    def record(self, source, state):
        """Queue ``state`` of ``source``; returns at once and never raises."""
        try:
            if len(self.queue) >= self.queue_limit:
                self.queue.popleft()
                self.dropped += 1
                self._dropped_in_streak += 1
                if self._dropped_in_streak == 1:
                    self.log.warn("history queue full ({limit} states): dropping the oldest unwritten states "
                                  "until the database takes them again", limit=self.queue_limit)
            self.queue.append((source, dict(state)))
            self.recorded += 1
            if self._writing is None and not self._troubled:
                if len(self.queue) >= self.batch:
                    self._schedule(0)
                elif self._timer is None:
                    self._schedule(self.flush_interval)
        except Exception:
            self.log.failure("history: recording a state of {source} failed", source=source)

    def _schedule(self, delay):
        if self._timer is not None and self._timer.active():
            if delay >= self._timer.getTime() - self.clock.seconds():
                return
            self._timer.cancel()
        self._timer = self.clock.callLater(delay, self.flush)

    def flush(self):
        """Write what waits now (up to a few batches); fires when that write ended, never fails."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._writing is not None or not self.queue:
            return defer.succeed(None)
        count = min(len(self.queue), self.batch * 4)
        self._writing = [self.queue.popleft() for _ in range(count)]
        d = defer.maybeDeferred(self.store.insert, self._writing)
        d.addCallbacks(self._written, self._failed)
        return d

    def _written(self, added):
        rows, self._writing = self._writing, None
        self.written += len(rows)
        self.backoff.reset()
        if self._troubled:
            self._troubled = False
            self.log.info("history writes work again after {failures} failed attempt(s); {dropped} state(s) "
                          "dropped meanwhile ({total} dropped in all)", failures=self.failures,
                          dropped=self._dropped_in_streak, total=self.dropped)
            self.failures = 0
        self._dropped_in_streak = 0
        if self.queue:
            self._schedule(0 if len(self.queue) >= self.batch else self.flush_interval)

    def _failed(self, failure):
        rows, self._writing = self._writing, None
        # back to the front, in order; the bound still holds (the oldest go first)
        room = self.queue_limit - len(self.queue)
        if room < len(rows):
            lost = len(rows) - max(room, 0)
            self.dropped += lost
            self._dropped_in_streak += lost
            rows = rows[lost:]
        self.queue.extendleft(reversed(rows))
        self.failures += 1
        delay = self.backoff.next()
        if not self._troubled:
            self._troubled = True
            self.log.warn("history write failed ({error}); {count} state(s) kept queued, retrying with "
                          "backoff",
                          error=failure.getErrorMessage(), count=len(self.queue))
        self._schedule(delay)

    @defer.inlineCallbacks
    def drain(self):
        """Write everything queued (e.g. before shutdown); gives up after one failed attempt."""
        while self.queue or self._writing is not None:
            if self._writing is not None:
                yield _later(self.clock, 0.01)
                continue
            before = self.failures
            yield self.flush()
            if self.failures > before:
                return

    def stop(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def _later(clock, delay):
    from twisted.internet import task
    return task.deferLater(clock, delay, lambda: None)


def writer_settings(settings):
    """The writer's settings: ``HISTORY_FLUSH_INTERVAL``, ``HISTORY_BATCH``, ``HISTORY_QUEUE_LIMIT``."""
    return {"flush_interval": settings.get(iot_settings.HISTORY_FLUSH_INTERVAL),
            "batch": settings.get(iot_settings.HISTORY_BATCH),
            "queue_limit": settings.get(iot_settings.HISTORY_QUEUE_LIMIT)}


class SharedWriters:
    """
    The writers of one worker process, one per client database URL, created
    by the first component that asks (with its settings, which fall back to
    the environment) and written out before the reactor stops.
    """

    def __init__(self):
        self._writers = {}

    def get(self, settings, reactor):
        """The writer for ``settings``' client database, or None when ``HISTORY`` is off."""
        if not settings.get(iot_settings.HISTORY):
            return None
        url = settings.get(db_settings.DATABASE_URL)
        writer = self._writers.get(url)
        if writer is None:
            store = HistoryStore(Database(url))
            writer = HistoryWriter(store, reactor, **writer_settings(settings))
            self._writers[url] = writer
            reactor.addSystemEventTrigger("before", "shutdown", writer.drain)
        return writer

    def clear(self):
        self._writers.clear()


# the one set of writers of this worker process (see the module docstring)
WRITERS = SharedWriters()


def shared_writer(component):
    """
    The history writer of ``component``'s worker (a HubComponent), or None
    when history is off. A malformed setting (SettingsError) is raised: the
    component's start refuses the process with one line.
    """
    writer = getattr(component, "_history_writer", False)
    if writer is False:
        try:
            writer = WRITERS.get(component.settings, component.reactor)
        except SettingsError:
            raise
        except Exception:
            component.log.failure("history off for {name}: its settings cannot be used",
                                  name=type(component).__name__)
            writer = None
        component._history_writer = writer
    return writer


def record(component, source, state):
    """Hand ``state`` of ``source`` (its topic) to ``component``'s worker's history writer; never raises."""
    try:
        writer = shared_writer(component)
        if writer is not None:
            writer.record(source, state)
    except Exception:
        component.log.failure("history: recording {source} failed", source=source)


def recorded(result, component, source, state):
    """A callback for a publication's Deferred: record ``state`` once published; passes ``result`` on."""
    record(component, source, state)
    return result
