"""
The master side: the relay that sends outbox events to SNS, and the admin
RPCs that edit the user directory.

Relay: reads unsent events oldest first, publishes them (``PublishBatch``,
10 per call; FIFO topics get the username as message group and
``username:version`` as deduplication id), marks each sent only after SNS
accepted it, and backs off while SNS or the database is unreachable; the
events wait in the outbox meanwhile. It wakes on PostgreSQL ``NOTIFY`` (or
polls on SQLite) and on the hub's own admin writes. Several relays may run
against one PostgreSQL database: rows are claimed with ``FOR UPDATE SKIP
LOCKED`` for the length of the send.
"""

import datetime
import json

import psycopg2
from autobahn import wamp
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from components import directory, errors, passwords
from components.base import HubComponent
from components.settings import as_bool, as_float, as_int, database_url
from components.storage import POSTGRESQL, Database, StorageUnavailable, migrate_all
from components.usersync import DELETE, LIST, SAVE, messages, outbox, provision
from components.usersync.aws import BlockingPool, make_client, region_for
from components.usersync.fields import FieldError, check_value, parse_fields
from components.usersync.retry import Alarm, Backoff, persist

SCHEMAS = [("directory", directory.MIGRATIONS), ("usersync_master", outbox.MIGRATIONS)]
ADMIN_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser")
PURGE_AFTER_MS = 24 * 3600 * 1000


class SnsPublisher:
    """Blocking: ``publish(rows)`` -> ``(sent_ids, failed_ids, error)`` for outbox rows."""

    def __init__(self, sns, topic_arn):
        self.sns = sns
        self.topic_arn = topic_arn
        self.fifo = topic_arn.endswith(provision.FIFO_SUFFIX)

    def entry(self, index, row):
        _, username, action, version, payload, created_ms = row
        body = messages.encode(action, int(version), json.loads(payload), int(created_ms))
        entry = {"Id": str(index), "Message": body,
                 "MessageAttributes": messages.attributes(action, int(version), username)}
        if self.fifo:
            entry["MessageGroupId"] = username
            entry["MessageDeduplicationId"] = "{}:{}".format(username, version)[:128]
        return entry

    def __call__(self, rows):
        sent, failed, error = [], [], None
        for start in range(0, len(rows), 10):
            chunk = rows[start:start + 10]
            try:
                response = self.sns.publish_batch(
                    TopicArn=self.topic_arn,
                    PublishBatchRequestEntries=[self.entry(index, row) for index, row in enumerate(chunk)])
            except Exception as exc:  # botocore: endpoint down, throttled, denied
                failed += [row[0] for row in rows[start:]]
                return sent, failed, exc
            accepted = {int(item["Id"]) for item in response.get("Successful", [])}
            for index, row in enumerate(chunk):
                (sent if index in accepted else failed).append(row[0])
            if response.get("Failed"):
                error = RuntimeError("SNS refused: {}".format(response["Failed"][0]))
        return sent, failed, error


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
                yield task.deferLater(self.reactor, delay, lambda: None)
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


@implementer(IReadDescriptor)
class PgListener:
    """
    ``LISTEN`` on a dedicated PostgreSQL connection, read by the reactor
    (the socket is only polled when readable); calls ``on_notify()`` per
    batch of notifications, and once after every (re)connect so nothing
    sent while disconnected waits for the next poll.
    """

    log = Logger()

    def __init__(self, dsn, channel, on_notify, reactor, blocking):
        self.dsn = dsn
        self.channel = channel
        self.on_notify = on_notify
        self.reactor = reactor
        self.blocking = blocking
        self.connection = None
        self.running = False
        self.backoff = Backoff(0.5, 30.0)

    def _open(self):
        connection = psycopg2.connect(self.dsn, connect_timeout=3)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("LISTEN {}".format(self.channel))
        return connection

    def start(self):
        self.running = True
        return self._connect()

    @defer.inlineCallbacks
    def _connect(self):
        while self.running:
            try:
                connection = yield self.blocking(self._open)
            except Exception as exc:
                delay = self.backoff.next()
                self.log.warn("usersync LISTEN failed ({error}); retrying in {delay:.1f}s",
                              error=exc, delay=delay)
                yield task.deferLater(self.reactor, delay, lambda: None)
                continue
            if not self.running:
                connection.close()
                return
            self.backoff.reset()
            self.connection = connection
            self.reactor.addReader(self)
            self.on_notify()
            return

    def fileno(self):
        return self.connection.fileno() if self.connection is not None else -1

    def doRead(self):
        try:
            self.connection.poll()
        except Exception as exc:
            self.log.warn("usersync LISTEN connection lost: {error}", error=exc)
            self._drop()
            self._connect()
            return
        if self.connection.notifies:
            del self.connection.notifies[:]
            self.on_notify()

    def connectionLost(self, reason):
        self._drop()

    def logPrefix(self):
        return "usersync-listen"

    def _drop(self):
        connection, self.connection = self.connection, None
        if connection is not None:
            self.reactor.removeReader(self)
            try:
                connection.close()
            except Exception:
                pass

    def stop(self):
        self.running = False
        self._drop()


def clean_profile(profile):
    """Validate an admin's ``profile`` dict; return ``(fields, password or None)`` or raise FieldError."""
    if not isinstance(profile, dict):
        raise FieldError("profile", "must be an object")
    unknown = sorted(set(profile) - set(ADMIN_FIELDS) - {"password"})
    if unknown:
        raise FieldError(unknown[0], "is not a user field")
    if "username" not in profile:
        raise FieldError("username", "is required")
    fields = {field: check_value(field, value) for field, value in profile.items() if field != "password"}
    password = profile.get("password")
    if password is not None and (not isinstance(password, str) or not 8 <= len(password) <= 4096):
        raise FieldError("password", "must be a string of at least 8 characters")
    return fields, password


def _user_row(cursor, username):
    row = cursor.execute("SELECT {}, date_joined, last_login FROM auth_user WHERE username = ?".format(
        ", ".join(ADMIN_FIELDS)), (username,)).fetchone()
    if row is None:
        return None
    user = dict(zip(ADMIN_FIELDS + ("date_joined", "last_login"), row))
    for flag in ("is_active", "is_staff", "is_superuser"):
        user[flag] = bool(user[flag])
    for stamp in ("date_joined", "last_login"):
        user[stamp] = None if user[stamp] is None else str(user[stamp])
    version = cursor.execute("SELECT version FROM usersync_version WHERE username = ?",
                             (username,)).fetchone()
    user["version"] = int(version[0]) if version else 0
    return user


def save_user(cursor, fields, encoded_password, now_iso):
    """Insert or update one user; return ``(user, created)``."""
    username = fields["username"]
    changes = {field: value for field, value in fields.items() if field != "username"}
    if encoded_password is not None:
        changes["password"] = encoded_password
    exists = cursor.execute("SELECT 1 FROM auth_user WHERE username = ?", (username,)).fetchone()
    if exists:
        if changes:
            cursor.execute("UPDATE auth_user SET {} WHERE username = ?".format(
                ", ".join("{} = ?".format(column) for column in changes)),
                list(changes.values()) + [username])
    else:
        row = {"password": passwords.make_unusable_password(), "first_name": "", "last_name": "", "email": "",
               "is_active": True, "is_staff": False, "is_superuser": False, "date_joined": now_iso}
        row.update(changes)
        row["username"] = username
        columns = sorted(row)
        cursor.execute("INSERT INTO auth_user ({}) VALUES ({})".format(
            ", ".join(columns), ", ".join("?" for _ in columns)), [row[column] for column in columns])
    return _user_row(cursor, username), not exists


def list_users(cursor, limit, offset):
    names = cursor.execute("SELECT username FROM auth_user ORDER BY username LIMIT ? OFFSET ?",
                           (limit, offset)).fetchall()
    return [_user_row(cursor, name) for (name,) in names]


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
    ready = False
    stopped = False
    relaying = False

    @defer.inlineCallbacks
    def start(self):
        """
        Read the settings, register the RPCs (shared registrations: several
        master instances may run) and set up the database; if it does not
        answer, that and the relay are retried in the background, so a
        database down at start never keeps the node from starting.
        """
        try:
            self.fields = parse_fields(self.setting("USERSYNC_FIELDS"))
            self.include_staff = as_bool({"v": self.setting("USERSYNC_INCLUDE_STAFF")}, "v", False)
            self.batch = as_int({"v": self.setting("USERSYNC_RELAY_BATCH")}, "v", 100, minimum=1,
                                maximum=1000)
            self.poll = as_float({"v": self.setting("USERSYNC_POLL_INTERVAL")}, "v", 0.2, minimum=0.01)
            self.backoff_max = as_float({"v": self.setting("USERSYNC_BACKOFF_MAX")}, "v", 30.0, minimum=0.1)
            self.auto = as_bool({"v": self.setting("USERSYNC_PROVISION")}, "v", False)
            url = self.setting("MASTER_DATABASE_URL") or database_url("master", directory=self.node_directory)
            self.db = Database(url)
        except ValueError as exc:  # SettingsError, StorageConfigError
            self.log.error("usersync master off: {error}", error=exc)
            return
        yield self.register(self, options=RegisterOptions(invoke="roundrobin"))
        topic = self.setting("SNS_TOPIC_ARN")
        self.relaying = bool(topic) or self.auto
        # the common case: the database answers now, and the RPCs are ready when the node is
        try:
            yield self._set_up_database()
            self.ready = True
        except Exception as exc:
            self.log.warn("usersync master: database not ready ({error}); retrying in the background",
                          error=exc)
        self._prepared = self._prepare(topic).addErrback(
            lambda failure: self.log.failure("usersync master: relay did not start", failure=failure))

    def _running(self):
        return not self.stopped

    @defer.inlineCallbacks
    def _set_up_database(self):
        """Migrate; with a relay configured also (re)install the capture triggers, before any admin write."""
        yield migrate_all(self.db, SCHEMAS)
        if self.relaying:
            yield self.db.run(outbox.install, self.fields, self.include_staff)

    @defer.inlineCallbacks
    def _prepare(self, topic):
        if not self.ready:
            yield persist(self.reactor, self._set_up_database, self.log, "usersync master database",
                          self._running)
            self.ready = not self.stopped
        if self.stopped:
            return
        if not self.relaying:
            self.log.info("usersync master: admin RPCs ready; relay off (SNS_TOPIC_ARN unset)")
            return
        self.pool = BlockingPool(self.reactor, 4, "usersync-sns")
        yield self._start_relay(topic)

    @defer.inlineCallbacks
    def _start_relay(self, topic):
        endpoint = self.setting("AWS_ENDPOINT_URL") or None
        sns = yield self.pool.run(make_client, "sns", endpoint, region_for(topic))
        if not topic:
            name = self.setting("USERSYNC_TOPIC_NAME", "reactive-users")
            topic = yield persist(self.reactor, lambda: self.pool.run(provision.ensure_topic, sns, name),
                                  self.log, "usersync topic", self._running)
            self.log.info("usersync master: provisioned topic {arn}", arn=topic)
        if self.stopped:
            return
        self.relay = Relay(self.db, SnsPublisher(sns, topic), self.pool.run, self.reactor, batch=self.batch,
                           poll_interval=5.0 if self.db.dialect == POSTGRESQL else self.poll,
                           backoff_max=self.backoff_max)
        if self.db.dialect == POSTGRESQL:
            self.listener = PgListener(self.db.url, outbox.CHANNEL, self.relay.wake, self.reactor,
                                       self.pool.run)
            self.listener.start()
        self.relay.start()
        self.log.info("usersync master: relaying {fields} to {topic}", fields=",".join(self.fields),
                      topic=topic)

    def _check_ready(self):
        if not self.ready:
            raise ApplicationError(errors.UNAVAILABLE, "user directory not ready yet")

    def _wake(self, result):
        if self.relay is not None:
            self.relay.wake()
        return result

    def _fail(self, failure):
        if failure.check(FieldError):
            raise ApplicationError(errors.INVALID_ARGUMENT, str(failure.value), field=failure.value.field)
        if failure.check(StorageUnavailable):
            raise ApplicationError(errors.UNAVAILABLE, "user directory unavailable")
        return failure

    @wamp.register(SAVE)
    def save(self, profile):
        """
        Create or update a user from ``{"username", ...fields, "password"?}``;
        fire with the stored user and ``created``.
        """
        self._check_ready()
        try:
            fields, password = clean_profile(profile)
        except FieldError as exc:
            raise ApplicationError(errors.INVALID_ARGUMENT, str(exc), field=exc.field)
        now_iso = datetime.datetime.now(datetime.timezone.utc).isoformat()
        if password is None:
            d = defer.succeed(None)
        else:
            d = threads.deferToThread(passwords.make_password, password)
        d.addCallback(lambda encoded: self.db.run(save_user, fields, encoded, now_iso))
        d.addCallback(lambda result: dict(result[0], created=result[1]))
        d.addCallback(self._wake)
        d.addErrback(self._fail)
        return d

    @wamp.register(DELETE)
    def delete(self, username):
        """Delete a user; ``reactive.error.not_found`` when there is none."""
        self._check_ready()
        try:
            check_value("username", username)
        except FieldError as exc:
            raise ApplicationError(errors.INVALID_ARGUMENT, str(exc), field=exc.field)

        def remove(cursor):
            return cursor.execute("DELETE FROM auth_user WHERE username = ?", (username,)).rowcount

        def done(count):
            if count != 1:
                raise ApplicationError(errors.NOT_FOUND, "no user {!r}".format(username))
            return {"username": username, "deleted": True}
        d = self.db.run(remove)
        d.addCallback(self._wake)
        d.addErrback(self._fail)
        d.addCallback(done)
        return d

    @wamp.register(LIST)
    def users(self, limit=1000, offset=0):
        """Users ordered by username (``limit`` 1-1000, ``offset`` >= 0), each with its sync ``version``."""
        self._check_ready()
        for name, value, low, high in (("limit", limit, 1, 1000), ("offset", offset, 0, 2 ** 31)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ApplicationError(errors.INVALID_ARGUMENT, "{} must be an integer in {}..{}".format(
                    name, low, high), field=name)
        d = self.db.run(list_users, limit, offset)
        d.addErrback(self._fail)
        return d

    def onLeave(self, details):
        self.stopped = True
        if self.relay is not None:
            self.relay.stop()
        if self.listener is not None:
            self.listener.stop()
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        HubComponent.onLeave(self, details)
