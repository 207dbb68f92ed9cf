"""
The client side's copy of the users: ``auth_user`` (the same Django table
as the master) plus ``usersync_state``, which remembers per username the
highest version applied, whether that was a delete (a tombstone), and how
many changes took effect.

The rule: a change whose version is not higher than the remembered one is a
no-op, so duplicates, late and out-of-order deliveries cannot move a user
backwards, and a delete cannot be undone by an older update.
"""

import datetime

from components.auth import passwords
from components.db.database import POSTGRESQL
from components.db.migrations import Migration

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


def _store_user(cursor, user):
    fields = [field for field in user if field != "username"]
    exists = cursor.execute("SELECT 1 FROM auth_user WHERE username = ?", (user["username"],)).fetchone()
    if exists:
        if fields:
            cursor.execute("UPDATE auth_user SET {} WHERE username = ?".format(
                ", ".join("{} = ?".format(field) for field in fields)),
                [user[field] for field in fields] + [user["username"]])
        return
    row = {"first_name": "", "last_name": "", "email": "", "is_active": True, "is_staff": False,
           "is_superuser": False}
    row.update(user)
    columns = sorted(row)
    cursor.execute(
        "INSERT INTO auth_user (password, last_login, date_joined, {}) VALUES (?, NULL, ?, {})".format(
            ", ".join(columns), ", ".join("?" for _ in columns)),
        [passwords.make_unusable_password(), datetime.datetime.now(datetime.timezone.utc).isoformat()]
        + [row[column] for column in columns])


def apply_one(cursor, change, now_ms):
    """Apply one change under the version rule; True when it took effect."""
    if not _claim_version(cursor, change, now_ms):
        return False
    if change.action == "delete":
        cursor.execute("DELETE FROM auth_user WHERE username = ?", (change.username,))
    else:
        _store_user(cursor, change.user)
    return True


def apply_changes(cursor, changes, now_ms):
    """
    Apply ``changes`` in one transaction, in (username, version) order so
    concurrent transactions lock users in the same order; return the ones
    that took effect.
    """
    ordered = sorted(changes, key=lambda change: (change.username, change.version))
    return [change for change in ordered if apply_one(cursor, change, now_ms)]


def profile(cursor, username):
    """
    ``(profile or None, version)`` of ``username``: the synced fields and the
    applied version (0 for a user the sync never touched).
    """
    row = cursor.execute("SELECT {} FROM auth_user WHERE username = ?".format(", ".join(PROFILE)),
                         (username,)).fetchone()
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
