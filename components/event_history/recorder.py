"""
The recorder: events of history topics, in the order the router delivered
them, are stored one batch at a time and then republished on their feed
topics with their positions.

- ``offer(topic, args, kwargs, users=None, options=None)`` queues an event
  and returns a Deferred firing with its feed message
  ``{"publication", "ts", "args", "kwargs"}`` once it is published; the
  caller never waits for the database to be healthy.
- One write runs at a time and takes everything queued (at most ``batch``).
  After it the feed messages are published in order.
- When the write fails (database down) the events are still published live,
  with ``"publication": None``, and their topics are remembered as having
  lost events; the next write that succeeds raises those topics' marks, so
  a reader who resumes from before the loss is told ``pruned`` rather than
  given a history with a silent hole. The same happens to the oldest events
  when more than ``queue_limit`` wait.
- An event whose stored body would exceed ``max_bytes``, or over the
  storing rate of its owner (``allow(topic)`` False: an application's
  topics together, or one IoT source), is published the same way without
  being stored: nothing a publisher sends can make the store or the queue
  grow faster than the bounds allow (the queue is bounded in bytes too).
- Trouble is logged once per streak, with what it cost when it ends.
"""

from collections import deque

from twisted.internet import defer
from twisted.logger import Logger

from components.core.ratelimit import RateLimiter
from components.core.state import epoch_ms
from components.event_history import event_history_settings, feed_topic, owner_of
from components.event_history.event_store import encode

DEFAULT_BATCH = 500
DEFAULT_QUEUE_LIMIT = 20000
DEFAULT_QUEUE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_BYTES = 65536


class Recorder:
    """Stores events through ``store`` and publishes their feed messages with ``publish(topic, message,
    options)``; ``now_ms()`` stamps them (module doc)."""

    log = Logger()

    def __init__(self, store, publish, now_ms, batch=DEFAULT_BATCH, queue_limit=DEFAULT_QUEUE_LIMIT,
                 queue_bytes=DEFAULT_QUEUE_BYTES, max_bytes=DEFAULT_MAX_BYTES, allow=None):
        self.store = store
        self.publish = publish
        self.now_ms = now_ms
        self.batch = batch
        self.queue_limit = max(queue_limit, batch)
        self.queue_bytes = queue_bytes
        self.max_bytes = max_bytes
        self.allow = allow
        self.queued_bytes = 0
        self.refused = 0
        self._refusing = False
        self.queue = deque()
        self.lost_topics = set()
        self.stored = 0
        self.lost = 0
        self._writing = False
        self._troubled = 0

    def offer(self, topic, args, kwargs, users=None, options=None):
        """Queue one event (``users``: its named recipients, or None for every subscriber); fire with its
        feed message once published."""
        done = defer.Deferred()
        args, kwargs = list(args or ()), dict(kwargs or {})
        try:
            body = encode(args, kwargs)
        except (TypeError, ValueError):
            body = None
        item = (topic, self.now_ms(), body, users, args, kwargs, options, done)
        if body is None or len(body) > self.max_bytes or (self.allow is not None and not self.allow(topic)):
            self._refuse(topic, "not strict JSON" if body is None else "{} bytes".format(len(body)))
            self._publish_lost([item], trouble=False)
            return done
        self._refusing = False
        self.queue.append(item)
        self.queued_bytes += len(body)
        while len(self.queue) > self.queue_limit or self.queued_bytes > self.queue_bytes:
            self._publish_lost([self._take()])
        self._write()
        return done

    def _take(self):
        item = self.queue.popleft()
        self.queued_bytes -= len(item[2])
        return item

    def _refuse(self, topic, what):
        self.refused += 1
        if not self._refusing:
            self._refusing = True
            self.log.warn("event history: not storing an event of {topic} ({what}; stored: strict JSON of at "
                          "most {limit} bytes per event, at a bounded rate per application or source)",
                          topic=topic, what=what, limit=self.max_bytes)

    def _write(self):
        if self._writing or not self.queue:
            return
        self._writing = True
        taken = [self._take() for _ in range(min(self.batch, len(self.queue)))]
        lost_topics, self.lost_topics = self.lost_topics, set()
        d = self.store.append([item[:4] for item in taken], lost_topics, self.now_ms())
        d.addCallbacks(self._written, self._failed, callbackArgs=(taken,), errbackArgs=(taken, lost_topics))
        d.addBoth(self._next)

    def _written(self, positions, taken):
        if self._troubled:
            self.log.info("event history: storing again ({lost} events were published without a position)",
                          lost=self._troubled)
            self._troubled = 0
        self.stored += len(taken)
        for item, pos in zip(taken, positions):
            self._publish(item, pos)

    def _failed(self, failure, taken, lost_topics):
        if not self._troubled:
            self.log.warn("event history: cannot store events ({error}); publishing them without a position",
                          error=failure.getErrorMessage())
        self.lost_topics |= lost_topics
        self._publish_lost(taken)

    def _publish_lost(self, items, trouble=True):
        for item in items:
            self.lost_topics.add(item[0])
            self.lost += 1
            self._troubled += 1 if trouble else 0
            self._publish(item, None)

    def _publish(self, item, pos):
        topic, ts, _body, _users, args, kwargs, options, done = item
        message = {"publication": pos, "ts": ts, "args": args, "kwargs": kwargs}
        try:
            self.publish(feed_topic(topic), message, options)
        except Exception:
            self.log.failure("event history: publishing the feed of {topic} failed", topic=topic)
        done.callback(message)

    def _next(self, _):
        self._writing = False
        self._write()


def from_settings(settings, store, publish, seconds):
    """The recorder the settings describe (event size bound, storing rate per owner), stamping with the
    clock ``seconds``."""
    limiter = RateLimiter(settings.get(event_history_settings.HISTORY_STORE_RATE),
                          settings.get(event_history_settings.HISTORY_STORE_BURST), clock=seconds)
    return Recorder(store, publish, lambda: epoch_ms(seconds),
                    max_bytes=settings.get(event_history_settings.HISTORY_EVENT_MAX_BYTES),
                    allow=lambda topic: limiter.check(owner_of(topic))[0])
