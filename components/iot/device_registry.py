"""
The device registry, in the client database: one row per device with its
name, its public key (the ``key`` of its signed ``POST /publish`` requests),
its secret and its life (created, rotated, revoked, last seen, readings).

- ``add(name)`` fires ``(key, secret)``: the only time the secret is handed
  out. ``rotate(name)`` replaces both (the old key is refused at once);
  ``revoke(name)`` refuses the device for good but keeps it listed.
- The secret is stored wrapped: AES-256-GCM under the end-to-end
  key-encryption key (``E2E_KEK``, :func:`components.e2e.keys.load_kek`),
  with the device's name and key as associated data. A copy of the database
  alone cannot sign a request, and a wrapped secret moved to another row
  does not open.
- ``lookup(key)`` and ``active(name)`` answer from a cache that keeps each
  answer at most ``CACHE_SECONDS`` (1 s): every node sharing the database
  refuses a revoked or rotated key within that second plus one query.
- ``seen(name)`` counts a reading: the counts and last-seen times of many
  readings are written together (group commit through
  :class:`components.core.batching.Batcher`), never in the publish path's way.
"""

import collections
import re
import secrets
import time

from cryptography.exceptions import InvalidTag
from twisted.internet import defer
from twisted.logger import Logger

from components.core import errors
from components.core.batching import Batcher
from components.core.settings import KeyConfigError
from components.db.migrations import Migration, SchemaOnDemand
from components.e2e.envelope import EnvelopeError, open_bytes, seal_bytes

log = Logger()

SCHEMA = "iot_devices"
# a device name is the last part of its topic iot.device.<name>; the other words there are ours
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
RESERVED_NAMES = frozenset(("publish", "reading"))
KEY = re.compile(r"[A-Za-z0-9._~-]{1,128}")
CACHE_SECONDS = 1.0
MAX_CACHED = 10000
ACTIVE = "active"
REVOKED = "revoked"

_CREATE = """
    CREATE TABLE IF NOT EXISTS iot_device (
        name VARCHAR(64) PRIMARY KEY,
        device_key VARCHAR(128) NOT NULL UNIQUE,
        wrapped_secret TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        rotated_ms BIGINT NULL,
        revoked_ms BIGINT NULL,
        last_seen_ms BIGINT NULL,
        readings BIGINT NOT NULL DEFAULT 0
    )"""

MIGRATIONS = [
    Migration(1, "registered devices with wrapped secrets", sqlite=[_CREATE], postgresql=[_CREATE]),
]

_COLUMNS = "name, device_key, created_ms, rotated_ms, revoked_ms, last_seen_ms, readings"
_SEEN = """
    UPDATE iot_device SET readings = readings + ?,
        last_seen_ms = CASE WHEN last_seen_ms IS NULL OR last_seen_ms < ? THEN ? ELSE last_seen_ms END
    WHERE name = ?"""

Device = collections.namedtuple("Device", "name secret")
Device.__doc__ = "What ``lookup`` finds for a key: the registered ``name`` and the plain ``secret``."


def check_name(name):
    """``name`` when it can name a device, else InvalidArgument saying why."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise errors.InvalidArgument("a device name is 1-64 letters, digits, _ or -")
    if name in RESERVED_NAMES:
        raise errors.InvalidArgument("{!r} is reserved (iot.device.{} is no device's topic)".format(name, name))
    return name


def _aad(name, key):
    return "reactive-iot-device/1\n{}\n{}".format(name, key).encode("utf-8")


def wrap_secret(kek, name, key, secret):
    """The stored form of ``secret``: base64url(nonce + AES-GCM ciphertext), bound to ``name`` and ``key``."""
    return seal_bytes(kek, secret.encode("utf-8"), _aad(name, key))


def unwrap_secret(kek, name, key, wrapped):
    """The plain secret of a row; KeyConfigError when this KEK did not wrap it (or the row was altered)."""
    try:
        return open_bytes(kek, wrapped, _aad(name, key), "wrapped device secret").decode("utf-8")
    except (InvalidTag, EnvelopeError, ValueError):
        raise KeyConfigError("cannot unwrap the secret of device {!r}: wrong E2E_KEK?".format(name))


def new_credentials():
    """A fresh ``(key, secret)``: 96 and 256 random bits, both URL- and shell-safe."""
    return "dk" + secrets.token_hex(12), secrets.token_urlsafe(32)


def _listed(row):
    name, key, created, rotated, revoked, last_seen, readings = row
    return {"name": name, "key": key, "state": REVOKED if revoked is not None else ACTIVE,
            "created_ms": created, "rotated_ms": rotated, "revoked_ms": revoked,
            "last_seen_ms": last_seen, "readings": int(readings)}


class DeviceRegistry:
    """
    The devices in ``db`` (the client database), secrets wrapped with
    ``kek`` (32 bytes). ``clock`` gives epoch seconds (timestamps and cache
    life). Database failures surface as ``StorageUnavailable``.
    """

    def __init__(self, db, kek, clock=time.time, cache_seconds=CACHE_SECONDS, max_batch=500):
        self.db = db
        self.kek = kek
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.schema = SchemaOnDemand(db, SCHEMA, MIGRATIONS)
        self._cache = {}
        self._usage = Batcher(self._write_usage, max_batch=max_batch)

    def _now_ms(self):
        return int(self.clock() * 1000)

    # --- administration -----------------------------------------------------------------------------

    def add(self, name):
        """Register ``name``; fire with its ``(key, secret)``. InvalidArgument for a bad or taken name."""
        check_name(name)
        key, secret = new_credentials()
        wrapped = wrap_secret(self.kek, name, key, secret)

        def insert(cursor):
            cursor.execute("INSERT INTO iot_device (name, device_key, wrapped_secret, created_ms, readings) "
                           "VALUES (?, ?, ?, ?, 0) ON CONFLICT (name) DO NOTHING",
                           (name, key, wrapped, self._now_ms()))
            if cursor.rowcount != 1:
                raise errors.InvalidArgument("device {!r} already exists (revoked devices keep their "
                                             "name)".format(name))
            return key, secret
        return self.schema.run(insert)

    def rotate(self, name):
        """New ``(key, secret)`` for ``name``; the old key is refused from now on. NotFound, or
        InvalidArgument for a revoked device."""
        check_name(name)
        key, secret = new_credentials()
        wrapped = wrap_secret(self.kek, name, key, secret)

        def replace(cursor):
            self._existing(cursor, name, revoked_ok=False)
            cursor.execute("UPDATE iot_device SET device_key = ?, wrapped_secret = ?, rotated_ms = ? "
                           "WHERE name = ? AND revoked_ms IS NULL", (key, wrapped, self._now_ms(), name))
            return key, secret
        return self._forgetting(self.schema.run(replace))

    def revoke(self, name):
        """Refuse ``name`` from now on (it stays listed); fire True, or False when it already was. NotFound."""
        check_name(name)

        def revoke(cursor):
            self._existing(cursor, name, revoked_ok=True)
            cursor.execute("UPDATE iot_device SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
                           (self._now_ms(), name))
            return cursor.rowcount == 1
        return self._forgetting(self.schema.run(revoke))

    def list(self):
        """Fire with every device, revoked ones too, by name: dicts with ``name``, ``key``, ``state``
        (``active``/``revoked``), ``created_ms``, ``rotated_ms``, ``revoked_ms``, ``last_seen_ms``,
        ``readings``."""
        def select(cursor):
            return [_listed(row) for row in cursor.execute(
                "SELECT {} FROM iot_device ORDER BY name".format(_COLUMNS)).fetchall()]
        return self.schema.run(select)

    @staticmethod
    def _existing(cursor, name, revoked_ok):
        row = cursor.execute("SELECT revoked_ms FROM iot_device WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise errors.NotFound("no device {!r}".format(name))
        if row[0] is not None and not revoked_ok:
            raise errors.InvalidArgument("device {!r} is revoked; add a device under a new name".format(name))

    def _forgetting(self, d):
        """This node forgets its cached answers once a change of its own is committed."""
        def forget(result):
            self._cache.clear()
            return result
        return d.addCallback(forget)

    # --- the bridge's questions -----------------------------------------------------------------------

    def lookup(self, key):
        """Fire with the :class:`Device` whose key is ``key``, or None (unknown, revoked, rotated away)."""
        if not isinstance(key, str) or not KEY.fullmatch(key):
            return defer.succeed(None)

        def select(cursor):
            row = cursor.execute("SELECT name, wrapped_secret FROM iot_device WHERE device_key = ? "
                                 "AND revoked_ms IS NULL", (key,)).fetchone()
            if row is None:
                return None
            return Device(row[0], unwrap_secret(self.kek, row[0], key, row[1]))
        return self._cached(("key", key), select)

    def names_of(self, keys):
        """Fire with ``{key: name}`` for those of ``keys`` that name an unrevoked device now (no cache, one
        query per 500 keys, no secret unwrapped): how the MQTT listener finds revoked or rotated keys."""
        keys = sorted({key for key in keys if isinstance(key, str) and KEY.fullmatch(key)})

        def select(cursor):
            found = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ", ".join("?" * len(chunk))
                rows = cursor.execute("SELECT device_key, name FROM iot_device WHERE revoked_ms IS NULL "
                                      "AND device_key IN ({})".format(marks), tuple(chunk)).fetchall()
                found.update(rows)
            return found
        return self.schema.run(select) if keys else defer.succeed({})

    def active(self, name):
        """Fire True when ``name`` is a registered device that is not revoked."""
        if not isinstance(name, str) or not NAME.fullmatch(name) or name in RESERVED_NAMES:
            return defer.succeed(False)

        def select(cursor):
            return cursor.execute("SELECT 1 FROM iot_device WHERE name = ? AND revoked_ms IS NULL",
                                  (name,)).fetchone() is not None
        return self._cached(("name", name), select)

    def _cached(self, entry, select):
        now = self.clock()
        hit = self._cache.get(entry)
        if hit is not None and hit[0] > now:
            return defer.succeed(hit[1])
        d = self.schema.run(select)

        def keep(value):
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[entry] = (now + self.cache_seconds, value)
            return value
        return d.addCallback(keep)

    def seen(self, name):
        """Count one reading of ``name`` now; written with others in one transaction. Fires once written
        (never fails: a failed write is logged and those counts are lost)."""
        return self._usage.submit((name, self._now_ms()))

    def _write_usage(self, items):
        usage = {}
        for name, moment in items:
            count, last = usage.get(name, (0, 0))
            usage[name] = (count + 1, max(last, moment))

        def write(cursor):
            for name, (count, last) in sorted(usage.items()):
                cursor.execute(_SEEN, (count, last, last, name))
            return [None] * len(items)

        def failed(failure):
            log.warn("device usage not recorded ({count} readings): {error}", count=len(items),
                     error=failure.value)
            return [None] * len(items)
        return self.schema.run(write).addErrback(failed)
