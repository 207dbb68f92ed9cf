"""
Snapshot requests: the way back from a client to the master, which share
nothing but SNS and SQS in a production split.

- the master reads its request queue (``<topic>-requests``, made by
  provisioning; ``USERSYNC_REQUEST_QUEUE_URL`` names another) with
  :class:`RequestListener` and queues a snapshot for what it receives
  (coalesced: one snapshot answers every request that came before it
  began; none while the previous one's end marker is still unsent), and
  names the queue in its beacons;
- a client's :class:`GapWatch` looks every ``interval`` seconds whether its
  place in the master's sequence has been stuck for ``grace`` seconds
  (:func:`convergence.due`) and then sends one request there, again after
  ``retry`` seconds while still stuck.

A request asks for a snapshot and carries nothing else the master acts on;
the master answers only requests naming its epoch and a hole below what it
sent (:mod:`components.usersync.master`), so a forged one costs at most a
snapshot per ``min_interval``, which clients that hold every version ignore. Blocking boto3 calls go through
``blocking``.
"""

from twisted.internet import defer, task
from twisted.logger import Logger

from components.core.backoff import Backoff, pause
from components.usersync import convergence, messages


def topic_name_of(topic_arn):
    """The topic's name, the last part of its ARN."""
    return topic_arn.rsplit(":", 1)[-1]


def find_queue(sqs, name):
    """The URL of the queue ``name``, or None when there is none (blocking)."""
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return None


class RequestListener:
    """
    Long-polls ``queue_url``; for each receive holding requests calls
    ``snapshot(requests)`` (a Deferred; ``requests`` the parsed ones) unless
    one ran less than ``min_interval`` seconds ago (then it waits), and
    deletes what it received.
    """

    log = Logger()

    def __init__(self, sqs, queue_url, blocking, reactor, snapshot, wait=20, min_interval=5.0):
        self.sqs = sqs
        self.queue_url = queue_url
        self.blocking = blocking
        self.reactor = reactor
        self.snapshot = snapshot
        self.wait = wait
        self.min_interval = min_interval
        self.running = False
        self.last = None
        self.received = self.answered = 0
        self.done = None

    def start(self):
        self.running = True
        self.done = self._loop()
        return self.done

    def stop(self):
        self.running = False

    @defer.inlineCallbacks
    def _loop(self):
        backoff = Backoff(0.5, 30.0)
        while self.running:
            try:
                response = yield self.blocking(self.sqs.receive_message, QueueUrl=self.queue_url,
                                               MaxNumberOfMessages=10, WaitTimeSeconds=self.wait)
                batch = response.get("Messages") or []
                if batch and self.running:
                    yield self.handle(batch)
                backoff.reset()
            except Exception as exc:
                delay = backoff.next()
                self.log.warn("usersync request queue: {error}; retrying in {delay:.1f}s", error=exc, delay=delay)
                yield pause(self.reactor, delay)

    @defer.inlineCallbacks
    def handle(self, batch):
        """Answer one receive: at most one snapshot, then the messages deleted."""
        found = []
        for message in batch:
            try:
                found.append(messages.parse_request(message.get("Body")))
            except messages.MessageError as exc:
                self.log.warn("usersync request queue: message {id} ignored: {error}", id=message.get("MessageId"),
                              error=exc)
        self.received += len(found)
        if found:
            if self.last is not None and self.reactor.seconds() - self.last < self.min_interval:
                yield pause(self.reactor, self.min_interval - (self.reactor.seconds() - self.last))
            self.last = self.reactor.seconds()
            yield self.snapshot(found)
            self.answered += 1
        yield self.blocking(self.sqs.delete_message_batch, QueueUrl=self.queue_url, Entries=[
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(batch)])


class GapWatch:
    """
    A client's check for holes in the master's sequence (see the module
    docstring). ``request_url``: a configured request queue (else the one
    the master's beacons name); ``client``: this client's name, for the
    master's log.
    """

    log = Logger()

    def __init__(self, db, sqs, blocking, reactor, client, grace=10.0, retry=60.0, request_url=None,
                 interval=1.0):
        self.db = db
        self.sqs = sqs
        self.blocking = blocking
        self.reactor = reactor
        self.client = client
        self.grace = grace
        self.retry = retry
        self.request_url = request_url
        self.interval = interval
        self.requests = 0
        self.loop = None
        self._unreachable_logged = False

    def start(self):
        self.loop = task.LoopingCall(self.check)
        self.loop.clock = self.reactor
        self.loop.start(self.interval, now=False).addErrback(
            lambda failure: self.log.failure("usersync gap watch stopped", failure=failure))

    def stop(self):
        if self.loop is not None and self.loop.running:
            self.loop.stop()

    @defer.inlineCallbacks
    def check(self):
        """One look; a snapshot request when one is due. Never fails (errors are logged, tried next time)."""
        now_ms = int(self.reactor.seconds() * 1000)
        try:
            due = yield self.db.run(convergence.due, now_ms, int(self.grace * 1000), int(self.retry * 1000))
            if due is None:
                return
            url = self.request_url or due["reply"]
            if not url:
                if not self._unreachable_logged:
                    self._unreachable_logged = True
                    self.log.error("usersync client: {missing} messages of the master missing (held up to {mark},"
                                   " {high} sent) and no request queue known (no beacon named one, "
                                   "USERSYNC_REQUEST_QUEUE_URL unset): cannot ask for a snapshot", **due)
                return
            body = messages.request(self.client, due["epoch"], due["mark"], due["high"],
                                    "{} missing".format(due["missing"]))
            yield self.blocking(self.sqs.send_message, QueueUrl=url, MessageBody=body)
            self.requests += 1
            self.log.warn("usersync client: {missing} messages of the master missing (held up to {mark}, {high} "
                          "sent); snapshot requested", **due)
        except Exception as exc:
            self.log.warn("usersync client: gap check failed: {error}", error=exc)
