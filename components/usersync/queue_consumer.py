"""
The client side's bridge from this client's SQS queue into its own
``auth_user`` table.

Per receive (up to 10 messages; several pollers long-poll in parallel, all
boto3 calls in a thread pool): every message is validated; the valid ones
are applied in one transaction under the version rule (``replica``), which
also notes their place in the master's sequence (``convergence``); only
after the commit are they deleted from the queue, in one batch call. A batch
that takes longer than half the visibility timeout gets its visibility
extended. While the client database is unavailable (down, locked) the
batch is held, not released: the poller keeps its visibility extended and
retries the transaction with backoff, and receives nothing new, so an outage
never spends the messages' receive counts and never sends a valid change to
the dead-letter queue. A message that is malformed or cannot be applied is
logged with its id and not deleted: SQS hands it out again and, after the
queue's ``maxReceiveCount``, moves it to the dead-letter queue. A message
that is not the master's (no valid signature, an impossible version:
:class:`messages.Refused`) is moved to the dead-letter queue at once
(deleted when the queue has none) with one log line, and never touches the
database; should SQS hand the same message out again (its visibility ran
out under load before the delete), the copy is deleted without a second
move or log line. Nothing stops the pollers but ``stop()``.
"""

from collections import OrderedDict

from twisted.internet import defer
from twisted.logger import Logger

from components.core.backoff import Backoff, pause
from components.db.database import StorageUnavailable
from components.usersync import convergence, replica
from components.usersync.fields import DEFAULT_FIELDS
from components.usersync.messages import MessageError, Refused, parse_items
from components.usersync.provision import FIFO_SUFFIX

# ids of refused messages remembered, to recognise SQS handing one out again
REMEMBERED_REFUSALS = 4096


class VisibilityKeeper:
    """While a batch is applied or dead-lettered, push its messages' visibility timeout out every half period."""

    log = Logger()

    def __init__(self, bridge, batch):
        self.bridge = bridge
        self.entries = [{"Id": str(index), "ReceiptHandle": message["ReceiptHandle"],
                         "VisibilityTimeout": bridge.visibility} for index, message in enumerate(batch)]
        self.call = bridge.reactor.callLater(bridge.visibility / 2.0, self._extend)

    def _extend(self):
        self.bridge.extensions += 1
        d = self.bridge.blocking(self.bridge.sqs.change_message_visibility_batch,
                                 QueueUrl=self.bridge.queue_url, Entries=self.entries)
        d.addErrback(lambda failure: self.log.warn("usersync visibility extension failed: {e}",
                                                   e=failure.value))
        self.call = self.bridge.reactor.callLater(self.bridge.visibility / 2.0, self._extend)

    def stop(self):
        if self.call.active():
            self.call.cancel()


class Bridge:
    """
    SQS -> client database. ``on_applied(changes)`` is called after each
    commit; ``verifier`` checks the master's signature on every message;
    refused messages go to ``dead_letter_url``; only the ``tracked`` user
    fields are stored.
    """

    log = Logger()

    def __init__(self, sqs, queue_url, db, blocking, reactor, on_applied=lambda changes: None,
                 pollers=2, wait=20, visibility=30, retry_max=10.0, random=None, *, verifier,
                 dead_letter_url=None, tracked=DEFAULT_FIELDS, table=None):
        self.sqs = sqs
        self.table = table
        self.queue_url = queue_url
        self.verifier = verifier
        self.dead_letter_url = dead_letter_url
        self.tracked = tracked
        self.db = db
        self.blocking = blocking
        self.reactor = reactor
        self.on_applied = on_applied
        self.pollers = pollers
        self.wait = wait
        self.visibility = visibility
        self.retry_max = retry_max
        self.jitter = {} if random is None else {"random": random}
        self.running = False
        self.applied = self.skipped = self.rejected = self.extensions = self.held = self.refused = 0
        self.loops = []
        self.moving = set()
        self.moved = OrderedDict()

    def start(self):
        self.running = True
        self.loops = [self._poll(index) for index in range(self.pollers)]

    def stop(self):
        self.running = False

    @defer.inlineCallbacks
    def _poll(self, index):
        backoff = Backoff(0.2, 10.0, **self.jitter)
        while self.running:
            try:
                response = yield self.blocking(
                    self.sqs.receive_message, QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait, AttributeNames=["ApproximateReceiveCount"])
                batch = response.get("Messages") or []
                if batch and self.running:
                    yield self.handle(batch)
                backoff.reset()
            except Exception as exc:
                delay = backoff.next()
                self.log.warn("usersync poller {index}: {error}; retrying in {delay:.1f}s",
                              index=index, error=exc, delay=delay)
                yield pause(self.reactor, delay)

    def _reject(self, message, reason):
        self.rejected += 1
        self.log.warn("usersync message {id} rejected (receive {count}): {reason};"
                      " left for the dead-letter queue",
                      id=message.get("MessageId"), reason=reason,
                      count=message.get("Attributes", {}).get("ApproximateReceiveCount", "?"))

    @defer.inlineCallbacks
    def handle(self, batch):
        """Validate, apply, delete one received batch; fire with the changes that took effect."""
        valid, refused = [], []
        for message in batch:
            try:
                # a pack of events is applied with its message, as if they came one by one
                valid.append((message, parse_items(message.get("Body"), self.verifier, self.tracked)))
            except Refused as exc:
                refused.append((message, exc))
            except MessageError as exc:
                self._reject(message, exc)
        refused, again = self._first_refusals(refused)
        if again:
            self.log.debug("usersync: {n} refused messages handed out again; deleted", n=len(again))
            yield self._delete(again)
        if refused:
            # held invisible while they are moved: a slow dead-letter queue must not hand them out again
            keeper = VisibilityKeeper(self, [message for message, _ in refused])
            try:
                yield self._dead_letter(refused)
            finally:
                keeper.stop()
        if not valid:
            return []
        keeper = VisibilityKeeper(self, [message for message, _ in valid])
        try:
            applied, done = yield self._apply_holding(valid)
        finally:
            keeper.stop()
        yield self._delete(done)
        self.applied += len(applied)
        done_ids = {id(message) for message in done}
        self.skipped += sum(len(items) for message, items in valid if id(message) in done_ids) - len(applied)
        if applied:
            self.on_applied(applied)
        return applied

    def _first_refusals(self, refused):
        """
        ``(to move, to delete)``: a refused message already moved is only
        deleted; one another poller is moving right now is left alone (it
        comes back once that move is done).
        """
        first, again = [], []
        for message, reason in refused:
            message_id = message.get("MessageId")
            if message_id in self.moved:
                again.append(message)
            elif message_id not in self.moving:
                self.moving.add(message_id)
                first.append((message, reason))
        return first, again

    @defer.inlineCallbacks
    def _dead_letter(self, refused):
        """Move messages that are not the master's to the dead-letter queue now, one log line each."""
        moved = []
        for message, reason in refused:
            self.refused += 1
            where = "moved to the dead-letter queue" if self.dead_letter_url else "deleted (no dead-letter queue)"
            message_id = message.get("MessageId")
            try:
                if self.dead_letter_url:
                    yield self.blocking(self.sqs.send_message, **dead_letter_entry(
                        self.dead_letter_url, message, reason))
                moved.append(message)
                self._remember_moved(message_id)
            except Exception as exc:
                where = "left on the queue: dead-letter queue unreachable ({})".format(exc)
            finally:
                self.moving.discard(message_id)
            self.log.warn("usersync message {id} rejected, not the master's: {reason}; {where}",
                          id=message_id, reason=reason, where=where)
        yield self._delete(moved)

    def _remember_moved(self, message_id):
        self.moved[message_id] = True
        while len(self.moved) > REMEMBERED_REFUSALS:
            self.moved.popitem(last=False)

    @defer.inlineCallbacks
    def _apply_holding(self, valid):
        """``_apply``, retried with backoff while the database is unavailable and the bridge runs."""
        backoff = Backoff(0.5, self.retry_max, **self.jitter)
        while True:
            try:
                result = yield self._apply(valid)
                if backoff.failures:
                    self.log.info("usersync database back; held batch of {n} applied", n=len(valid))
                return result
            except StorageUnavailable as exc:
                if not self.running:
                    raise
                delay = backoff.next()
                if backoff.failures == 1:
                    self.held += 1
                    self.log.warn("usersync database unavailable ({error}); holding a batch of {n}"
                                  " invisible and retrying", error=exc, n=len(valid))
                else:
                    self.log.debug("usersync database still unavailable; retry in {delay:.1f}s",
                                   delay=delay)
                yield pause(self.reactor, delay)

    @defer.inlineCallbacks
    def _apply(self, valid):
        now_ms = int(self.reactor.seconds() * 1000)
        try:
            applied = yield self.db.run(convergence.apply, [item for _, items in valid for item in items], now_ms,
                                        self.table)
            return applied, [message for message, _ in valid]
        except StorageUnavailable:
            raise
        except Exception as exc:
            self.log.warn("usersync batch of {n} failed ({error}); applying one by one", n=len(valid),
                          error=exc)
        applied, done = [], []
        for message, items in valid:
            try:
                applied += yield self.db.run(convergence.apply, items, now_ms, self.table)
                done.append(message)
            except StorageUnavailable:
                raise
            except Exception as exc:
                self._reject(message, "cannot apply: {}".format(exc))
        return applied, done

    @defer.inlineCallbacks
    def _delete(self, done):
        if not done:
            return
        entries = [{"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                   for index, message in enumerate(done)]
        try:
            response = yield self.blocking(self.sqs.delete_message_batch, QueueUrl=self.queue_url,
                                           Entries=entries)
        except Exception as exc:
            # applied already: a redelivery is a no-op under the version rule
            self.log.warn("usersync delete of {n} messages failed: {error}", n=len(entries), error=exc)
            return
        for failure in response.get("Failed", []):
            self.log.warn("usersync delete failed for entry {id}: {code}", id=failure.get("Id"),
                          code=failure.get("Code"))


def dead_letter_entry(url, message, reason):
    """
    ``send_message`` arguments that put a refused message's body on the
    dead-letter queue ``url``, with the reason and its id on the client's
    queue (``refused_message_id``: the id the log line names) as attributes.
    """
    attributes = {"refused": str(reason)[:256], "refused_message_id": str(message.get("MessageId"))}
    entry = {"QueueUrl": url, "MessageBody": message.get("Body") or "(empty)",
             "MessageAttributes": {name: {"DataType": "String", "StringValue": value}
                                   for name, value in attributes.items()}}
    if url.endswith(FIFO_SUFFIX):
        entry.update(MessageGroupId="refused", MessageDeduplicationId=str(message.get("MessageId"))[:128])
    return entry


def event_for(change):
    """The ``users.changed`` payload for an applied change (tracked fields only, never a password)."""
    value = {field: change.user[field] for field in replica.PROFILE if field in change.user}
    value.update(action=change.action, version=change.version)
    return {"value": value, "seq": change.version, "ts": change.ts}
