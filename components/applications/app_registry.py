"""
The application registry, in the client database: one row per application
with its name, whether it is private, its key, its wrapped secret and its
life (created, rotated, revoked).

- ``add(name, private)`` fires ``(key, secret)``: the only time the secret is
  handed out. ``rotate(name)`` replaces both (the old key is refused at
  once on this node); ``revoke(name)`` refuses the application for good but
  keeps it listed (its name is never reused).
- The secret is stored wrapped: AES-256-GCM under the end-to-end
  key-encryption key (``E2E_KEK``) with the application's name and key as
  associated data, so a copy of the database alone opens no secret and a
  wrapped secret moved to another row does not open.
- ``lookup(key)`` answers from a cache that keeps each answer at most
  ``CACHE_SECONDS`` (1 s): every node sharing the database refuses a revoked
  or rotated key within that second plus one query.
"""

import collections
import re
import secrets
import time

from cryptography.exceptions import InvalidTag
from twisted.internet import defer

from components.core import errors
from components.core.settings import KeyConfigError
from components.db.migrations import Migration, SchemaOnDemand
from components.e2e.envelope import EnvelopeError, open_bytes, seal_bytes

SCHEMA = "apps"
# the name is one word of the application's topics app.<name>.*
NAME = re.compile(r"[a-z0-9_]{1,48}")
KEY = re.compile(r"ak[0-9a-f]{24}")
CACHE_SECONDS = 1.0
MAX_CACHED = 10000
ACTIVE = "active"
REVOKED = "revoked"

_CREATE = """
    CREATE TABLE IF NOT EXISTS hub_app (
        name VARCHAR(48) PRIMARY KEY,
        private BOOLEAN NOT NULL,
        app_key VARCHAR(64) NOT NULL UNIQUE,
        wrapped_secret TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        rotated_ms BIGINT NULL,
        revoked_ms BIGINT NULL
    )"""

MIGRATIONS = [
    Migration(1, "registered applications with wrapped secrets", sqlite=[_CREATE], postgresql=[_CREATE]),
]

App = collections.namedtuple("App", "name secret private")
App.__doc__ = ("What ``lookup`` finds for a key: the application's ``name``, plain ``secret`` and "
               "``private`` flag.")


def check_name(name):
    """``name`` when it can name an application (one lower-case URI word), else InvalidArgument."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise errors.InvalidArgument("an application name is 1-48 lower-case letters, digits or _")
    return name


def _sealed(name, key):
    return "reactive-hub-app/1\n{}\n{}".format(name, key).encode("utf-8")


def seal_secret(kek, name, key, secret):
    """The stored form of ``secret``: base64url(nonce + AES-GCM ciphertext), bound to ``name`` and ``key``."""
    return seal_bytes(kek, secret.encode("utf-8"), _sealed(name, key))


def open_secret(kek, name, key, stored):
    """The plain secret of a row; KeyConfigError when this KEK did not seal it (or the row was altered)."""
    try:
        return open_bytes(kek, stored, _sealed(name, key), "sealed application secret").decode("utf-8")
    except (InvalidTag, EnvelopeError, ValueError):
        raise KeyConfigError("cannot open the secret of application {!r}: wrong E2E_KEK?".format(name))


def app_credentials():
    """A fresh ``(key, secret)``: 96 and 256 random bits, URL-, shell- and HTTP Basic-safe (no ':')."""
    return "ak" + secrets.token_hex(12), secrets.token_urlsafe(32)


def _listed(row):
    name, private, key, created, rotated, revoked = row
    return {"name": name, "private": bool(private), "key": key,
            "state": REVOKED if revoked is not None else ACTIVE,
            "created_ms": created, "rotated_ms": rotated, "revoked_ms": revoked}


class AppRegistry:
    """
    The applications in ``db`` (the client database), secrets sealed with
    ``kek`` (32 bytes). ``clock`` gives epoch seconds (timestamps and cache
    life). Database failures surface as ``StorageUnavailable``.
    """

    def __init__(self, db, kek, clock=time.time, cache_seconds=CACHE_SECONDS):
        self.db = db
        self.kek = kek
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.schema = SchemaOnDemand(db, SCHEMA, MIGRATIONS)
        self._cache = {}

    def _now_ms(self):
        return int(self.clock() * 1000)

    def add(self, name, private=False):
        """Register ``name``; fire with its ``(key, secret)``. InvalidArgument for a bad or taken name."""
        check_name(name)
        key, secret = app_credentials()
        sealed = seal_secret(self.kek, name, key, secret)

        def insert(cursor):
            cursor.execute("INSERT INTO hub_app (name, private, app_key, wrapped_secret, created_ms) "
                           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                           (name, bool(private), key, sealed, self._now_ms()))
            if cursor.rowcount != 1:
                raise errors.InvalidArgument("application {!r} already exists (revoked applications keep "
                                             "their name)".format(name))
            return key, secret
        return self.schema.run(insert)

    def rotate(self, name):
        """New ``(key, secret)`` for ``name``; the old key is refused from now on. NotFound, or
        InvalidArgument for a revoked application."""
        check_name(name)
        key, secret = app_credentials()
        sealed = seal_secret(self.kek, name, key, secret)

        def replace(cursor):
            self._existing(cursor, name, revoked_ok=False)
            cursor.execute("UPDATE hub_app SET app_key = ?, wrapped_secret = ?, rotated_ms = ? "
                           "WHERE name = ? AND revoked_ms IS NULL", (key, sealed, self._now_ms(), name))
            return key, secret
        return self._forgetting(self.schema.run(replace))

    def revoke(self, name):
        """Refuse ``name`` from now on (it stays listed); fire True, or False when it already was.
        NotFound."""
        check_name(name)

        def revoke(cursor):
            self._existing(cursor, name, revoked_ok=True)
            cursor.execute("UPDATE hub_app SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
                           (self._now_ms(), name))
            return cursor.rowcount == 1
        return self._forgetting(self.schema.run(revoke))

    def list(self):
        """Fire with every application, revoked ones too, by name: dicts with ``name``, ``private``, ``key``,
        ``state`` (``active``/``revoked``), ``created_ms``, ``rotated_ms``, ``revoked_ms``."""
        def select(cursor):
            return [_listed(row) for row in cursor.execute(
                "SELECT name, private, app_key, created_ms, rotated_ms, revoked_ms FROM hub_app "
                "ORDER BY name").fetchall()]
        return self.schema.run(select)

    @staticmethod
    def _existing(cursor, name, revoked_ok):
        row = cursor.execute("SELECT revoked_ms FROM hub_app WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise errors.NotFound("no application {!r}".format(name))
        if row[0] is not None and not revoked_ok:
            raise errors.InvalidArgument("application {!r} is revoked; add one under a new name".format(name))

    def _forgetting(self, d):
        """This node forgets its cached answers once a change of its own is committed."""
        def forget(result):
            self._cache.clear()
            return result
        return d.addCallback(forget)

    def lookup(self, key):
        """Fire with the :class:`App` whose key is ``key``, or None (unknown, revoked, rotated away)."""
        if not isinstance(key, str) or not KEY.fullmatch(key):
            return defer.succeed(None)
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return defer.succeed(hit[1])

        def select(cursor):
            row = cursor.execute("SELECT name, private, wrapped_secret FROM hub_app WHERE app_key = ? "
                                 "AND revoked_ms IS NULL", (key,)).fetchone()
            if row is None:
                return None
            return App(row[0], open_secret(self.kek, row[0], key, row[2]), bool(row[1]))

        def keep(found):
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (now + self.cache_seconds, found)
            return found
        return self.schema.run(select).addCallback(keep)
