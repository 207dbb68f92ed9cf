"""
Snapshots: the users that exist on the master, queued as outbox events, so
clients that never saw them (users created before the capture was
installed, a client added later, changes made while a trigger was lost)
get them through the same relay, queues and versioned apply as every
change.

Per user of the synced set one ``insert`` event with its current tracked
fields, and per credential version one ``credential`` event. Each batch
reads the users and queues their events in one transaction, so an event
always holds the state of its version, and a change committed afterwards
takes a higher version: a snapshot never overrides a newer change.

Two modes:

- ``bump=False`` (initial snapshot, ``resync``, a client's request): a user
  keeps its version (one that never had one gets 1), so a client that
  already holds that version ignores the event (the replica's rule: not
  higher, no effect) and only clients that miss the user apply it; names
  that left the table or the synced set get their ``delete`` again, at its
  version, for a client that missed it;
- ``bump=True`` (a gap: a capture trigger was lost, see :mod:`watchdog`):
  every user takes its next version, so every client takes the master's
  state as it is now; users that left the synced set and names that are no
  longer in the table (deleted during the gap) get a versioned ``delete``,
  their credential versions move and their login sessions end.
"""

import json

from twisted.internet import defer

from components.auth import credentials
from components.usersync import outbox, revocation_sync, sequence
from components.usersync.fields import BOOLEANS, DEFAULT_FIELDS

BATCH = 500


def _next_version(cursor, username, floor):
    """The user's next sync version, above the version ``floor`` (see :mod:`restore`)."""
    cursor.execute("INSERT INTO usersync_version (username, version) VALUES (?, ?)"
                   " ON CONFLICT (username) DO NOTHING", (username, floor))
    cursor.execute("UPDATE usersync_version SET version = (CASE WHEN version < ? THEN ? ELSE version END) + 1"
                   " WHERE username = ?", (floor, floor, username))
    return outbox.version_of(cursor, username)


def users_batch(cursor, table, fields, include_staff, bump, after, limit=BATCH):
    """
    Queue the events of up to ``limit`` users after ``after`` (by username);
    fire with ``(users seen, events queued, last username or None when done)``.
    """
    columns = tuple(dict.fromkeys(tuple(fields) + ("is_staff",)))
    rows = cursor.execute("SELECT {} FROM {} WHERE username > ? ORDER BY username LIMIT ?".format(
        ", ".join(columns), table), (after, limit)).fetchall()
    now_ms, floor = credentials.database_now_ms(cursor), credentials.version_floor(cursor)
    queued = 0
    for row in rows:
        user = dict(zip(columns, row))
        for flag in BOOLEANS.intersection(user):
            user[flag] = bool(user[flag])
        in_set = include_staff or not user["is_staff"]
        payload = {field: user[field] for field in fields}
        username = user["username"]
        current = outbox.version_of(cursor, username)
        if in_set:
            version = _next_version(cursor, username, floor) if bump or not current else current
            outbox.emit(cursor, username, "insert", version, json.dumps(payload, sort_keys=True), now_ms)
            queued += 1
        elif current:
            # it left the set (while the capture was gone, or a client missed that delete): clients forget it
            version = _next_version(cursor, username, floor) if bump else current
            outbox.emit(cursor, username, "delete", version, json.dumps(payload, sort_keys=True), now_ms)
            queued += 1
    last = rows[-1][columns.index("username")] if len(rows) == limit else None
    return len(rows), queued, last


def gone_batch(cursor, table, after, limit=BATCH):
    """
    Gap repair: names with a sync version that are no longer in ``table``
    get a versioned ``delete``, a credential version bump (their tokens are
    refused) and lose their login sessions; fire like :func:`users_batch`.
    """
    rows = cursor.execute(
        "SELECT v.username FROM usersync_version v WHERE v.username > ? AND NOT EXISTS"
        " (SELECT 1 FROM {} u WHERE u.username = v.username) ORDER BY v.username LIMIT ?".format(table),
        (after, limit)).fetchall()
    now_ms, floor = credentials.database_now_ms(cursor), credentials.version_floor(cursor)
    for (username,) in rows:
        outbox.emit(cursor, username, "delete", _next_version(cursor, username, floor),
                    json.dumps({"username": username}), now_ms)
        credentials.move_version(cursor, username, now_ms, floor)
        cursor.execute("DELETE FROM hub_login_session WHERE username = ?", (username,))
    return len(rows), len(rows), (rows[-1][0] if len(rows) == limit else None)


def tombstones_batch(cursor, table, after, limit=BATCH):
    """
    Names with a sync version that are no longer in ``table`` get a
    ``delete`` at that version (the one of the delete the capture queued),
    for a client that missed it; fire like :func:`users_batch`.
    """
    rows = cursor.execute(
        "SELECT v.username, v.version FROM usersync_version v WHERE v.username > ? AND NOT EXISTS"
        " (SELECT 1 FROM {} u WHERE u.username = v.username) ORDER BY v.username LIMIT ?".format(table),
        (after, limit)).fetchall()
    now_ms = credentials.database_now_ms(cursor)
    for username, version in rows:
        outbox.emit(cursor, username, "delete", int(version), json.dumps({"username": username}), now_ms)
    return len(rows), len(rows), (rows[-1][0] if len(rows) == limit else None)


def end_marker(cursor, covers):
    """
    Queue the end marker of a snapshot that began when ``covers`` was the
    highest sequence number given: a client that receives it knows every
    event numbered up to ``covers`` is superseded by the snapshot before it
    (see :mod:`convergence`).
    """
    outbox.emit(cursor, "", sequence.MARKER, 1, json.dumps({"covers": covers}),
                credentials.database_now_ms(cursor))


def pending(cursor):
    """True while a snapshot's end marker waits in the outbox (that snapshot is still being sent)."""
    return cursor.execute("SELECT 1 FROM usersync_outbox WHERE action = ? AND sent_ms IS NULL LIMIT 1",
                          (sequence.MARKER,)).fetchone() is not None


def credentials_batch(cursor, after, limit=BATCH):
    """Queue the credential versions of up to ``limit`` users after ``after``; like :func:`users_batch`."""
    rows = cursor.execute("SELECT username, version, changed_ms FROM hub_credential WHERE username > ?"
                          " ORDER BY username LIMIT ?", (after, limit)).fetchall()
    now_ms = credentials.database_now_ms(cursor)
    for username, version, changed_ms in rows:
        facts = (username, int(version), int(changed_ms))
        payload = json.dumps(dict(zip(revocation_sync.PAYLOADS[revocation_sync.CREDENTIAL], facts)), sort_keys=True)
        outbox.emit(cursor, username, revocation_sync.CREDENTIAL, int(version), payload, now_ms)
    return len(rows), len(rows), (rows[-1][0] if len(rows) == limit else None)


def logouts_batch(cursor, after, limit=BATCH):
    """Queue the logouts whose tokens may still live (up to ``limit`` after the sid ``after``); like :func:`users_batch`."""
    now_ms = credentials.database_now_ms(cursor)
    rows = cursor.execute("SELECT sid, username, expires_ms FROM hub_revoked_login WHERE sid > ? AND expires_ms >= ?"
                          " ORDER BY sid LIMIT ?", (after, now_ms, limit)).fetchall()
    for sid, username, expires_ms in rows:
        facts = {"username": username, "sid": sid, "expires_ms": int(expires_ms)}
        outbox.emit(cursor, username, revocation_sync.LOGOUT, 1, json.dumps(facts, sort_keys=True), now_ms)
    return len(rows), len(rows), (rows[-1][0] if len(rows) == limit else None)


@defer.inlineCallbacks
def run(db, table, fields=DEFAULT_FIELDS, include_staff=True, bump=False, batch=BATCH, progress=None):
    """
    Queue a whole snapshot of ``table`` in ``db`` (batches of ``batch``
    users, one transaction each); ``progress(stage, seen, queued)`` after
    each batch (stage ``users``, ``gone`` with ``bump``, ``credentials``,
    ``logouts``: the logged-out login sessions whose tokens may still live).
    Without ``bump`` a ``tombstones`` stage sends the deletes of names no
    longer in the table at their versions. Last comes the end marker
    (:func:`end_marker`). Fires with ``{stage: events queued}``.
    """
    covers = yield db.run(sequence.assigned)
    stages = [("users", lambda cursor, after: users_batch(cursor, table, fields, include_staff, bump, after,
                                                          batch))]
    if bump:
        stages.append(("gone", lambda cursor, after: gone_batch(cursor, table, after, batch)))
    else:
        stages.append(("tombstones", lambda cursor, after: tombstones_batch(cursor, table, after, batch)))
    stages.append(("credentials", lambda cursor, after: credentials_batch(cursor, after, batch)))
    stages.append(("logouts", lambda cursor, after: logouts_batch(cursor, after, batch)))
    totals = {}
    for stage, step in stages:
        after, seen, queued = "", 0, 0
        while after is not None:
            count, events, after = yield db.run(step, after)
            seen += count
            queued += events
            if progress is not None:
                progress(stage, seen, queued)
        totals[stage] = queued
    yield db.run(end_marker, covers)
    return totals
