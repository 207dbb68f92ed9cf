"""
A client's view of how far it got in the master's sequence
(:mod:`sequence`), kept in its own database in the same transaction as the
changes, so every bridge of one client database (several pollers, several
container workers) shares it and a restart keeps it:

- ``mark``: every number up to it is held (applied, found not newer, or
  superseded by a snapshot); ``usersync_seen`` holds the numbers above it
  that arrived already;
- ``high``: the highest number known to exist (from messages and the
  master's beacons);
- ``epoch``: the master's; a message of another epoch (a replaced master
  database) starts the count over, and the epoch left is remembered
  (``usersync_left_epoch``, the last ``LEFT_EPOCHS``): a message of an
  epoch the client has left counts for nothing here (a replayed old
  message, validly signed, would otherwise throw the client back to
  ``converging`` again and again; the replica's version rule still applies
  it as what it is, a change not newer than what the client holds).

A hole is a number under ``high`` that never arrived: a message published
before this client's queue was subscribed, deleted from the queue, lost
with a restarted emulator. When ``mark`` has been stuck below ``high`` for
``grace`` seconds, :func:`due` says a snapshot must be asked for
(:mod:`requests`); the master queues one and ends it with a ``synced``
marker whose ``covers`` is the highest number given before the snapshot
began: every hole up to it is then healed, and the snapshot's own events
(numbered above) fill in like any other. Under the replica's version rule a
snapshot never moves a user backwards.

:func:`status` is what ``/health/ready`` reports: ``in sync``,
``converging`` (nothing heard from the master yet, or the first sync not
complete) or ``behind`` (a hole after having been in sync). The tables
(``usersync_sync``, ``usersync_seen``) are the replica's second migration.
"""

from components.usersync import revocation_sync
from components.usersync.messages import BEACON, SYNCED, Sync

IN_SYNC, CONVERGING, BEHIND = "in sync", "converging", "behind"
# master epochs a client remembers having left
LEFT_EPOCHS = 32
_COLUMNS = ("epoch", "mark", "high", "started_ms", "heard_ms", "stuck_ms", "synced_ms", "requested_ms",
            "requests", "reply")


def begin(cursor, now_ms):
    """Start tracking (a bridge runs on this database): the row exists from now on."""
    cursor.execute("INSERT INTO usersync_sync (id, mark, high, started_ms, requests) VALUES (1, 0, 0, ?, 0)"
                   " ON CONFLICT (id) DO NOTHING", (now_ms,))


def read(cursor):
    """The tracking row as a dict, or None when no bridge ever ran on this database."""
    row = cursor.execute("SELECT {} FROM usersync_sync WHERE id = 1".format(", ".join(_COLUMNS))).fetchone()
    return None if row is None else dict(zip(_COLUMNS, row))


def _advance(cursor, mark):
    """The new mark: up through the numbers seen right above ``mark``; those at or under it are forgotten."""
    while cursor.execute("SELECT 1 FROM usersync_seen WHERE seq = ?", (mark + 1,)).fetchone():
        run = cursor.execute("SELECT seq FROM usersync_seen WHERE seq > ? ORDER BY seq LIMIT 1000",
                             (mark,)).fetchall()
        for (seq,) in run:
            if seq != mark + 1:
                break
            mark = seq
    cursor.execute("DELETE FROM usersync_seen WHERE seq <= ?", (mark,))
    return mark


def _left(cursor, epoch):
    return cursor.execute("SELECT 1 FROM usersync_left_epoch WHERE epoch = ?", (epoch,)).fetchone() is not None


def _leave(cursor, epoch, now_ms):
    """Remember ``epoch`` as left (the last ``LEFT_EPOCHS`` are kept)."""
    cursor.execute("INSERT INTO usersync_left_epoch (epoch, left_ms) VALUES (?, ?) ON CONFLICT (epoch) DO NOTHING",
                   (epoch, now_ms))
    cursor.execute("DELETE FROM usersync_left_epoch WHERE epoch NOT IN (SELECT epoch FROM usersync_left_epoch"
                   " ORDER BY left_ms DESC, epoch LIMIT ?)", (LEFT_EPOCHS,))


def track(cursor, items, now_ms):
    """
    Note the numbered ``items`` (parsed messages that were applied or found
    not newer, and :class:`Sync` messages) in the tracking row; returns the
    row after the update. Items without an epoch (not numbered) count for
    nothing.
    """
    begin(cursor, now_ms)
    # the row lock first: concurrent bridges of one PostgreSQL database take turns here
    cursor.execute("UPDATE usersync_sync SET heard_ms = ? WHERE id = 1", (now_ms,))
    state = read(cursor)
    original = (state["epoch"], state["mark"])
    for item in items:
        epoch = getattr(item, "epoch", None)
        if epoch is None:
            continue
        if state["epoch"] != epoch:
            if _left(cursor, epoch):
                continue  # an old message of a master database this client has moved on from
            if state["epoch"] is not None:
                _leave(cursor, state["epoch"], now_ms)
            # a first message, or another master database: count from its beginning
            cursor.execute("DELETE FROM usersync_seen")
            state.update(epoch=epoch, mark=0, high=0, stuck_ms=None,
                         synced_ms=state["synced_ms"] if state["epoch"] is None else None)
        if isinstance(item, Sync) and item.kind == BEACON:
            state["high"] = max(state["high"], item.high)
            state["reply"] = item.reply or state["reply"]
            continue
        if isinstance(item, Sync) and item.kind == SYNCED:
            state["mark"] = max(state["mark"], item.covers)
        if item.seq is not None:
            state["high"] = max(state["high"], item.seq)
            if item.seq > state["mark"]:
                cursor.execute("INSERT INTO usersync_seen (seq) VALUES (?) ON CONFLICT (seq) DO NOTHING",
                               (item.seq,))
    state["mark"] = _advance(cursor, state["mark"])
    if state["mark"] >= state["high"]:
        state.update(stuck_ms=None, synced_ms=now_ms)
    elif state["stuck_ms"] is None or (state["epoch"], state["mark"]) != original:
        # stuck since now: the grace runs from the last progress
        state["stuck_ms"] = now_ms
    cursor.execute("UPDATE usersync_sync SET epoch = ?, mark = ?, high = ?, stuck_ms = ?, synced_ms = ?, reply = ?"
                   " WHERE id = 1", (state["epoch"], state["mark"], state["high"], state["stuck_ms"],
                                     state["synced_ms"], state["reply"]))
    return state


def apply(cursor, items, now_ms, table=None):
    """
    The bridge's transaction: the changes and revocations among ``items``
    (:func:`revocation_sync.apply`, into the user table ``table``), then
    :func:`track` of all of them; returns the changes that took effect.
    """
    applied = revocation_sync.apply(cursor, [item for item in items if not isinstance(item, Sync)], now_ms, table)
    track(cursor, items, now_ms)
    return applied


def missing(cursor, state):
    """How many numbers between ``mark`` and ``high`` never arrived."""
    above = cursor.execute("SELECT COUNT(*) FROM usersync_seen WHERE seq <= ?", (state["high"],)).fetchone()[0]
    return max(0, state["high"] - state["mark"] - int(above))


def status(cursor, now_ms):
    """
    None when no bridge ever ran on this database, else a dict: ``state``
    (in sync / converging / behind), ``ok`` (in sync), ``mark``, ``high``,
    ``missing``, ``requested`` (a snapshot was asked for since the last
    time in sync), ``heard_s`` (seconds since the master was last heard).
    """
    state = read(cursor)
    if state is None:
        return None
    if state["epoch"] is None:
        name = CONVERGING
    elif state["mark"] >= state["high"]:
        name = IN_SYNC
    else:
        name = BEHIND if state["synced_ms"] is not None else CONVERGING
    requested = state["requested_ms"] is not None and (state["synced_ms"] is None
                                                       or state["requested_ms"] > state["synced_ms"])
    heard = None if state["heard_ms"] is None else round((now_ms - state["heard_ms"]) / 1000.0, 1)
    return {"state": name, "ok": name == IN_SYNC, "mark": state["mark"], "high": state["high"],
            "missing": missing(cursor, state), "requested": requested, "heard_s": heard}


def due(cursor, now_ms, grace_ms, retry_ms):
    """
    A snapshot request to send now, or None: ``mark`` has been stuck below
    ``high`` for ``grace_ms`` and no request went out in the last
    ``retry_ms`` (by any bridge of this database: the row records it).
    Fires with ``{"epoch", "mark", "high", "missing", "reply"}``; ``reply``
    None when no beacon named the master's request queue yet.
    """
    state = read(cursor)
    if state is None or state["epoch"] is None or state["mark"] >= state["high"] or state["stuck_ms"] is None:
        return None
    if now_ms - state["stuck_ms"] < grace_ms:
        return None
    if state["requested_ms"] is not None and now_ms - state["requested_ms"] < retry_ms:
        return None
    cursor.execute("UPDATE usersync_sync SET requested_ms = ?, requests = requests + 1 WHERE id = 1", (now_ms,))
    return {"epoch": state["epoch"], "mark": state["mark"], "high": state["high"],
            "missing": missing(cursor, state), "reply": state["reply"]}
