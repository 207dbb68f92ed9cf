"""
Per-user data keys: random 256-bit AES keys created and rotated by the hub,
stored only wrapped (AES-256-GCM under the key-encryption key, bound to the
username and key id), in the client database. After a rotation the old key
still opens envelopes for ``grace`` seconds, so messages in flight are not lost.

The key-encryption key comes from ``E2E_KEK`` (base64url of 32 bytes) or the
file ``E2E_KEK_FILE``; the dev node generates one in its node directory.
"""

import os
import secrets
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from twisted.internet import defer

from components.e2e.envelope import KEY_BYTES, EnvelopeError, b64decode, b64encode
from components.core.secretfiles import read_or_create_secret
from components.core.settings import KeyConfigError
from components.db.migrations import Migration

DEV_KEK_FILE = os.path.join("secrets", "e2e_kek")
DEFAULT_GRACE = 3600

_KEY_TABLE = ["""CREATE TABLE IF NOT EXISTS e2e_user_key (
                  username VARCHAR(150) NOT NULL,
                  kid VARCHAR(32) NOT NULL,
                  wrapped TEXT NOT NULL,
                  created_at BIGINT NOT NULL,
                  retired_at BIGINT NULL,
                  PRIMARY KEY (username, kid))"""]

MIGRATIONS = [Migration(1, "wrapped per-user data keys", sqlite=_KEY_TABLE, postgresql=_KEY_TABLE)]


def load_kek(settings):
    """The 32-byte key-encryption key from E2E_KEK, E2E_KEK_FILE, or the dev file in the node directory."""
    raw = settings.text("E2E_KEK")
    if not raw:
        path = settings.text("E2E_KEK_FILE")
        if not path:
            raw = read_or_create_secret(os.path.join(settings.node_directory, DEV_KEK_FILE),
                                        make=lambda: b64encode(secrets.token_bytes(KEY_BYTES)))
        else:
            with open(path) as handle:
                raw = handle.read().strip()
    try:
        kek = b64decode(raw, "E2E_KEK")
    except EnvelopeError:
        raise KeyConfigError("E2E_KEK must be base64url of 32 bytes")
    if len(kek) != KEY_BYTES:
        raise KeyConfigError("E2E_KEK must be 32 bytes, got {}".format(len(kek)))
    return kek


def _wrap_aad(username, kid):
    return "reactive-e2e-kek/1\n{}\n{}".format(username, kid).encode("utf-8")


def wrap(kek, username, kid, key):
    nonce = os.urandom(12)
    return b64encode(nonce + AESGCM(kek).encrypt(nonce, key, _wrap_aad(username, kid)))


def unwrap(kek, username, kid, wrapped):
    blob = b64decode(wrapped, "wrapped key")
    try:
        return AESGCM(kek).decrypt(blob[:12], blob[12:], _wrap_aad(username, kid))
    except InvalidTag:
        raise KeyConfigError("cannot unwrap the data key of {!r} ({}): wrong E2E_KEK?".format(username, kid))


class UserKeys:
    """Per-user data keys in ``db``; ``current`` creates a key on first use."""

    def __init__(self, db, kek, grace=DEFAULT_GRACE, clock=time.time):
        self.db = db
        self.kek = kek
        self.grace = grace
        self.clock = clock

    def _rows(self, cursor, username):
        cursor.execute("SELECT kid, wrapped, created_at, retired_at FROM e2e_user_key WHERE username = ? "
                       "ORDER BY created_at DESC, kid", (username,))
        return cursor.fetchall()

    def _create(self, cursor, username, now):
        kid = secrets.token_urlsafe(9)
        key = secrets.token_bytes(KEY_BYTES)
        cursor.execute("INSERT INTO e2e_user_key (username, kid, wrapped, created_at, retired_at) "
                       "VALUES (?, ?, ?, ?, NULL)", (username, kid, wrap(self.kek, username, kid, key), now))
        return kid, key

    def current(self, username):
        """Fire with ``(kid, key)`` of the user's active key, creating it if there is none."""
        def read_or_create(cursor):
            now = int(self.clock())
            for kid, wrapped, _created, retired in self._rows(cursor, username):
                if retired is None:
                    return kid, unwrap(self.kek, username, kid, wrapped)
            return self._create(cursor, username, now)
        return self.db.run(read_or_create)

    def usable(self, username):
        """
        Fire with ``{"current": kid, "keys": {kid: key}}``: the active key and
        retired keys still inside the grace period (creating the active key if needed).
        """
        def read(cursor):
            now = int(self.clock())
            rows = self._rows(cursor, username)
            if not any(retired is None for _, _, _, retired in rows):
                self._create(cursor, username, now)
                rows = self._rows(cursor, username)
            keys, current = {}, None
            for kid, wrapped, _created, retired in rows:
                if retired is None:
                    current = current or kid
                elif retired + self.grace < now:
                    continue
                keys[kid] = unwrap(self.kek, username, kid, wrapped)
            return {"current": current, "keys": keys}
        return self.db.run(read)

    def key(self, username, kid):
        """Fire with the key ``kid`` of ``username`` if it is active or within grace, else None."""
        def read(cursor):
            row = cursor.execute("SELECT wrapped, retired_at FROM e2e_user_key WHERE username = ? AND kid = ?",
                                 (username, kid)).fetchone()
            if row is None or (row[1] is not None and row[1] + self.grace < int(self.clock())):
                return None
            return unwrap(self.kek, username, kid, row[0])
        return self.db.run(read)

    def rotate(self, username):
        """Retire the active key (kept for ``grace`` seconds) and create a new one; fire with the new kid."""
        def rotate(cursor):
            now = int(self.clock())
            cursor.execute("UPDATE e2e_user_key SET retired_at = ? WHERE username = ? AND retired_at IS NULL",
                           (now, username))
            kid, _ = self._create(cursor, username, now)
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
