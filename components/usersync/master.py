"""
The master side's router component: the admin RPCs that edit the user
directory (``master.users.save/delete/list``) and, when a topic is
configured, the capture triggers and the relay of outbox events to SNS
(:mod:`outbox_relay`, :mod:`sns`, woken by :mod:`pglisten` on PostgreSQL).

At start it brings the hub's own tables up to date, then ensures the user
table (``AUTH_USER_TABLE``; with ``AUTH_USER_TABLE_OWNER=django`` it never
creates it, and waits for Django's ``migrate`` with one log line) and
(re)installs every trigger on it. The first time the capture of a table is
installed, every existing user is queued as a snapshot (:mod:`snapshot`).
A watchdog (:mod:`watchdog`) then reinstalls lost triggers and resyncs the gap.
"""

import datetime
import os

from autobahn import wamp
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer, threads

from components.auth import credentials, directory, passwords
from components.auth import master_tables as auth_schemas
from components.core.arguments import REQUIRED, bind, integer
from components.core.backoff import Backoff, pause, persist
from components.core.component import HubComponent
from components.core.errors import DATABASE_UNAVAILABLE, NotAuthorized, NotFound, Unavailable
from components.db import db_settings
from components.db.database import POSTGRESQL, Database, StorageUnavailable
from components.db.migrations import migrate_all
from components.usersync import DELETE, LIST, SAVE, usersync_settings, outbox, provision, requests, sequence, message_signing, snapshot, watchdog
from components.usersync.admin import clean_profile
from components.usersync.aws import BlockingPool, make_client, region_for
from components.usersync.fields import check_value
from components.usersync.pglisten import PgListener
from components.usersync.outbox_relay import Relay
from components.usersync.sns import SnsPublisher

OUTBOX_SCHEMA = ("usersync_master", outbox.MIGRATIONS)
# the component's own: the user table is ensured and its triggers installed at every start instead
OWN_SCHEMAS = auth_schemas.HUB_SCHEMAS + [OUTBOX_SCHEMA]
# how often a Django-owned user table that does not exist yet is looked for
TABLE_POLL = 2.0


def master_schemas(user_table):
    """The master database's schemas for ``user_table`` (a :class:`directory.UserTable`; auth's first), then the outbox."""
    return auth_schemas.master_schemas(user_table) + [OUTBOX_SCHEMA]


def _with_version(cursor, profile):
    if profile is not None:
        profile["version"] = outbox.version_of(cursor, profile["username"])
    return profile


def as_admin(cursor, username, interaction, *args, table=None):
    """``interaction(cursor, *args)`` if ``username`` is an active superuser in the directory, else NotAuthorized."""
    profile = directory.read_profile(cursor, username, table) if username else None
    if profile is None or not profile["is_superuser"] or not profile["is_active"]:
        raise NotAuthorized("{!r} is not an active superuser in the directory".format(username))
    return interaction(cursor, *args)


def save_user(cursor, fields, encoded_password, now_iso, table=None):
    """Insert or update one user; return its admin view with the sync ``version`` and ``created``."""
    profile, created = directory.save_profile(cursor, fields, encoded_password, now_iso, table)
    return dict(_with_version(cursor, profile), created=created)


def list_users(cursor, limit, offset, table=None):
    """Users ordered by username, each with its sync ``version``."""
    return [_with_version(cursor, directory.read_profile(cursor, name, table))
            for name in directory.list_usernames(cursor, limit, offset, table)]


def install(cursor, user_table, fields, include_staff, capture):
    """
    Ensure the user table and (re)install its triggers (the auth feature's,
    and with ``capture`` the outbox capture); True when the capture of this
    table was never installed before (its initial snapshot is due).
    """
    auth_schemas.install_table(cursor, user_table)
    if not capture:
        return False
    return outbox.install(cursor, fields, include_staff, user_table.name)


def expected_triggers(dialect, capture):
    """The hub's trigger names on the user table in ``dialect``."""
    names = list(auth_schemas.trigger_names(dialect))
    if capture:
        names += outbox.TRIGGERS[POSTGRESQL if dialect == POSTGRESQL else "sqlite"]
    return names


class UserSyncMaster(HubComponent):
    """
    Registers ``master.users.save/delete/list`` (role ``admin`` may call
    them) and, when ``SNS_TOPIC_ARN`` is set (or ``USERSYNC_PROVISION`` is
    on), installs the capture triggers and runs the relay.
    """

    db = None
    relay = None
    listener = None
    pool = None
    watch = None
    request_listener = None
    ready = False
    stopped = False
    relaying = False

    @defer.inlineCallbacks
    def start(self):
        """
        Read the settings, register the RPCs (shared registrations: several
        master instances may run) and set up the database; if it does not
        answer (or Django's user table is not there yet), that and the relay
        are retried in the background, so the node always starts.
        """
        settings = self.settings
        try:
            self.fields = settings.get(usersync_settings.USERSYNC_FIELDS)
            # staff (and so Django superusers) are synced by default: an admin sees their own profile
            self.include_staff = settings.get(usersync_settings.USERSYNC_INCLUDE_STAFF)
            self.batch = settings.get(usersync_settings.USERSYNC_RELAY_BATCH)
            self.poll = settings.get(usersync_settings.USERSYNC_POLL_INTERVAL)
            self.backoff_max = settings.get(usersync_settings.USERSYNC_BACKOFF_MAX)
            self.check_interval = settings.get(usersync_settings.USERSYNC_TRIGGER_CHECK)
            self.beacon_interval = settings.get(usersync_settings.USERSYNC_BEACON)
            self.request_url = settings.get(usersync_settings.USERSYNC_REQUEST_QUEUE_URL)
            self.auto = settings.get(usersync_settings.USERSYNC_PROVISION)
            self.endpoint = settings.get(usersync_settings.AWS_ENDPOINT_URL) or None
            self.topic_name = settings.get(usersync_settings.USERSYNC_TOPIC_NAME)
            self.user_table = directory.user_table(settings)
            topic = settings.get(usersync_settings.SNS_TOPIC_ARN)
            self.db = Database(settings.get(db_settings.MASTER_DATABASE_URL))
            self.signer = message_signing.signer_from(settings) if (topic or self.auto) else None
        except ValueError as exc:  # SettingsError, StorageConfigError, KeyConfigError
            self.log.error("usersync master off: {error}", error=exc)
            return
        self.table = self.user_table.name
        yield self.register(self, options=RegisterOptions(invoke="roundrobin", details_arg="call_details"))
        self.relaying = bool(topic) or self.auto
        self._waiting_logged = False
        # the common case: the database answers now, and the RPCs are ready when the node is
        try:
            yield self._set_up_database()
            self.ready = True
        except directory.UserTableMissing as exc:
            self._log_waiting(exc)
        except directory.UserTableError as exc:
            self.log.error("usersync master off: {error}", error=exc)
            return
        except Exception as exc:
            self.log.warn("usersync master: database not ready ({error}); retrying in the background",
                          error=exc)
        self._prepared = self._prepare(topic).addErrback(
            lambda failure: self.log.failure("usersync master: relay did not start", failure=failure))

    def _running(self):
        return not self.stopped

    def _log_waiting(self, exc):
        """Once: the hub leaves the user table to Django and waits for it."""
        if not self._waiting_logged:
            self._waiting_logged = True
            self.log.warn("usersync master: {error}; waiting for it (the hub goes on when it appears)",
                          error=exc)

    @defer.inlineCallbacks
    def _set_up_database(self):
        """
        Migrate the hub's tables, ensure the user table and install every
        trigger on it before any admin write; queue the initial snapshot the
        first time the capture of that table is installed.
        """
        yield migrate_all(self.db, OWN_SCHEMAS)
        first = yield self.db.run(install, self.user_table, self.fields, self.include_staff, self.relaying)
        if first:
            totals = yield snapshot.run(self.db, self.table, self.fields, self.include_staff, bump=False)
            yield self.db.run(outbox.mark_snapshot, self.table, int(self.reactor.seconds() * 1000))
            self.log.info("usersync master: capture installed on {table}; initial snapshot queued "
                          "({users} users, {credentials} credential versions)", table=self.table,
                          users=totals["users"],
                          credentials=totals["credentials"])
            self._wake(None)

    @defer.inlineCallbacks
    def _until_ready(self):
        """Retry the database set-up: silently while Django's table is missing, with backoff otherwise."""
        backoff = Backoff(0.5, 10.0)
        while not self.stopped:
            try:
                yield self._set_up_database()
                if self._waiting_logged:
                    self.log.info("usersync master: user table {table} found; triggers installed",
                                  table=self.table)
                return True
            except directory.UserTableMissing as exc:
                self._log_waiting(exc)
                yield pause(self.reactor, TABLE_POLL)
            except directory.UserTableError as exc:
                self.log.error("usersync master off: {error}", error=exc)
                return False
            except Exception as exc:
                delay = backoff.next()
                self.log.info("usersync master database not ready ({error}); retrying in {delay:.1f}s",
                              error=exc, delay=delay)
                yield pause(self.reactor, delay)
        return False

    @defer.inlineCallbacks
    def _prepare(self, topic):
        if not self.ready:
            ready = yield self._until_ready()
            self.ready = ready and not self.stopped
        if not self.ready:
            return
        self._start_watch()
        if not self.relaying:
            self.log.info("usersync master: admin RPCs ready; relay off (SNS_TOPIC_ARN unset)")
            return
        # SNS publishes and checks, and one long poll of the request queue
        self.pool = BlockingPool(self.reactor, 6, "usersync-sns")
        yield self._start_relay(topic)

    def _start_watch(self):
        expected = expected_triggers(self.db.dialect, self.relaying)
        self.watch = watchdog.CaptureWatch(
            self.db, self.reactor, self.table, expected, self._repair, interval=self.check_interval,
            state_path=os.path.join(self.node_directory, watchdog.STATE_FILE))
        self.watch.start()

    @defer.inlineCallbacks
    def _repair(self):
        """Reinstall the triggers; with the capture on, queue a gap snapshot (users at their next version)."""
        yield self.db.run(install, self.user_table, self.fields, self.include_staff, self.relaying)
        # what changed while the triggers were missing (a password, a deactivation) cannot be known: every
        # user's tokens and login sessions end (the revocation facts' own triggers carry that to the clients)
        revoked = yield self.db.run(credentials.revoke_everyone, self.table)
        self.log.warn("usersync master: the user table's triggers were missing: every login ended ({count} "
                      "credential versions moved)", count=revoked)
        if not self.relaying:
            return "no capture configured: nothing to resync"
        totals = yield snapshot.run(self.db, self.table, self.fields, self.include_staff, bump=True)
        self._wake(None)
        return ("gap resync queued ({users} users, {gone} deleted meanwhile, {credentials} credential "
                "versions)".format(**totals))

    @defer.inlineCallbacks
    def _start_relay(self, topic):
        sns = yield self.pool.run(make_client, "sns", self.endpoint, region_for(topic, settings=self.settings))
        if not topic:
            name = self.topic_name
            topic = yield persist(self.reactor, lambda: self.pool.run(provision.ensure_topic, sns, name),
                                  self.log, "usersync topic", self._running)
            self.log.info("usersync master: provisioned topic {arn}", arn=topic)
        if self.stopped:
            return
        # the SQS client checks that a subscribed queue still exists: nothing is marked sent that no queue gets
        sqs = yield self.pool.run(make_client, "sqs", self.endpoint, region_for(topic, settings=self.settings))
        publisher = SnsPublisher(sns, topic, self.signer, sqs)
        # held while the topic has no subscription; a beacon every USERSYNC_BEACON s says how far it got
        self.relay = Relay(self.db, publisher, self.pool.run, self.reactor, batch=self.batch,
                           poll_interval=5.0 if self.db.dialect == POSTGRESQL else self.poll,
                           backoff_max=self.backoff_max, subscribed=publisher.subscriptions,
                           beacon=publisher.beacon, beacon_interval=self.beacon_interval)
        if self.db.dialect == POSTGRESQL:
            self.listener = PgListener(self.db.url, outbox.CHANNEL, self.relay.wake, self.reactor,
                                       self.pool.run)
            self.listener.start()
        self.relay.start()
        epoch = yield self.db.run(sequence.epoch)
        self.log.info("usersync master: relaying {fields} to {topic} in epoch {epoch}, signed with key "
                      "{kid}{dev}",
                      fields=",".join(self.fields), topic=topic, epoch=epoch, kid=self.signer.kid,
                      dev=" (this node's dev key)" if message_signing.uses_dev_key(self.settings, message_signing.SIGNING_KEY_SETTING)
                      else "")
        yield self._start_requests(topic, publisher)

    @defer.inlineCallbacks
    def _start_requests(self, topic, publisher):
        """Find (dev: create) the request queue, name it in the beacons and answer what clients ask there."""
        sqs = yield self.pool.run(make_client, "sqs", self.endpoint, region_for(topic, settings=self.settings),
                                  read_timeout=30)
        url = self.request_url
        if not url:
            name = provision.request_queue_name(requests.topic_name_of(topic))
            if self.auto:
                url = yield persist(self.reactor, lambda: self.pool.run(provision.ensure_queue, sqs, name,
                                                                       {"MessageRetentionPeriod": "3600"}),
                                    self.log, "usersync request queue", self._running)
                url = url[0] if url else None
            else:
                url = yield self.pool.run(requests.find_queue, sqs, name)
        if self.stopped:
            return
        if not url:
            self.log.warn("usersync master: no request queue {name} (run provision, or set "
                          "USERSYNC_REQUEST_QUEUE_URL): clients that miss messages cannot ask for a snapshot",
                          name=provision.request_queue_name(requests.topic_name_of(topic)))
            return
        publisher.reply = url
        self.request_listener = requests.RequestListener(sqs, url, self.pool.run, self.reactor, self._requested)
        self.request_listener.start()
        self.log.info("usersync master: answering snapshot requests on {url}", url=url)

    @defer.inlineCallbacks
    def _requested(self, found):
        """
        Clients asked for a snapshot: queue one, unless the previous one is
        still being sent. Requests are unsigned (clients hold no key), so only
        those that name this master's epoch and a hole below what it sent
        count: a client sends nothing else; anything else is logged and
        ignored, so a stranger cannot make the master read its directory at will.
        """
        epoch, sent = yield self.db.run(sequence.high)
        genuine = [item for item in found if _plausible_request(item, epoch, sent)]
        if len(genuine) < len(found):
            self.log.warn("usersync master: {count} snapshot request(s) ignored: not of this master's epoch or "
                          "naming no hole below {sent}", count=len(found) - len(genuine), sent=sent)
        found = genuine
        if not found:
            return
        asking = ", ".join(sorted({"{client} (held {mark} of {high}: {reason})".format(**item) for item in found}))
        pending = yield self.db.run(snapshot.pending)
        if pending:
            self.log.info("usersync master: snapshot requested by {asking}; the one queued before is still being "
                          "sent", asking=asking)
            return
        totals = yield snapshot.run(self.db, self.table, self.fields, self.include_staff, bump=False)
        self._wake(None)
        self.log.info("usersync master: snapshot requested by {asking}; queued {users} users, {tombstones} deletes, "
                      "{credentials} credential versions", asking=asking, **totals)

    def _check_ready(self):
        if not self.ready:
            raise Unavailable("user directory not ready yet")

    def _wake(self, result):
        if self.relay is not None:
            self.relay.wake()
        return result

    def _as_admin(self, call_details, interaction, *args):
        """
        Run ``interaction(cursor, *args)`` in the transaction that first finds
        the caller an active superuser in the directory, whatever role its
        token names: a demoted, deactivated or deleted admin is refused with
        ``not_authorized`` from its next call on.
        """
        username = getattr(call_details, "caller_authid", None)

        def refused(failure):
            failure.trap(NotAuthorized)
            self.log.warn("master.users.* refused for {username!r}: not an active superuser in the directory",
                          username=username)
            return failure
        return self.db.run(as_admin, username, interaction, *args, table=self.table).addErrback(refused)

    @staticmethod
    def _unavailable(failure):
        """The database's own message would say which server is down: callers hear only that it is."""
        failure.trap(StorageUnavailable)
        raise Unavailable(DATABASE_UNAVAILABLE)

    @wamp.register(SAVE)
    def save(self, /, *args, call_details=None, **kwargs):
        """
        Create or update a user from ``{"username", ...fields, "password"?}``;
        fire with the stored user and ``created``.
        """
        (profile,) = bind(SAVE, args, kwargs, {"profile": REQUIRED})
        self._check_ready()
        fields, password = clean_profile(profile)
        now_iso = datetime.datetime.now(datetime.timezone.utc).isoformat()
        if password is None:
            d = defer.succeed(None)
        else:
            d = threads.deferToThread(passwords.make_password, password)
        d.addCallback(lambda encoded: self._as_admin(call_details, save_user, fields, encoded, now_iso,
                                                     self.table))
        d.addCallback(self._wake)
        d.addErrback(self._unavailable)
        return d

    @wamp.register(DELETE)
    def delete(self, /, *args, call_details=None, **kwargs):
        """Delete a user; ``reactive.error.not_found`` when there is none."""
        (username,) = bind(DELETE, args, kwargs, {"username": REQUIRED})
        self._check_ready()
        check_value("username", username)

        def done(count):
            if count != 1:
                raise NotFound("no user {!r}".format(username))
            return {"username": username, "deleted": True}
        d = self._as_admin(call_details, directory.delete_user, username, self.table)
        d.addCallback(self._wake)
        d.addErrback(self._unavailable)
        d.addCallback(done)
        return d

    @wamp.register(LIST)
    def users(self, /, *args, call_details=None, **kwargs):
        """Users ordered by username (``limit`` 1-1000, ``offset`` >= 0), each with its sync ``version``."""
        limit, offset = bind(LIST, args, kwargs, {"limit": 1000, "offset": 0})
        integer("limit", limit, 1, 1000)
        integer("offset", offset, 0, 2 ** 31)
        self._check_ready()
        d = self._as_admin(call_details, list_users, limit, offset, self.table)
        d.addErrback(self._unavailable)
        return d

    def onLeave(self, details):
        self.stopped = True
        if self.watch is not None:
            self.watch.stop()
        if self.relay is not None:
            self.relay.stop()
        if self.request_listener is not None:
            self.request_listener.stop()
        if self.listener is not None:
            self.listener.stop()
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        HubComponent.onLeave(self, details)


def _plausible_request(item, epoch, sent):
    """True for a snapshot request a client of this master could send: its epoch, ``mark < high <= sent``."""
    mark, high = item.get("mark"), item.get("high")
    return (item.get("epoch") == epoch and isinstance(mark, int) and isinstance(high, int)
            and 0 <= mark < high <= sent)
