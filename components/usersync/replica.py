"""
The client side's copy of the users: the user table (``auth_user``, or
``AUTH_USER_TABLE``: the same Django table as the master) plus
``usersync_state``, which remembers per username the highest version
applied, whether that was a delete (a tombstone), and how many changes took
effect.

The rule: a change whose version is not higher than the remembered one is a
no-op, so duplicates, late and out-of-order deliveries cannot move a user
backwards, and a delete cannot be undone by an older update.
"""

import datetime

from components.auth import directory, passwords
from components.db.database import POSTGRESQL
from components.db.migrations import Migration

# see components.usersync.convergence
_SEQUENCE_TABLES = [
    """CREATE TABLE IF NOT EXISTS usersync_sync (
        id INTEGER PRIMARY KEY,
        epoch VARCHAR(64) NULL,
        mark BIGINT NOT NULL,
        high BIGINT NOT NULL,
        started_ms BIGINT NOT NULL,
        heard_ms BIGINT NULL,
        stuck_ms BIGINT NULL,
        synced_ms BIGINT NULL,
        requested_ms BIGINT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        reply VARCHAR(1024) NULL)""",
    "CREATE TABLE IF NOT EXISTS usersync_seen (seq BIGINT PRIMARY KEY)",
]
_LEFT_EPOCHS = ["CREATE TABLE IF NOT EXISTS usersync_left_epoch (epoch VARCHAR(64) PRIMARY KEY, left_ms BIGINT NOT NULL)"]

MIGRATIONS = [
    Migration(
        1, "applied user versions and tombstones",
        sqlite=["""CREATE TABLE IF NOT EXISTS usersync_state (
                username VARCHAR(150) PRIMARY KEY,
                version BIGINT NOT NULL,
                deleted BOOL NOT NULL,
                applied INTEGER NOT NULL DEFAULT 0,
                updated_ms BIGINT NOT NULL)"""],
        postgresql=["""CREATE TABLE IF NOT EXISTS usersync_state (
                username VARCHAR(150) PRIMARY KEY,
                version BIGINT NOT NULL,
                deleted BOOLEAN NOT NULL,
                applied INTEGER NOT NULL DEFAULT 0,
                updated_ms BIGINT NOT NULL)"""]),
    Migration(2, "the client's place in the master's message sequence (convergence.py)",
              sqlite=_SEQUENCE_TABLES, postgresql=_SEQUENCE_TABLES),
    Migration(3, "the master epochs the client has left (convergence.py)",
              sqlite=_LEFT_EPOCHS, postgresql=_LEFT_EPOCHS),
]

PROFILE = ("username", "first_name", "last_name", "email", "is_active")


def _claim_version(cursor, change, now_ms):
    """Advance the user's version to ``change.version`` if it is higher; True when it was."""
    false = "FALSE" if cursor.dialect == POSTGRESQL else "0"
    cursor.execute(
        "INSERT INTO usersync_state (username, version, deleted, applied, updated_ms)"
        " VALUES (?, 0, {}, 0, ?) ON CONFLICT (username) DO NOTHING".format(false),
        (change.username, now_ms))
    # the row lock taken here serialises concurrent pollers on the same user (PostgreSQL)
    return cursor.execute(
        "UPDATE usersync_state SET version = ?, deleted = ?, applied = applied + 1, updated_ms = ?"
        " WHERE username = ? AND version < ?",
        (change.version, change.action == "delete", now_ms, change.username, change.version)).rowcount == 1


def _store_user(cursor, user, table):
    fields = [field for field in user if field != "username"]
    exists = cursor.execute("SELECT 1 FROM {} WHERE username = ?".format(table),
                            (user["username"],)).fetchone()
    if exists:
        if fields:
            cursor.execute("UPDATE {} SET {} WHERE username = ?".format(
                table, ", ".join("{} = ?".format(field) for field in fields)),
                [user[field] for field in fields] + [user["username"]])
        return
    row = {"first_name": "", "last_name": "", "email": "", "is_active": True, "is_staff": False,
           "is_superuser": False}
    row.update(user)
    row.update(password=passwords.make_unusable_password(), last_login=None,
               date_joined=datetime.datetime.now(datetime.timezone.utc).isoformat())
    directory.insert_user(cursor, table, row)


def apply_one(cursor, change, now_ms, table=None):
    """Apply one change under the version rule; True when it took effect."""
    if not _claim_version(cursor, change, now_ms):
        return False
    table = directory.table_name(table)
    if change.action == "delete":
        cursor.execute("DELETE FROM {} WHERE username = ?".format(table), (change.username,))
    else:
        _store_user(cursor, change.user, table)
    return True


def apply_changes(cursor, changes, now_ms, table=None):
    """
    Apply ``changes`` in one transaction, in (username, version) order so
    concurrent transactions lock users in the same order; return the ones
    that took effect.
    """
    ordered = sorted(changes, key=lambda change: (change.username, change.version))
    return [change for change in ordered if apply_one(cursor, change, now_ms, table)]


def profile(cursor, username, table=None):
    """
    ``(profile or None, version)`` of ``username``: the synced fields and the
    applied version (0 for a user the sync never touched).
    """
    row = cursor.execute("SELECT {} FROM {} WHERE username = ?".format(
        ", ".join(PROFILE), directory.table_name(table)), (username,)).fetchone()
    state = cursor.execute("SELECT version, deleted FROM usersync_state WHERE username = ?",
                           (username,)).fetchone()
    version = int(state[0]) if state else 0
    if row is None:
        return None, version
    user = dict(zip(PROFILE, row))
    user["is_active"] = bool(user["is_active"])
    return user, version


def state_of(cursor, username):
    """``(version, deleted, applied)`` of ``username`` or None."""
    row = cursor.execute("SELECT version, deleted, applied FROM usersync_state WHERE username = ?",
                         (username,)).fetchone()
    return None if row is None else (int(row[0]), bool(row[1]), int(row[2]))
