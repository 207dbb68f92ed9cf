"""
Revocation facts, one table each, in the master database (written by the
directory's triggers and by logout) and copied into every client database
by the user sync:

- ``hub_credential``: per username a credential ``version`` that moves
  whenever the user's rights or secret change (password, ``is_active``,
  ``is_staff``, ``is_superuser``, a rename, a deletion; a user re-created
  under a deleted name continues above the deletion's version),
  whoever writes the user table. Tokens from ``/auth/token`` carry it as
  ``cv``; a token whose ``cv`` is below the current version is revoked. A
  token without ``cv`` (minted by another application) is revoked when it
  was issued (``iat``) no later than the second of the last change.
- ``hub_revoked_login``: login sessions ended by a logout, by the id their
  tokens carry as ``sid``, until every token issued under them has expired.

``noted_ms`` is the database's clock when a row was written here, so a
watcher can ask "what changed since" (:func:`changes_since`).

``hub_version_floor`` holds the master's version floor: 0 until the master
database is restored from a backup (``reactive-hub sync restored``), then a
version above any a client can hold from before the restore. A name's first
credential version, and every next one, lands above it; the triggers are
(re)installed with its value (:func:`version_floor`), so a user write never
reads it; a database without the table (not migrated yet) has floor 0.
"""

import hashlib
import math

from components.db.schema_step import Migration
from components.db.sql_cursor import POSTGRESQL

_TABLES = [
    """CREATE TABLE IF NOT EXISTS hub_credential (
        username VARCHAR(150) PRIMARY KEY,
        version BIGINT NOT NULL,
        changed_ms BIGINT NOT NULL,
        noted_ms BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS hub_credential_noted ON hub_credential (noted_ms)",
    """CREATE TABLE IF NOT EXISTS hub_revoked_login (
        sid VARCHAR(64) PRIMARY KEY,
        username VARCHAR(150) NOT NULL,
        expires_ms BIGINT NOT NULL,
        noted_ms BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS hub_revoked_login_noted ON hub_revoked_login (noted_ms)",
]

_FLOOR = "CREATE TABLE IF NOT EXISTS hub_version_floor (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)"

# the tables only: both the master and every client database have them
MIGRATIONS = [Migration(1, "credential versions and revoked login sessions", sqlite=_TABLES,
                        postgresql=_TABLES),
              Migration(2, "the version floor after a restore", sqlite=[_FLOOR], postgresql=[_FLOOR])]

SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
POSTGRESQL_NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT"
# seconds a logged-out login session's tokens stay refused beyond the token lifetime (covers JWT_LEEWAY)
LOGOUT_MARGIN = 3600
# the columns whose change revokes what was issued before
WATCHED = ("password", "is_active", "is_staff", "is_superuser", "username")


def version_floor(cursor):
    """The master's version floor: 0 before any restore, and where the table is not there (yet)."""
    if cursor.dialect == POSTGRESQL:
        exists = cursor.execute("SELECT to_regclass('hub_version_floor') IS NOT NULL").fetchone()[0]
    else:
        exists = cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'hub_version_floor'"
                                ).fetchone() is not None
    if not exists:
        return 0
    row = cursor.execute("SELECT version FROM hub_version_floor WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def raise_version_floor(cursor, floor):
    """Set the version floor to ``floor`` unless it is higher already; the floor now."""
    cursor.execute("INSERT INTO hub_version_floor (id, version) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET"
                   " version = excluded.version WHERE hub_version_floor.version < excluded.version", (floor,))
    return version_floor(cursor)


def _sqlite_bump(row, floor):
    return """INSERT INTO hub_credential (username, version, changed_ms, noted_ms)
              VALUES ({row}.username, {first}, {now}, {now})
              ON CONFLICT (username) DO UPDATE SET version = max(version, {floor}) + 1, changed_ms = {now},
              noted_ms = {now};""".format(row=row, now=SQLITE_NOW_MS, floor=int(floor), first=int(floor) + 1)


def sqlite_triggers(table="auth_user", floor=0):
    """SQLite DDL: the user table's writes move the credential versions (above ``floor``)."""
    changed = " OR ".join("NEW.{0} IS NOT OLD.{0}".format(column) for column in WATCHED)
    names = ("hub_credential_update", "hub_credential_rename", "hub_credential_delete")
    statements = ["DROP TRIGGER IF EXISTS {}".format(name) for name in names]
    statements += [
        "CREATE TRIGGER hub_credential_update AFTER UPDATE ON {table} FOR EACH ROW WHEN {changed}"
        " BEGIN {bump} END".format(table=table, changed=changed, bump=_sqlite_bump("OLD", floor)),
        "CREATE TRIGGER hub_credential_rename AFTER UPDATE ON {table} FOR EACH ROW"
        " WHEN NEW.username IS NOT OLD.username BEGIN {bump} END".format(
            table=table, bump=_sqlite_bump("NEW", floor)),
        "CREATE TRIGGER hub_credential_delete AFTER DELETE ON {table} FOR EACH ROW BEGIN {bump} END".format(
            table=table, bump=_sqlite_bump("OLD", floor)),
    ]
    return statements


def postgresql_triggers(table="auth_user", floor=0):
    """PostgreSQL DDL: the user table's writes move the credential versions (above ``floor``)."""
    changed = " OR ".join("NEW.{0} IS DISTINCT FROM OLD.{0}".format(column) for column in WATCHED)
    return [
        """CREATE OR REPLACE FUNCTION hub_credential_bump(p_username TEXT) RETURNS VOID LANGUAGE plpgsql AS $body$
           DECLARE now_ms BIGINT := {now};
           BEGIN
               INSERT INTO hub_credential AS current (username, version, changed_ms, noted_ms)
                   VALUES (p_username, {first}, now_ms, now_ms)
                   ON CONFLICT (username) DO UPDATE
                   SET version = GREATEST(current.version, {floor}) + 1, changed_ms = now_ms,
                       noted_ms = now_ms;
           END $body$""".format(now=POSTGRESQL_NOW_MS, floor=int(floor), first=int(floor) + 1),
        """CREATE OR REPLACE FUNCTION hub_credential_capture() RETURNS trigger LANGUAGE plpgsql AS $body$
           BEGIN
               IF TG_OP = 'DELETE' THEN
                   PERFORM hub_credential_bump(OLD.username);
               ELSIF {changed} THEN
                   PERFORM hub_credential_bump(OLD.username);
                   IF NEW.username IS DISTINCT FROM OLD.username THEN
                       PERFORM hub_credential_bump(NEW.username);
                   END IF;
               END IF;
               RETURN NULL;
           END $body$""".format(changed=changed),
        "DROP TRIGGER IF EXISTS hub_credential_capture ON {}".format(table),
        "CREATE TRIGGER hub_credential_capture AFTER UPDATE OR DELETE ON {} FOR EACH ROW"
        " EXECUTE FUNCTION hub_credential_capture()".format(table),
    ]


def login_id(session_hash):
    """The public id of a login session (``sid`` in its tokens), from the stored hash of its secret."""
    return hashlib.sha256(("sid:" + session_hash).encode("ascii")).hexdigest()[:32]


def now_ms_sql(cursor):
    return POSTGRESQL_NOW_MS if cursor.dialect == POSTGRESQL else SQLITE_NOW_MS


def version_of(cursor, username):
    """``(version, changed_ms)`` of ``username``: ``(0, 0)`` before its first change."""
    row = cursor.execute("SELECT version, changed_ms FROM hub_credential WHERE username = ?",
                         (username,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def login_revoked(cursor, sid):
    return cursor.execute("SELECT 1 FROM hub_revoked_login WHERE sid = ?", (sid,)).fetchone() is not None


def revoke_login(cursor, sid, username, expires_ms):
    """Record that the login session ``sid`` ended (its tokens are refused until ``expires_ms``); idempotent."""
    now = now_ms_sql(cursor)
    cursor.execute("DELETE FROM hub_revoked_login WHERE expires_ms < {}".format(now))
    cursor.execute(
        "INSERT INTO hub_revoked_login (sid, username, expires_ms, noted_ms) VALUES (?, ?, ?, {now})"
        " ON CONFLICT (sid) DO UPDATE SET expires_ms = excluded.expires_ms"
        " WHERE hub_revoked_login.expires_ms < excluded.expires_ms".format(now=now),
        (sid, username, int(expires_ms)))


def note_credential(cursor, username, version, changed_ms):
    """A copy of a master's credential version (client side): only ever moves forward; True when it did."""
    now = now_ms_sql(cursor)
    return cursor.execute(
        "INSERT INTO hub_credential (username, version, changed_ms, noted_ms) VALUES (?, ?, ?, {now})"
        " ON CONFLICT (username) DO UPDATE SET version = excluded.version, changed_ms = excluded.changed_ms,"
        " noted_ms = excluded.noted_ms WHERE hub_credential.version < excluded.version".format(now=now),
        (username, int(version), int(changed_ms))).rowcount > 0


def changes_since(cursor, noted_ms):
    """
    What was noted after ``noted_ms``: ``(credentials, logins, now)`` with
    credentials ``[(username, version, changed_ms)]``, logins
    ``[(sid, username)]`` and the database's clock at the look (the next
    look's lower bound, less an overlap for transactions still open).
    """
    now = database_now_ms(cursor)
    credentials = [(username, int(version), int(changed_ms)) for username, version, changed_ms in cursor.execute(
        "SELECT username, version, changed_ms FROM hub_credential WHERE noted_ms > ?", (noted_ms,)).fetchall()]
    logins = cursor.execute("SELECT sid, username FROM hub_revoked_login WHERE noted_ms > ?",
                            (noted_ms,)).fetchall()
    return credentials, [tuple(row) for row in logins], now


def database_now_ms(cursor):
    return int(cursor.execute("SELECT {}".format(now_ms_sql(cursor))).fetchone()[0])


def is_revoked(claims, version, changed_ms, login_ended, leeway=0):
    """
    The rule: a token is revoked when its login session ended, or its ``cv``
    is below the user's credential version, or (no ``cv``) it was issued no
    later than ``leeway`` seconds (the verifiers' clock allowance: the
    issuer's clock may run that much ahead) after the second of the last change.
    """
    if login_ended:
        return True
    cv = claims.get("cv")
    if isinstance(cv, int) and not isinstance(cv, bool):
        return cv < version
    if not version:
        return False
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, (int, float)) or not math.isfinite(iat):
        return True
    return int(iat) <= changed_ms // 1000 + leeway


def revoke_everyone(cursor, table):
    """
    Move every user's credential version (above the version floor) and end
    every login session: what a lost trigger or a restored database
    requires, since the changes made meanwhile cannot be known. Fires the
    facts' own triggers (the sync carries them).
    """
    now, floor = now_ms_sql(cursor), version_floor(cursor)
    moved = cursor.execute(
        "UPDATE hub_credential SET version = (CASE WHEN version < ? THEN ? ELSE version END) + 1,"
        " changed_ms = {now}, noted_ms = {now}".format(now=now), (floor, floor)).rowcount
    moved += cursor.execute(
        "INSERT INTO hub_credential (username, version, changed_ms, noted_ms)"
        " SELECT username, ?, {now}, {now} FROM {table}"
        " WHERE username NOT IN (SELECT username FROM hub_credential)"
        .format(now=now, table=table), (floor + 1,)).rowcount
    cursor.execute("DELETE FROM hub_login_session")
    return moved


def move_version(cursor, username, now_ms, floor):
    """Move one name's credential version on (above the version ``floor``): its tokens are refused."""
    cursor.execute(
        "INSERT INTO hub_credential (username, version, changed_ms, noted_ms) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (username) DO UPDATE SET"
        " version = (CASE WHEN hub_credential.version < ? THEN ? ELSE hub_credential.version END) + 1,"
        " changed_ms = excluded.changed_ms, noted_ms = excluded.noted_ms",
        (username, floor + 1, now_ms, now_ms, floor, floor))


def current(cursor, usernames, sids):
    """
    The facts of ``usernames`` and ``sids`` now: ``(credentials, logins)``
    as :func:`changes_since` gives them (for a watch's full re-check).
    """
    credentials = [(username, int(version), int(changed_ms)) for username, version, changed_ms in _where_in(
        cursor, "SELECT username, version, changed_ms FROM hub_credential WHERE username IN ({})", usernames)]
    logins = [tuple(row) for row in _where_in(
        cursor, "SELECT sid, username FROM hub_revoked_login WHERE sid IN ({})", sids)]
    return credentials, logins


def _where_in(cursor, sql, values, size=500):
    """The rows of ``sql`` (an ``IN ({})`` query) for ``values``, asked ``size`` at a time."""
    values, rows = list(values), []
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        rows += cursor.execute(sql.format(", ".join("?" for _ in chunk)), chunk).fetchall()
    return rows
