"""
Server-side login sessions in the master database: the ``hub_session``
cookie holds a random id, the table only its SHA-256, with the username and
an expiry.

A user's login sessions end when the directory says so, whoever writes it
(the admin RPCs, the CLI, Django, plain SQL): database triggers on the user
table (``AUTH_USER_TABLE``, installed by :func:`install` at start) delete
them when the password, ``is_active`` or the username changes, and when the
user is deleted, in the same transaction as the change (on PostgreSQL a
TRUNCATE ends them all). An old ``hub_session`` cookie then gets no new token.
"""

import hashlib
import secrets
import time

from twisted.internet import defer

from components.auth import credentials
from components.db.database import POSTGRESQL
from components.db.migrations import Migration

_SESSION_TABLE = ["""CREATE TABLE IF NOT EXISTS hub_login_session (
                        id_hash VARCHAR(64) PRIMARY KEY,
                        username VARCHAR(150) NOT NULL,
                        created_at BIGINT NOT NULL,
                        expires_at BIGINT NOT NULL)""",
                   "CREATE INDEX IF NOT EXISTS hub_login_session_user ON hub_login_session (username)"]

_SQLITE_ENDINGS = ("hub_login_session_end_update", "hub_login_session_end_delete")


def sqlite_statements(table):
    """SQLite DDL (idempotent): writes to the user ``table`` end that user's login sessions."""
    statements = ["DROP TRIGGER IF EXISTS {}".format(name) for name in _SQLITE_ENDINGS]
    statements += [
        """CREATE TRIGGER hub_login_session_end_update AFTER UPDATE ON {} FOR EACH ROW
           WHEN NEW.password IS NOT OLD.password OR NEW.is_active IS NOT OLD.is_active
                OR NEW.username IS NOT OLD.username
           BEGIN DELETE FROM hub_login_session WHERE username = OLD.username; END""".format(table),
        """CREATE TRIGGER hub_login_session_end_delete AFTER DELETE ON {} FOR EACH ROW
           BEGIN DELETE FROM hub_login_session WHERE username = OLD.username; END""".format(table),
    ]
    return statements


def postgresql_statements(table):
    """
    PostgreSQL DDL (idempotent): writes to the user ``table`` end that
    user's login sessions; a TRUNCATE ends every login session and moves
    every truncated user's credential version (``hub_credential_bump`` of
    :mod:`components.auth.credentials`, installed before).
    """
    return [
        """CREATE OR REPLACE FUNCTION hub_login_session_end() RETURNS trigger LANGUAGE plpgsql AS $body$
           BEGIN
               IF TG_OP = 'DELETE' OR NEW.password IS DISTINCT FROM OLD.password
                       OR NEW.is_active IS DISTINCT FROM OLD.is_active
                       OR NEW.username IS DISTINCT FROM OLD.username THEN
                   DELETE FROM hub_login_session WHERE username = OLD.username;
               END IF;
               RETURN NULL;
           END $body$""",
        "DROP TRIGGER IF EXISTS hub_login_session_end ON {}".format(table),
        "CREATE TRIGGER hub_login_session_end AFTER UPDATE OR DELETE ON {} FOR EACH ROW"
        " EXECUTE FUNCTION hub_login_session_end()".format(table),
        # BEFORE: the rows are still there to read
        """CREATE OR REPLACE FUNCTION hub_login_session_truncate() RETURNS trigger LANGUAGE plpgsql AS $body$
           DECLARE name TEXT;
           BEGIN
               DELETE FROM hub_login_session;
               FOR name IN EXECUTE format('SELECT username FROM %s', TG_RELID::regclass) LOOP
                   PERFORM hub_credential_bump(name);
               END LOOP;
               RETURN NULL;
           END $body$""",
        "DROP TRIGGER IF EXISTS hub_login_session_truncate ON {}".format(table),
        "CREATE TRIGGER hub_login_session_truncate BEFORE TRUNCATE ON {} FOR EACH STATEMENT"
        " EXECUTE FUNCTION hub_login_session_truncate()".format(table),
    ]


def install(cursor, table):
    """(Re)create the login-session endings on the user ``table``; safe to run any number of times."""
    statements = postgresql_statements(table) if cursor.dialect == POSTGRESQL else sqlite_statements(table)
    for statement in statements:
        cursor.execute(statement)


# the trigger names on the user table, for a watcher to see whether they are still there
TRIGGERS = {POSTGRESQL: ("hub_login_session_end", "hub_login_session_truncate"), "sqlite": _SQLITE_ENDINGS}

MIGRATIONS = [
    Migration(1, "server-side login sessions", sqlite=_SESSION_TABLE, postgresql=_SESSION_TABLE),
    # version 2 installed the endings on auth_user; install() now puts them on AUTH_USER_TABLE at start
    Migration(2, "login sessions end with a password change, deactivation, rename or deletion (at start)",
              sqlite=[], postgresql=[]),
]


def _hash(session_id):
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class LoginSessions:
    """Server-side login sessions in the master database; the cookie holds a random id, the table its hash."""

    def __init__(self, db, lifetime, clock=time.time):
        self.db = db
        self.lifetime = lifetime
        self.clock = clock

    def create(self, username):
        session_id = secrets.token_urlsafe(32)
        now = int(self.clock())
        d = self.db.execute(
            "INSERT INTO hub_login_session (id_hash, username, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (_hash(session_id), username, now, now + self.lifetime))
        d.addCallback(lambda _: session_id)
        return d

    def lookup(self, session_id):
        """Fire with the username of a live login session, or None."""
        d = self.login(session_id)
        d.addCallback(lambda login: login and login[0])
        return d

    def login(self, session_id):
        """
        Fire with ``(username, sid, credential version)`` of a live login
        session (the claims a token minted under it carries), or None.
        """
        if not session_id:
            return defer.succeed(None)
        now = int(self.clock())

        def read(cursor):
            cursor.execute("DELETE FROM hub_login_session WHERE expires_at < ?", (now,))
            id_hash = _hash(session_id)
            row = cursor.execute("SELECT username FROM hub_login_session WHERE id_hash = ? AND expires_at >= ?",
                                 (id_hash, now)).fetchone()
            if row is None:
                return None
            return row[0], credentials.login_id(id_hash), credentials.version_of(cursor, row[0])[0]
        return self.db.run(read)

    def end(self, session_id, tokens_live_for=0):
        """
        End the login session; the tokens minted under it are refused (for
        ``tokens_live_for`` seconds, their longest possible life) and the
        sessions joined with them end. Fires with the number of sessions ended (0 or 1).
        """
        if not session_id:
            return defer.succeed(0)
        id_hash = _hash(session_id)
        expires_ms = int((self.clock() + tokens_live_for) * 1000)

        def end(cursor):
            row = cursor.execute("SELECT username FROM hub_login_session WHERE id_hash = ?", (id_hash,)).fetchone()
            if row is None:
                return 0
            cursor.execute("DELETE FROM hub_login_session WHERE id_hash = ?", (id_hash,))
            credentials.revoke_login(cursor, credentials.login_id(id_hash), row[0], expires_ms)
            return 1
        return self.db.run(end)
