"""
The relay: reads unsent outbox events oldest first, hands them to the
publisher (SNS), marks each sent only after SNS accepted it, and backs off
while SNS or the database is unreachable; the events wait in the outbox
meanwhile. It wakes on ``wake()`` (PostgreSQL ``NOTIFY``, the hub's own
admin writes) or polls. Several relays may run against one PostgreSQL
database: rows are claimed with ``FOR UPDATE SKIP LOCKED`` for the length of
the send.

Nothing is marked sent that no client could receive: with ``subscribed``
(a blocking call counting the topic's confirmed subscriptions) the relay
holds every event while the topic has none (SNS would accept the publish
and deliver it to nobody), looking again every ``hold`` seconds. Each
event is screened with the clients' rules and numbered before it is sent
(:mod:`sequence`); refused ones are logged here, naming the user and the
field. With ``beacon`` (a blocking call taking the epoch and the highest
number sent) the relay announces every ``beacon_interval`` seconds how far
it got, so a client also notices a lost last message.
"""

from twisted.internet import defer
from twisted.logger import Logger

from components.core.backoff import QUIET, Alarm, Backoff, pause
from components.db.database import POSTGRESQL
from components.usersync import outbox, sequence

PURGE_AFTER_MS = 24 * 3600 * 1000


class NoSubscribers(Exception):
    """The topic has no confirmed subscription: whatever is published now reaches nobody."""


def _outcome(sent, failed, error):
    if failed and error is None:
        error = RuntimeError("{} events not accepted".format(len(failed)))
    return len(sent), error


def _sent_seqs(numbered, sent):
    accepted = set(sent)
    return [row[6] for row in numbered if row[0] in accepted]


class Relay:
    """Moves outbox events to SNS until stopped; ``wake()`` when new events may exist."""

    log = Logger()

    def __init__(self, db, publish, blocking, reactor, batch=100, poll_interval=0.2, backoff_max=30.0,
                 subscribed=None, hold=1.0, beacon=None, beacon_interval=10.0):
        self.db = db
        self.publish = publish
        self.blocking = blocking
        self.reactor = reactor
        self.batch = batch
        self.poll_interval = poll_interval
        self.backoff = Backoff(0.2, backoff_max)
        self.alarm = Alarm(reactor)
        self.subscribed = subscribed
        self.hold = hold
        self.beacon = beacon
        self.beacon_interval = beacon_interval
        self.next_beacon = 0.0
        self.holding = False  # False, or since when (reactor seconds) the topic has had no subscription
        self.warned = False
        self.running = False
        self.sent = 0
        self.refused = 0
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

    @staticmethod
    def _claim(cursor, limit, now_ms):
        """Claimed rows, screened (refusals settled) and numbered: ``(numbered rows, refusals, claimed)``."""
        rows = outbox.claim(cursor, limit)
        good, refusals = sequence.screen(cursor, rows, now_ms)
        return sequence.number(cursor, good), refusals, len(rows)

    @staticmethod
    def _settle(cursor, numbered, sent, failed, now_ms):
        outbox.settle(cursor, sent, failed, now_ms)
        sequence.note_sent(cursor, _sent_seqs(numbered, sent))

    def _send(self, numbered):
        """Blocking: publish ``numbered`` unless the topic has no subscription (then nothing is sent)."""
        try:
            if self.subscribed is not None and not self.subscribed():
                return [], [row[0] for row in numbered], NoSubscribers("the topic has no subscription")
        except Exception as exc:  # botocore: SNS unreachable
            return [], [row[0] for row in numbered], exc
        return self.publish(numbered)

    def _in_transaction(self, cursor, now_ms):
        numbered, refusals, claimed = self._claim(cursor, self.batch, now_ms)
        if not numbered:
            return claimed, None, refusals
        sent, failed, error = self._send(numbered)
        self._settle(cursor, numbered, sent, failed, now_ms)
        return _outcome(sent, failed, error) + (refusals,)

    @defer.inlineCallbacks
    def relay_once(self):
        """
        One batch; fire with ``(events sent or refused, error or None)``;
        the error is NoSubscribers (nothing marked sent) while the topic has
        no subscription.
        """
        if self.db.dialect == POSTGRESQL:
            # rows stay locked while they are sent: other relays skip them
            count, error, refusals = yield self.db.run(self._in_transaction, self._now_ms())
        else:
            numbered, refusals, count = yield self.db.run(self._claim, self.batch, self._now_ms())
            error = None
            if numbered:
                sent, failed, error = yield self.blocking(self._send, numbered)
                yield self.db.run(self._settle, numbered, sent, failed, self._now_ms())
                count, error = _outcome(sent, failed, error)
                count += len(refusals)
        self._report(refusals)
        return count, error

    def _report(self, refusals):
        for username, action, version, field, reason in refusals:
            self.refused += 1
            self.log.error("usersync relay: refused {action} of user {username!r} (version {version}): field "
                           "{field}: {reason}; no client could store it, so it is not relayed (kept in the outbox "
                           "as refused)", action=action, username=username, version=version, field=field,
                           reason=reason)

    @defer.inlineCallbacks
    def _announce(self):
        """Publish a beacon when one is due; a failure is logged, the next is tried an interval later."""
        now = self.reactor.seconds()
        if self.beacon is None or now < self.next_beacon:
            return
        self.next_beacon = now + self.beacon_interval
        try:
            if self.subscribed is not None and not (yield self.blocking(self.subscribed)):
                return
            epoch, high = yield self.db.run(sequence.high)
            yield self.blocking(self.beacon, epoch, high)
        except Exception as exc:
            self.log.warn("usersync relay: beacon not sent: {error}", error=exc)

    def _until_next(self):
        if self.beacon is None:
            return self.poll_interval
        return max(0.01, min(self.poll_interval, self.next_beacon - self.reactor.seconds()))

    @defer.inlineCallbacks
    def _loop(self):
        last_purge = 0
        while self.running:
            try:
                count, error = yield self.relay_once()
            except Exception as exc:
                count, error = 0, exc
            if isinstance(error, NoSubscribers):
                # a node's own client subscribes its queue moments after the relay starts: warn only when the
                # topic stays without a subscription past the start-up race (backoff.QUIET)
                if self.holding is False:
                    self.holding = self.reactor.seconds()
                    self.warned = False
                if not self.warned and self.reactor.seconds() - self.holding >= QUIET:
                    self.warned = True
                    self.log.warn("usersync relay: the topic has no subscription; holding every event (none is "
                                  "marked sent) until a client's queue subscribes")
                yield pause(self.reactor, self.hold)
                continue
            if self.holding is not False and error is None:
                self.holding = False
                (self.log.info if self.warned else self.log.debug)("usersync relay: a subscription is there; "
                                                                   "relaying")
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
            yield self._announce()
            if self.reactor.seconds() - last_purge > 3600:
                last_purge = self.reactor.seconds()
                self.db.run(outbox.purge, self._now_ms() - PURGE_AFTER_MS).addErrback(
                    lambda failure: self.log.warn("usersync outbox purge failed: {f}", f=failure.value))
            yield self.alarm.sleep(self._until_next())
