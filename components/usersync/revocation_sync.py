"""
The revocation facts of :mod:`components.auth.credentials` ride the user
sync to every client database:

- on the master, triggers on ``hub_credential`` (a credential version
  moved) and ``hub_revoked_login`` (a logout) write outbox events
  ``credential`` and ``logout`` for EVERY user, staff included (the synced
  set decides whose profile is copied, not whose rights can end), in the
  same transaction. They do not take a profile version: a credential event
  carries the credential version, a logout version 1 (both are order-free),
  and the relay does not hold them back behind a user's profile changes;
- on a client, :func:`apply` stores them (idempotent and order-free: a
  credential version only moves forward, a logout is remembered until its
  tokens expire) in the same transaction as the profile changes of the
  batch; each node's authenticator sees them within its poll interval and
  ends the sessions they revoke.
"""

from collections import namedtuple

from components.auth import credentials
from components.db.database import POSTGRESQL
from components.usersync import replica

CREDENTIAL = "credential"
LOGOUT = "logout"
ACTIONS = (CREDENTIAL, LOGOUT)
# outbox payload keys: the column names of the fact's row
PAYLOADS = {CREDENTIAL: ("username", "version", "changed_ms"), LOGOUT: ("username", "sid", "expires_ms")}

Revocation = namedtuple("Revocation", "action version username facts ts seq epoch", defaults=(None, None))
Revocation.__doc__ = ("One validated revocation message: ``facts`` is the row of the master's fact table;"
                      " ``seq``, ``epoch``: its place in the master's sequence.")

_SQLITE_TRIGGERS = ("usersync_credential_insert", "usersync_credential_update", "usersync_logout")
# a revocation's outbox version: the credential version (monotonic per user); logouts need none (order-free)
_VERSIONS = {CREDENTIAL: "NEW.version", LOGOUT: "1"}


def _sqlite_object(fields):
    return "json_object({})".format(", ".join("'{0}', NEW.{0}".format(field) for field in fields))


def _sqlite_emit(action):
    return """INSERT INTO usersync_outbox (username, action, version, payload, created_ms)
              VALUES (NEW.username, '{action}', {version}, {payload}, {now});""".format(
        action=action, version=_VERSIONS[action], payload=_sqlite_object(PAYLOADS[action]),
        now=credentials.SQLITE_NOW_MS)


def sqlite_statements():
    """SQLite DDL: the fact tables' writes become outbox events."""
    statements = ["DROP TRIGGER IF EXISTS {}".format(name) for name in _SQLITE_TRIGGERS]
    statements += [
        "CREATE TRIGGER usersync_credential_insert AFTER INSERT ON hub_credential FOR EACH ROW BEGIN {}\nEND".format(
            _sqlite_emit(CREDENTIAL)),
        "CREATE TRIGGER usersync_credential_update AFTER UPDATE ON hub_credential FOR EACH ROW"
        " WHEN NEW.version IS NOT OLD.version BEGIN {}\nEND".format(_sqlite_emit(CREDENTIAL)),
        "CREATE TRIGGER usersync_logout AFTER INSERT ON hub_revoked_login FOR EACH ROW BEGIN {}\nEND".format(
            _sqlite_emit(LOGOUT)),
    ]
    return statements


def _pg_emit(action, channel):
    return """INSERT INTO usersync_outbox (username, action, version, payload, created_ms)
                  VALUES (NEW.username, '{action}', {version}, json_build_object({fields})::text, {now});
              PERFORM pg_notify('{channel}', '');""".format(
        action=action, version=_VERSIONS[action], channel=channel, now=credentials.POSTGRESQL_NOW_MS,
        fields=", ".join("'{0}', NEW.{0}".format(field) for field in PAYLOADS[action]))


def postgresql_statements(channel):
    """PostgreSQL DDL: the fact tables' writes become outbox events (and wake the relay)."""
    return [
        """CREATE OR REPLACE FUNCTION usersync_revocation() RETURNS trigger LANGUAGE plpgsql AS $body$
           BEGIN
               IF TG_TABLE_NAME = 'hub_credential' THEN
                   IF TG_OP = 'INSERT' OR NEW.version IS DISTINCT FROM OLD.version THEN
                       {credential}
                   END IF;
               ELSIF TG_OP = 'INSERT' THEN
                   {logout}
               END IF;
               RETURN NULL;
           END $body$""".format(credential=_pg_emit(CREDENTIAL, channel), logout=_pg_emit(LOGOUT, channel)),
        "DROP TRIGGER IF EXISTS usersync_revocation ON hub_credential",
        "CREATE TRIGGER usersync_revocation AFTER INSERT OR UPDATE ON hub_credential FOR EACH ROW"
        " EXECUTE FUNCTION usersync_revocation()",
        "DROP TRIGGER IF EXISTS usersync_revocation ON hub_revoked_login",
        "CREATE TRIGGER usersync_revocation AFTER INSERT ON hub_revoked_login FOR EACH ROW"
        " EXECUTE FUNCTION usersync_revocation()",
    ]


def statements(dialect, channel):
    return postgresql_statements(channel) if dialect == POSTGRESQL else sqlite_statements()


def _any_username(value):
    """
    A revocation names whatever the master's table holds: any 1-150
    characters without control characters (stricter rules would let a
    revocation of an oddly named user fail open).
    """
    if not isinstance(value, str) or not 0 < len(value) <= 150 or not value.isprintable():
        raise ValueError("user.username must be 1-150 printable characters")
    return value


def parse_facts(action, user):
    """The validated facts of a ``credential`` / ``logout`` message (``ValueError`` says what is wrong)."""
    facts = {"username": _any_username(user.get("username"))}
    numbers = ("version", "changed_ms") if action == CREDENTIAL else ("expires_ms",)
    for name in numbers:
        value = user.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2 ** 62:
            raise ValueError("user.{} must be a non-negative integer".format(name))
        facts[name] = value
    if action == LOGOUT:
        sid = user.get("sid")
        if not isinstance(sid, str) or not 0 < len(sid) <= 64 or not sid.isascii() or not sid.isprintable():
            raise ValueError("user.sid must be 1-64 printable ASCII characters")
        facts["sid"] = sid
    return facts


def apply_one(cursor, revocation):
    """Store one revocation; True when it told this database something new."""
    facts = revocation.facts
    if revocation.action == CREDENTIAL:
        return credentials.note_credential(cursor, facts["username"], facts["version"], facts["changed_ms"])
    if credentials.login_revoked(cursor, facts["sid"]):
        return False
    credentials.revoke_login(cursor, facts["sid"], facts["username"], facts["expires_ms"])
    return True


def apply(cursor, items, now_ms, table=None):
    """
    Apply a batch of profile changes (to the user table ``table``) and
    revocations in one transaction; return those that took effect (profile
    changes first, in the replica's order).
    """
    changes = [item for item in items if not isinstance(item, Revocation)]
    applied = replica.apply_changes(cursor, changes, now_ms, table) if changes else []
    return applied + [item for item in items if isinstance(item, Revocation) and apply_one(cursor, item)]
