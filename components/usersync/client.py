"""
The client side: a bridge from this client's SQS queue into its own
``auth_user`` table, and the push of each change to that user's sessions.

Per receive (up to 10 messages; several pollers long-poll in parallel, all
boto3 calls in a thread pool): every message is validated; the valid ones
are applied in one transaction under the version rule (``replica``); only
after the commit are they deleted from the queue, in one batch call. A batch
that takes longer than half the visibility timeout gets its visibility
extended. While the client database is unavailable (down, locked) the
batch is held, not released: the poller keeps its visibility extended and
retries the transaction with backoff, and receives nothing new, so an outage
never spends the messages' receive counts and never sends a valid change to
the dead-letter queue. A message that is malformed or cannot be applied is
logged with its id and not deleted: SQS hands it out again and, after the
queue's ``maxReceiveCount``, moves it to the dead-letter queue. Nothing
stops the pollers but ``stop()``.

Changes that took effect are published on ``users.changed`` with
``eligible_authid=[username]`` (through ``components.userrelay``, so that
linked client nodes deliver them too); ``users.me`` answers the caller's
profile (shared registration: one per container worker). With
``E2E_ENCRYPTION=on`` both carry the profile sealed for that user
(``components.e2e``): the router and other sessions see only ciphertext.
"""

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer, task
from twisted.logger import Logger

from components import directory, errors, userrelay
from components.base import HubComponent
from components.e2e import keys as e2e_keys
from components.e2e.service import PrivatePayloads
from components.settings import as_bool, as_int, database_url
from components.storage import Database, StorageUnavailable, migrate_all
from components.usersync import CHANGED, ME, provision, replica
from components.usersync.aws import BlockingPool, make_client, region_for
from components.usersync.messages import MessageError, parse
from components.usersync.retry import Backoff, persist

SCHEMAS = [("directory", directory.MIGRATIONS), ("usersync_client", replica.MIGRATIONS),
           ("e2e_keys", e2e_keys.MIGRATIONS)]


class VisibilityKeeper:
    """While a batch is being applied, push its messages' visibility timeout out every half period."""

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
    """SQS -> client database. ``on_applied(changes)`` is called after each commit."""

    log = Logger()

    def __init__(self, sqs, queue_url, db, blocking, reactor, on_applied=lambda changes: None,
                 pollers=2, wait=20, visibility=30, retry_max=10.0):
        self.sqs = sqs
        self.queue_url = queue_url
        self.db = db
        self.blocking = blocking
        self.reactor = reactor
        self.on_applied = on_applied
        self.pollers = pollers
        self.wait = wait
        self.visibility = visibility
        self.retry_max = retry_max
        self.running = False
        self.applied = self.skipped = self.rejected = self.extensions = self.held = 0
        self.loops = []

    def start(self):
        self.running = True
        self.loops = [self._poll(index) for index in range(self.pollers)]

    def stop(self):
        self.running = False

    @defer.inlineCallbacks
    def _poll(self, index):
        backoff = Backoff(0.2, 10.0)
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
                yield task.deferLater(self.reactor, delay, lambda: None)

    def _reject(self, message, reason):
        self.rejected += 1
        self.log.warn("usersync message {id} rejected (receive {count}): {reason};"
                      " left for the dead-letter queue",
                      id=message.get("MessageId"), reason=reason,
                      count=message.get("Attributes", {}).get("ApproximateReceiveCount", "?"))

    @defer.inlineCallbacks
    def handle(self, batch):
        """Validate, apply, delete one received batch; fire with the changes that took effect."""
        valid = []
        for message in batch:
            try:
                valid.append((message, parse(message.get("Body"))))
            except MessageError as exc:
                self._reject(message, exc)
        if not valid:
            return []
        keeper = VisibilityKeeper(self, [message for message, _ in valid])
        try:
            applied, done = yield self._apply_holding(valid)
        finally:
            keeper.stop()
        yield self._delete(done)
        self.applied += len(applied)
        self.skipped += len(done) - len(applied)
        if applied:
            self.on_applied(applied)
        return applied

    @defer.inlineCallbacks
    def _apply_holding(self, valid):
        """``_apply``, retried with backoff while the database is unavailable and the bridge runs."""
        backoff = Backoff(0.5, self.retry_max)
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
                yield task.deferLater(self.reactor, delay, lambda: None)

    @defer.inlineCallbacks
    def _apply(self, valid):
        now_ms = int(self.reactor.seconds() * 1000)
        try:
            applied = yield self.db.run(replica.apply_changes, [change for _, change in valid], now_ms)
            return applied, [message for message, _ in valid]
        except StorageUnavailable:
            raise
        except Exception as exc:
            self.log.warn("usersync batch of {n} failed ({error}); applying one by one", n=len(valid),
                          error=exc)
        applied, done = [], []
        for message, change in valid:
            try:
                applied += yield self.db.run(replica.apply_changes, [change], now_ms)
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


def event_for(change):
    """The ``users.changed`` payload for an applied change (tracked fields only, never a password)."""
    value = {field: change.user[field] for field in replica.PROFILE if field in change.user}
    value.update(action=change.action, version=change.version)
    return {"value": value, "seq": change.version, "ts": change.ts}


class UserSyncClient(HubComponent):
    """
    Registers ``users.me`` and publishes ``users.changed`` (unless
    ``USERSYNC_PUSH`` is off), and runs the bridge when ``SQS_QUEUE_URL`` is
    set (or ``USERSYNC_PROVISION`` is on).
    """

    db = None
    bridge = None
    pool = None
    ready = False
    stopped = False

    @defer.inlineCallbacks
    def start(self):
        """
        Read the settings and register ``users.me``; the database migration
        and the bridge start in the background and retry, so a slow or
        unreachable database or queue never keeps the node from starting.
        """
        try:
            self.push = as_bool({"v": self.setting("USERSYNC_PUSH")}, "v", True)
            self.auto = as_bool({"v": self.setting("USERSYNC_PROVISION")}, "v", False)
            self.pollers = as_int({"v": self.setting("USERSYNC_POLLERS")}, "v", 2, minimum=1, maximum=64)
            self.wait = as_int({"v": self.setting("USERSYNC_WAIT")}, "v", 20, minimum=0, maximum=20)
            url = self.setting("DATABASE_URL") or database_url("client", directory=self.node_directory)
            self.db = Database(url)
            self.private = self._private_payloads()
        except ValueError as exc:  # SettingsError, StorageConfigError, KeyConfigError
            self.log.error("usersync client off: {error}", error=exc)
            return
        if self.push:
            yield self.register(self.me, ME,
                                options=RegisterOptions(details_arg="details", invoke="roundrobin"))
        # the common case: the database answers now, and the component is ready when the node is
        try:
            yield migrate_all(self.db, SCHEMAS)
            self.ready = True
        except Exception as exc:
            self.log.warn("usersync client: database not ready ({error}); retrying in the background",
                          error=exc)
        self._prepared = self._prepare(self.setting("SQS_QUEUE_URL")).addErrback(
            lambda failure: self.log.failure("usersync client: bridge did not start", failure=failure))

    def _private_payloads(self):
        """Sealing of per-user states: on with E2E_ENCRYPTION=on, a pass-through otherwise."""
        enabled = as_bool({"v": self.setting("E2E_ENCRYPTION")}, "v", False)
        if not enabled:
            return PrivatePayloads(None, enabled=False)
        environ = {key: self.setting(key) for key in ("E2E_KEK", "E2E_KEK_FILE")}
        grace = as_int({"v": self.setting("E2E_KEY_GRACE")}, "v", e2e_keys.DEFAULT_GRACE, minimum=0)
        user_keys = e2e_keys.UserKeys(self.db, e2e_keys.load_kek(environ, self.node_directory), grace=grace,
                                      clock=self.reactor.seconds)
        self.log.info("usersync client: users.changed and users.me are end-to-end encrypted")
        return PrivatePayloads(user_keys, enabled=True)

    def _running(self):
        return not self.stopped

    @defer.inlineCallbacks
    def _prepare(self, queue):
        if not self.ready:
            yield persist(self.reactor, lambda: migrate_all(self.db, SCHEMAS), self.log,
                          "usersync client database", self._running)
            self.ready = not self.stopped
        if self.stopped:
            return
        if not queue and not self.auto:
            self.log.info("usersync client: users.me ready; bridge off (SQS_QUEUE_URL unset)")
            return
        self.pool = BlockingPool(self.reactor, self.pollers + 4, "usersync-sqs")
        yield self._start_bridge(queue, self.pollers)

    @defer.inlineCallbacks
    def _start_bridge(self, queue, pollers):
        wait = self.wait
        endpoint = self.setting("AWS_ENDPOINT_URL") or None
        sqs = yield self.pool.run(make_client, "sqs", endpoint, region_for(queue), read_timeout=wait + 10,
                                  pool=pollers + 4)
        if not queue:
            queue = yield self._provision(sqs, endpoint)
            if not queue:
                return
        attributes = yield persist(
            self.reactor, lambda: self.pool.run(sqs.get_queue_attributes, QueueUrl=queue,
                                                AttributeNames=["VisibilityTimeout"]),
            self.log, "usersync queue", self._running)
        visibility = int(attributes["Attributes"]["VisibilityTimeout"]) if attributes else 30
        if self.stopped:
            return
        self.bridge = Bridge(sqs, queue, self.db, self.pool.run, self.reactor, self._publish,
                             pollers=pollers, wait=wait, visibility=max(visibility, 2))
        self.bridge.start()
        self.log.info("usersync client: {pollers} pollers on {queue}", pollers=pollers, queue=queue)

    @defer.inlineCallbacks
    def _provision(self, sqs, endpoint):
        """Dev mode: create the topic and this client's queue (idempotent) once the emulator answers."""
        sns = yield self.pool.run(make_client, "sns", endpoint, None)
        plan = provision.Plan(self.setting("USERSYNC_TOPIC_NAME", "reactive-users"),
                              [self.setting("USERSYNC_CLIENT_NAME", "dev")],
                              max_receives=as_int({"v": self.setting("USERSYNC_MAX_RECEIVES")}, "v", 5,
                                                  minimum=1))
        result = yield persist(self.reactor, lambda: self.pool.run(provision.provision, sns, sqs, plan),
                               self.log, "usersync emulator", self._running)
        if result is None:
            return None
        queue = result["clients"][plan.clients[0]]["queue_url"]
        self.log.info("usersync client: provisioned queue {url}", url=queue)
        return queue

    @defer.inlineCallbacks
    def _publish(self, changes):
        if not self.push:
            return
        for change in changes:  # in order: sealing reads the user's key, one change after the other
            try:
                event = yield self.private.seal_state(change.username, CHANGED, event_for(change))
                # through users.relay: Crossbar's rlinks carry it to every linked node, where
                # components.userrelay republishes it on users.changed for that user's sessions only
                userrelay.publish_for_user(self, change.username, event)
            except Exception as exc:
                self.log.warn("usersync: publishing {uri} failed: {error}", uri=CHANGED, error=exc)

    def me(self, details=None):
        """The caller's profile from this client's table: ``{"value": profile | None, "seq", "ts"}``."""
        username = getattr(details, "caller_authid", None)
        if not self.ready:
            raise ApplicationError(errors.UNAVAILABLE, "user table not ready yet")
        if not username:
            raise ApplicationError(errors.NOT_AUTHORIZED, "users.me needs an authenticated caller")

        def answer(result):
            user, version = result
            if user is not None:
                user.update(action="snapshot", version=version)
            # the same state as users.changed carries, so sealed for that topic (also "no profile yet")
            return self.private.seal_state(username, CHANGED, {"value": user, "seq": version,
                                                                "ts": int(self.reactor.seconds() * 1000)})

        def unavailable(failure):
            failure.trap(StorageUnavailable)
            raise ApplicationError(errors.UNAVAILABLE, "user table unavailable")
        return self.db.run(replica.profile, username).addCallback(answer).addErrback(unavailable)

    def onLeave(self, details):
        self.stopped = True
        if self.bridge is not None:
            self.bridge.stop()
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        HubComponent.onLeave(self, details)
