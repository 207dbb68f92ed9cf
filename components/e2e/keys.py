"""
Per-user data keys, bound to one identity: random 256-bit AES keys created
and rotated by the hub, stored only wrapped (AES-256-GCM under the
key-encryption key, bound to the username, the identity generation and the
key id) in the client database.

An identity is a username at one **generation**: the user's credential
version (:mod:`components.auth.credentials`), which moves with every
password change, deactivation, deletion, rename and staff/superuser change,
never goes back, and continues above a deleted user's version when the
username is created again. So ``(username, generation)`` is never reused,
and a user's keys live exactly as long as the identity they were made for:

- keys are handed out and used only for the current generation; a key of an
  older generation is never handed out again and is deleted the next time
  the user's keys are read or created (no grace: the person may be gone);
- the first read at a new generation creates a new key (a new ``kid``);
- within one generation, ``rotate`` retires the active key, which still
  opens envelopes for ``grace`` seconds, so messages in flight are not lost.

Who knows the generation: ``/auth/token`` passes the one its token carries
(``cv``, read from the master); a sealing component reads it from its own
database through ``generation_of(cursor, username)`` (a client database
holds the master's credential versions, copied by the user sync). A sealer
whose copy is older than a generation that already has keys (the master
handed out keys of a newer identity) is behind: it seals nothing for that
user until it catches up (:class:`KeysBehind`), rather than seal under a
key of another identity. Without ``generation_of`` (commands, benches) the
generation is the newest one the store holds.

The key-encryption key comes from ``E2E_KEK`` (base64url of 32 bytes) or the
file ``E2E_KEK_FILE``; the dev node generates one in its node directory.
"""

import os
import secrets
import time

from cryptography.exceptions import InvalidTag
from twisted.internet import defer

from components.e2e import e2e_settings
from components.e2e.envelope import KEY_BYTES, b64decode, b64encode, open_bytes, seal_bytes
from components.core.errors import Unavailable
from components.core.devsecrets import dev_secret, refuse_dev_file
from components.core.settings import KeyConfigError, SettingsError
from components.db import advisory_locks
from components.db.migrations import Migration

DEV_KEK_FILE = os.path.join("secrets", "e2e_kek")
KEK_WHAT = "the end-to-end key-encryption key"
KEK_FIX = "set E2E_KEK_FILE (or E2E_KEK), the same on every node (`reactive-hub keys DIR` makes e2e_kek)"
DEFAULT_GRACE = e2e_settings.E2E_KEY_GRACE.default

_KEY_TABLE = ["""CREATE TABLE IF NOT EXISTS e2e_user_key (
                  username VARCHAR(150) NOT NULL,
                  kid VARCHAR(32) NOT NULL,
                  wrapped TEXT NOT NULL,
                  created_at BIGINT NOT NULL,
                  retired_at BIGINT NULL,
                  PRIMARY KEY (username, kid))"""]

# keys of version 1 were bound to the username alone (a re-created username got the former holder's keys):
# they are dropped, and every identity gets new keys on its next token or sealed state
_IDENTITY_KEY_TABLE = ["DROP TABLE IF EXISTS e2e_user_key",
                       """CREATE TABLE e2e_user_key (
                           username VARCHAR(150) NOT NULL,
                           generation BIGINT NOT NULL,
                           kid VARCHAR(32) NOT NULL,
                           wrapped TEXT NOT NULL,
                           created_at BIGINT NOT NULL,
                           retired_at BIGINT NULL,
                           PRIMARY KEY (username, kid))""",
                       "CREATE INDEX e2e_user_key_identity ON e2e_user_key (username, generation)"]

MIGRATIONS = [Migration(1, "wrapped per-user data keys", sqlite=_KEY_TABLE, postgresql=_KEY_TABLE),
              Migration(2, "data keys bound to one identity (username and credential generation)",
                        sqlite=_IDENTITY_KEY_TABLE, postgresql=_IDENTITY_KEY_TABLE)]


class KeysBehind(Unavailable):
    """This database's copy of the user's generation is older than a generation that already has keys."""


def load_kek(settings):
    """The 32-byte key-encryption key from E2E_KEK, E2E_KEK_FILE, or the dev file in the node directory."""
    try:
        raw = settings.get(e2e_settings.E2E_KEK)
        if not raw:
            path = settings.get(e2e_settings.E2E_KEK_FILE)
            if not path:
                raw = dev_secret(settings, DEV_KEK_FILE, KEK_WHAT, KEK_FIX,
                                 make=lambda: b64encode(secrets.token_bytes(KEY_BYTES)))
            else:
                refuse_dev_file(settings, path, DEV_KEK_FILE, KEK_WHAT, KEK_FIX)
                with open(path) as handle:
                    raw = handle.read().strip()
            raw = e2e_settings.kek_text(raw)
    except KeyConfigError:
        raise
    except SettingsError as error:  # names the setting
        raise KeyConfigError(str(error))
    except ValueError as error:  # a key file's content
        raise KeyConfigError("the E2E_KEK in the key file {}".format(error))
    return b64decode(raw, "E2E_KEK")


def _wrap_aad(username, generation, kid):
    return "reactive-e2e-kek/2\n{}\n{}\n{}".format(username, int(generation), kid).encode("utf-8")


def wrap(kek, username, generation, kid, key):
    return seal_bytes(kek, key, _wrap_aad(username, generation, kid))


def unwrap(kek, username, generation, kid, wrapped):
    try:
        return open_bytes(kek, wrapped, _wrap_aad(username, generation, kid), "wrapped key")
    except InvalidTag:
        raise KeyConfigError("cannot unwrap the data key of {!r} ({}): wrong E2E_KEK?".format(username, kid))


class UserKeys:
    """
    Data keys in ``db`` per identity. ``generation_of(cursor, username)``
    reads the user's current generation in the same transaction (see the
    module docstring); ``current`` creates a key on first use.
    """

    def __init__(self, db, kek, grace=DEFAULT_GRACE, clock=time.time, generation_of=None):
        self.db = db
        self.kek = kek
        self.grace = grace
        self.clock = clock
        self.generation_of = generation_of

    def _newest(self, cursor, username):
        row = cursor.execute("SELECT MAX(generation) FROM e2e_user_key WHERE username = ?",
                             (username,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def _generation(self, cursor, username, given=None):
        """
        The generation to use: ``given`` (the master's word), else this
        database's; KeysBehind when that is older than a generation with keys.
        Keys of older generations are deleted. Holds the user's lock until
        the transaction ends (PostgreSQL): two transactions that both found
        no active key would each create one, and a token would hand out a
        key other than the one a state was sealed with.
        """
        advisory_locks.lock_per_name(cursor, advisory_locks.E2E_IDENTITY_KEYS, username)
        newest = self._newest(cursor, username)
        if given is not None:
            generation = int(given)
        elif self.generation_of is None:
            generation = newest or 0
        else:
            generation = int(self.generation_of(cursor, username))
            if newest is not None and newest > generation:
                raise KeysBehind("the keys of {!r} belong to a newer identity than this node knows yet; "
                                 "retry when the user sync caught up".format(username))
        if newest is not None and newest != generation:
            cursor.execute("DELETE FROM e2e_user_key WHERE username = ? AND generation < ?",
                           (username, generation))
        return generation

    def _rows(self, cursor, username, generation):
        cursor.execute("SELECT kid, wrapped, created_at, retired_at FROM e2e_user_key"
                       " WHERE username = ? AND generation = ? ORDER BY created_at DESC, kid",
                       (username, generation))
        return cursor.fetchall()

    def _create(self, cursor, username, generation, now):
        kid = secrets.token_urlsafe(9)
        key = secrets.token_bytes(KEY_BYTES)
        cursor.execute("INSERT INTO e2e_user_key (username, generation, kid, wrapped, created_at, retired_at)"
                       " VALUES (?, ?, ?, ?, ?, NULL)",
                       (username, generation, kid, wrap(self.kek, username, generation, kid, key), now))
        return kid, key

    def current(self, username):
        """Fire with ``(kid, key)``: the active key of the user's current identity (created if needed)."""
        def read_or_create(cursor):
            generation = self._generation(cursor, username)
            for kid, wrapped, _created, retired in self._rows(cursor, username, generation):
                if retired is None:
                    return kid, unwrap(self.kek, username, generation, kid, wrapped)
            return self._create(cursor, username, generation, int(self.clock()))
        return self.db.run(read_or_create)

    def usable(self, username, generation=None):
        """
        Fire with ``{"current": kid, "keys": {kid: key}, "generation": n}``:
        the active key of the identity at ``generation`` (default: the
        current one) and its retired keys still inside the grace period,
        creating the active key if needed. Keys of other identities are never among them.
        """
        def read(cursor):
            now = int(self.clock())
            at = self._generation(cursor, username, generation)
            rows = self._rows(cursor, username, at)
            if not any(retired is None for _, _, _, retired in rows):
                self._create(cursor, username, at, now)
                rows = self._rows(cursor, username, at)
            keys, current = {}, None
            for kid, wrapped, _created, retired in rows:
                if retired is None:
                    current = current or kid
                elif retired + self.grace < now:
                    continue
                keys[kid] = unwrap(self.kek, username, at, kid, wrapped)
            return {"current": current, "keys": keys, "generation": at}
        return self.db.run(read)

    def key(self, username, kid):
        """
        Fire with the key ``kid`` of ``username`` if it belongs to the user's
        current identity and is active or within grace, else None.
        """
        def read(cursor):
            generation = self._generation(cursor, username)
            row = cursor.execute("SELECT wrapped, retired_at FROM e2e_user_key"
                                 " WHERE username = ? AND kid = ? AND generation = ?",
                                 (username, kid, generation)).fetchone()
            if row is None or (row[1] is not None and row[1] + self.grace < int(self.clock())):
                return None
            return unwrap(self.kek, username, generation, kid, row[0])
        return self.db.run(read)

    def rotate(self, username):
        """
        Retire the active key of the user's current identity (kept for
        ``grace`` seconds) and create a new one; fire with the new kid.
        """
        def rotate(cursor):
            now = int(self.clock())
            generation = self._generation(cursor, username)
            cursor.execute("UPDATE e2e_user_key SET retired_at = ? WHERE username = ? AND generation = ?"
                           " AND retired_at IS NULL", (now, username, generation))
            kid, _ = self._create(cursor, username, generation, now)
            cursor.execute("DELETE FROM e2e_user_key WHERE username = ? AND retired_at IS NOT NULL "
                           "AND retired_at < ?", (username, now - self.grace))
            return kid
        return self.db.run(rotate)

    @defer.inlineCallbacks
    def rotate_all(self):
        """Rotate every user that has a key; fire with the number rotated."""
        rows = yield self.db.query("SELECT DISTINCT username FROM e2e_user_key")
        for (username,) in rows:
            yield self.rotate(username)
        return len(rows)
