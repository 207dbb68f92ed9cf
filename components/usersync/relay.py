"""
The relay: reads unsent outbox events oldest first, hands them to the
publisher (SNS), marks each sent only after SNS accepted it, and backs off
while SNS or the database is unreachable; the events wait in the outbox
meanwhile. It wakes on ``wake()`` (PostgreSQL ``NOTIFY``, the hub's own
admin writes) or polls. Several relays may run against one PostgreSQL
database: rows are claimed with ``FOR UPDATE SKIP LOCKED`` for the length of
the send.
"""

from twisted.internet import defer
from twisted.logger import Logger

from components.core.backoff import Alarm, Backoff, pause
from components.db.database import POSTGRESQL
from components.usersync import outbox

PURGE_AFTER_MS = 24 * 3600 * 1000


def _outcome(sent, failed, error):
    if failed and error is None:
        error = RuntimeError("{} events not accepted".format(len(failed)))
    return len(sent), error


class Relay:
    """Moves outbox events to SNS until stopped; ``wake()`` when new events may exist."""

    log = Logger()

    def __init__(self, db, publish, blocking, reactor, batch=100, poll_interval=0.2, backoff_max=30.0):
        self.db = db
        self.publish = publish
        self.blocking = blocking
        self.reactor = reactor
        self.batch = batch
        self.poll_interval = poll_interval
        self.backoff = Backoff(0.2, backoff_max)
        self.alarm = Alarm(reactor)
        self.running = False
        self.sent = 0
        self.done = None

    def start(self):
        self.running = True
        self.done = self._loop()
        return self.done

    def stop(self):
        self.running = False
        self.alarm.ring()

    def wake(self):
        self.alarm.ring()

    def _now_ms(self):
        return int(self.reactor.seconds() * 1000)

    def _in_transaction(self, cursor, now_ms):
        rows = outbox.claim(cursor, self.batch)
        if not rows:
            return 0, None
        sent, failed, error = self.publish(rows)
        outbox.settle(cursor, sent, failed, now_ms)
        return _outcome(sent, failed, error)

    @defer.inlineCallbacks
    def relay_once(self):
        """One batch; fire with ``(events sent, error or None)``."""
        if self.db.dialect == POSTGRESQL:
            # rows stay locked while they are sent: other relays skip them
            result = yield self.db.run(self._in_transaction, self._now_ms())
            return result
        rows = yield self.db.run(outbox.claim, self.batch)
        if not rows:
            return 0, None
        sent, failed, error = yield self.blocking(self.publish, rows)
        yield self.db.run(outbox.settle, sent, failed, self._now_ms())
        return _outcome(sent, failed, error)

    @defer.inlineCallbacks
    def _loop(self):
        last_purge = 0
        while self.running:
            try:
                count, error = yield self.relay_once()
            except Exception as exc:
                count, error = 0, exc
            self.sent += count
            if error is not None:
                delay = self.backoff.next()
                self.log.warn("usersync relay: {count} sent, then {error}; retrying in {delay:.1f}s",
                              count=count, error=error, delay=delay)
                yield pause(self.reactor, delay)
                continue
            self.backoff.reset()
            if count:
                self.log.debug("usersync relay: {count} events sent", count=count)
            if count >= self.batch:
                continue
            if self.reactor.seconds() - last_purge > 3600:
                last_purge = self.reactor.seconds()
                self.db.run(outbox.purge, self._now_ms() - PURGE_AFTER_MS).addErrback(
                    lambda failure: self.log.warn("usersync outbox purge failed: {f}", f=failure.value))
            yield self.alarm.sleep(self.poll_interval)
