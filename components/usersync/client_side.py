"""
The client side's router component: runs the queue consumer (:mod:`queue_consumer`) from
this client's SQS queue into its own ``auth_user`` table, and pushes each
change to that user's sessions.

Changes that took effect are published on ``users.changed`` with
``eligible_authid=[username]`` (through :mod:`components.usersync.user_event_relay`,
so that linked client nodes deliver them too); ``users.me`` answers the
caller's profile (shared registration: one per container worker). With
``E2E_ENCRYPTION=on`` both carry the profile sealed for that user
(``components.e2e``): the router and other sessions see only ciphertext.
"""

from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer

from components.auth import credentials, directory
from components.core.arguments import no_arguments
from components.core.backoff import persist
from components.core.component import HubComponent
from components.core.errors import DATABASE_UNAVAILABLE, NotAuthorized, Unavailable
from components.db import db_settings
from components.db.database import Database, StorageUnavailable
from components.db.migrations import migrate_all
from components.e2e import e2e_settings, keys as e2e_keys
from components.e2e.service import PrivatePayloads
from components.usersync import CHANGED, ME, convergence, provision, replica, revocation_sync, message_signing, user_event_relay, usersync_settings
from components.usersync.aws import BlockingPool, make_client, region_for
from components.usersync.queue_consumer import Bridge, event_for
from components.usersync.requests import GapWatch

def schemas(user_table=directory.DEFAULT_USER_TABLE):
    """A client database's user-sync schemas, its copy of the users in ``user_table``."""
    return [("directory", directory.client_migrations(user_table)), ("usersync_client", replica.MIGRATIONS),
            ("e2e_keys", e2e_keys.MIGRATIONS), ("credentials", credentials.MIGRATIONS)]


# the schemas with the default user table (auth_user)
SCHEMAS = schemas()


class UserSyncClient(HubComponent):
    """
    Registers ``users.me`` and publishes ``users.changed`` (unless
    ``USERSYNC_PUSH`` is off), and runs the bridge when ``SQS_QUEUE_URL`` is
    set (or ``USERSYNC_PROVISION`` is on).
    """

    bounded_procedures = frozenset([ME])
    db = None
    bridge = None
    gaps = None
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
            settings = self.settings
            self.push = settings.get(usersync_settings.USERSYNC_PUSH)
            self.auto = settings.get(usersync_settings.USERSYNC_PROVISION)
            self.pollers = settings.get(usersync_settings.USERSYNC_POLLERS)
            self.wait = settings.get(usersync_settings.USERSYNC_WAIT)
            self.queue = settings.get(usersync_settings.SQS_QUEUE_URL)
            self.endpoint = settings.get(usersync_settings.AWS_ENDPOINT_URL) or None
            self.topic_name = settings.get(usersync_settings.USERSYNC_TOPIC_NAME)
            self.client_name = settings.get(usersync_settings.USERSYNC_CLIENT_NAME)
            self.max_receives = settings.get(usersync_settings.USERSYNC_MAX_RECEIVES)
            # a hole in the master's sequence older than this asks for a snapshot (convergence.py)
            self.gap_grace = settings.get(usersync_settings.USERSYNC_GAP_GRACE)
            self.request_url = settings.get(usersync_settings.USERSYNC_REQUEST_QUEUE_URL)
            self.db = Database(settings.get(db_settings.DATABASE_URL))
            self.private = self._private_payloads()
            # only the master's messages are applied: its public key(s), never a key that could sign
            self.verifier = message_signing.verifier_from(settings)
            # what this client stores: the staff and superuser flags only when named here
            self.tracked = settings.get(usersync_settings.USERSYNC_FIELDS)
            self.user_table = directory.user_table(settings)
            self.schemas = schemas(self.user_table)
        except ValueError as exc:  # SettingsError, StorageConfigError, KeyConfigError
            self.log.error("usersync client off: {error}", error=exc)
            return
        if self.push:
            # the callee's view of the caller, named so that no caller keyword collides with it
            yield self.register(self.me, ME,
                                options=RegisterOptions(details_arg="call_details", invoke="roundrobin"))
        # the common case: the database answers now, and the component is ready when the node is
        try:
            yield migrate_all(self.db, self.schemas)
            if self.queue or self.auto:
                # a bridge will run: /health/ready reports converging until it holds the master's messages
                yield self.db.run(convergence.begin, int(self.reactor.seconds() * 1000))
            self.ready = True
        except Exception as exc:
            self.log.warn("usersync client: database not ready ({error}); retrying in the background",
                          error=exc)
        self._prepared = self._prepare(self.queue).addErrback(
            lambda failure: self.log.failure("usersync client: bridge did not start", failure=failure))

    def _private_payloads(self):
        """Sealing of per-user states: on with E2E_ENCRYPTION=on, a pass-through otherwise."""
        settings = self.settings
        if not settings.get(e2e_settings.E2E_ENCRYPTION):
            return PrivatePayloads(None, enabled=False)
        grace = settings.get(e2e_settings.E2E_KEY_GRACE)
        # keys belong to the identity this database knows: the master's credential version, copied by the sync
        def identity(cursor, username):
            return credentials.version_of(cursor, username)[0]
        user_keys = e2e_keys.UserKeys(self.db, e2e_keys.load_kek(settings), grace=grace,
                                      clock=self.reactor.seconds, generation_of=identity)
        self.log.info("usersync client: users.changed and users.me are end-to-end encrypted")
        return PrivatePayloads(user_keys, enabled=True)

    def _running(self):
        return not self.stopped

    @defer.inlineCallbacks
    def _prepare(self, queue):
        if not self.ready:
            yield persist(self.reactor, lambda: migrate_all(self.db, self.schemas), self.log,
                          "usersync client database", self._running)
            self.ready = not self.stopped
        if self.stopped:
            return
        if not queue and not self.auto:
            self.log.info("usersync client: users.me ready; bridge off (SQS_QUEUE_URL unset)")
            return
        self.pool = BlockingPool(self.reactor, self.threads, "usersync-sqs")
        yield self._start_bridge(queue)

    @property
    def threads(self):
        """Blocking boto3 calls at once: one long poll per poller, and room for deletes and extensions."""
        return self.pollers + 4

    @defer.inlineCallbacks
    def _start_bridge(self, queue):
        sqs = yield self.pool.run(make_client, "sqs", self.endpoint, region_for(queue, settings=self.settings),
                                  read_timeout=self.wait + 10, pool=self.threads)
        if not queue:
            queue = yield self._provision(sqs)
            if not queue:
                return
        attributes = yield persist(
            self.reactor, lambda: self.pool.run(sqs.get_queue_attributes, QueueUrl=queue,
                                                AttributeNames=["VisibilityTimeout", "RedrivePolicy"]),
            self.log, "usersync queue", self._running)
        visibility = int(attributes["Attributes"]["VisibilityTimeout"]) if attributes else 30
        dead_letter = None
        if attributes:
            dead_letter = yield persist(
                self.reactor, lambda: self.pool.run(provision.dead_letter_url, sqs, attributes["Attributes"]),
                self.log, "usersync dead-letter queue", self._running)
        if self.stopped:
            return
        self.bridge = Bridge(sqs, queue, self.db, self.pool.run, self.reactor, self._publish,
                             pollers=self.pollers, wait=self.wait, visibility=max(visibility, 2),
                             verifier=self.verifier, dead_letter_url=dead_letter, tracked=self.tracked,
                             table=self.user_table.name)
        yield self.db.run(convergence.begin, int(self.reactor.seconds() * 1000))
        self.bridge.start()
        self.gaps = GapWatch(self.db, sqs, self.pool.run, self.reactor, self.client_name, grace=self.gap_grace,
                             retry=max(6 * self.gap_grace, 5.0), request_url=self.request_url,
                             interval=min(1.0, self.gap_grace / 2))
        self.gaps.start()
        self.log.info("usersync client: {pollers} pollers on {queue}; applying messages signed with {kids}{dev}",
                      pollers=self.pollers, queue=queue, kids=", ".join(sorted(self.verifier.keys)),
                      dev=" (this node's dev key: set USERSYNC_VERIFY_KEY_FILES on a client of a split)"
                      if message_signing.uses_dev_key(self.settings, message_signing.VERIFY_KEYS_SETTING) else "")

    @defer.inlineCallbacks
    def _provision(self, sqs):
        """Dev mode: create the topic and this client's queue (idempotent) once the emulator answers."""
        sns = yield self.pool.run(make_client, "sns", self.endpoint, None)
        plan = provision.Plan(self.topic_name, [self.client_name], max_receives=self.max_receives)
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
            if isinstance(change, revocation_sync.Revocation):
                continue  # the authenticator's watch ends the sessions; nothing for the user's pages
            try:
                event = yield self.private.seal_state(change.username, CHANGED, event_for(change))
                # through users.relay: Crossbar's rlinks carry it to every linked node, where
                # components.usersync.user_event_relay republishes it on users.changed for that user's sessions only
                user_event_relay.publish_for_user(self, change.username, event)
            except Exception as exc:
                self.log.warn("usersync: publishing {uri} failed: {error}", uri=CHANGED, error=exc)

    def me(self, /, *args, call_details=None, **kwargs):
        """
        The caller's profile from this client's table: ``{"value": profile | None, "seq", "ts"}``;
        ``users.me`` takes no arguments (invalid_argument otherwise).
        """
        no_arguments(ME, args, kwargs)
        username = getattr(call_details, "caller_authid", None)
        if not self.ready:
            raise Unavailable("user table not ready yet")
        if not username:
            raise NotAuthorized("users.me needs an authenticated caller")

        def answer(result):
            user, version = result
            if user is not None:
                user.update(action="snapshot", version=version)
            # the same state as users.changed carries, so sealed for that topic (also "no profile yet")
            return self.private.seal_state(username, CHANGED, {"value": user, "seq": version,
                                                                "ts": int(self.reactor.seconds() * 1000)})

        def unavailable(failure):
            failure.trap(StorageUnavailable)
            raise Unavailable(DATABASE_UNAVAILABLE)
        return self.db.run(replica.profile, username, self.user_table.name).addCallback(answer).addErrback(unavailable)

    def onLeave(self, details):
        self.stopped = True
        if self.bridge is not None:
            self.bridge.stop()
        if self.gaps is not None:
            self.gaps.stop()
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        HubComponent.onLeave(self, details)
