"""
The stored events of history topics, in the client database.

Every event gets a **position** (``pos``) when it is stored: one sequence
over all topics, so positions order events but leave gaps within a topic.
Writers take a transaction-wide lock first on PostgreSQL, so positions
become visible in the order they were given: a reader that saw position
``p`` never sees a smaller one appear later (linked nodes may share one
client database).

An event for named users (``to_users``) is stored once, ``personal``, with
one row per recipient naming the user's credential generation at the time
(``hub_credential``; 0 when the user has none yet). Only that user at that
generation reads it: a password change, a deactivation or a re-created
username starts a new identity, which does not read its predecessor's
personal events (the rule the end-to-end data keys follow).

Per topic a mark records how far pruning went (``pruned_pos``): a reader
asking for events after a position at or below it learns that some are
gone (``pruned``). A write that failed (database down, recorder queue full)
raises the mark of its topics just above the highest position given so
far, so a reader whose position is older than the loss learns it too.
"""

import json

from components.auth import credentials
from components.db import advisory_locks
from components.db.database import POSTGRESQL
from components.db.migrations import Migration, SchemaOnDemand

SCHEMA = "event_history"
MAX_TOPIC = 255
# the stored bodies one page of hub.history carries at most (beyond its first event): "more" says the rest
PAGE_BYTES = 1024 * 1024


def _tables(serial):
    return [
        """CREATE TABLE IF NOT EXISTS hub_event (
            pos {serial},
            topic VARCHAR(255) NOT NULL,
            ts BIGINT NOT NULL,
            personal SMALLINT NOT NULL DEFAULT 0,
            size INTEGER NOT NULL DEFAULT 0,
            body TEXT NOT NULL
        )""".format(serial=serial),
        "CREATE INDEX IF NOT EXISTS hub_event_topic ON hub_event (topic, pos)",
        """CREATE TABLE IF NOT EXISTS hub_event_user (
            username VARCHAR(255) NOT NULL,
            pos BIGINT NOT NULL,
            generation BIGINT NOT NULL,
            PRIMARY KEY (username, pos)
        )""",
        "CREATE INDEX IF NOT EXISTS hub_event_user_pos ON hub_event_user (pos)",
        """CREATE TABLE IF NOT EXISTS hub_event_mark (
            topic VARCHAR(255) PRIMARY KEY,
            pruned_pos BIGINT NOT NULL DEFAULT 0,
            pruned_ts BIGINT NOT NULL DEFAULT 0
        )""",
    ]


MIGRATIONS = [Migration(1, "stored events of history topics, their personal recipients, pruning marks",
                        _tables("INTEGER PRIMARY KEY AUTOINCREMENT"), _tables("BIGSERIAL PRIMARY KEY"))]


def _lock(cursor):
    # one writer at a time on PostgreSQL (it had shared 724032 with the user-sync trigger installer)
    advisory_locks.lock(cursor, advisory_locks.EVENT_HISTORY)


def _highest(cursor):
    """The last position ever given (stored, pruned or not), 0 before the first."""
    if cursor.dialect == POSTGRESQL:
        last, called = cursor.execute("SELECT last_value, is_called FROM hub_event_pos_seq").fetchone()
        return last if called else 0
    row = cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = 'hub_event'").fetchone()
    return row[0] if row else 0


def _raise_mark(cursor, topic, pos, ts):
    cursor.execute(
        "INSERT INTO hub_event_mark (topic, pruned_pos, pruned_ts) VALUES (?, ?, ?) ON CONFLICT (topic) "
        "DO UPDATE SET pruned_pos = CASE WHEN hub_event_mark.pruned_pos > excluded.pruned_pos "
        "THEN hub_event_mark.pruned_pos ELSE excluded.pruned_pos END, "
        "pruned_ts = CASE WHEN hub_event_mark.pruned_ts > excluded.pruned_ts "
        "THEN hub_event_mark.pruned_ts ELSE excluded.pruned_ts END", (topic, pos, ts))


def encode(args, kwargs):
    """The stored body of an event: compact, strict JSON of its ``args`` and ``kwargs`` (ValueError for NaN
    or Infinity, which a browser's JSON cannot read; TypeError for what JSON cannot hold)."""
    return json.dumps({"args": list(args), "kwargs": dict(kwargs)}, separators=(",", ":"), allow_nan=False)


def _append(cursor, events, lost_topics, now_ms):
    """
    Store ``events`` (``[(topic, ts, body, users or None)]``, ``body`` from
    :func:`encode`) in order; first mark every topic of ``lost_topics`` as losing what came
    before (see the module doc). Fire with the position of each event.
    """
    _lock(cursor)
    if lost_topics:
        # a reader who saw the highest position so far (or less) has missed the lost events
        beyond = _highest(cursor) + 1
        for topic in sorted(lost_topics):
            _raise_mark(cursor, topic, beyond, now_ms)
    positions = []
    for topic, ts, body, users in events:
        cursor.execute("INSERT INTO hub_event (topic, ts, personal, size, body) VALUES (?, ?, ?, ?, ?) "
                       "RETURNING pos", (topic, ts, 1 if users is not None else 0, len(body), body))
        pos = cursor.fetchone()[0]
        for user in sorted(set(users or ())):
            cursor.execute("INSERT INTO hub_event_user (username, pos, generation) VALUES (?, ?, ?)",
                           (user, pos, credentials.version_of(cursor, user)[0]))
        positions.append(pos)
    return positions


def _page(cursor, topic, after, limit, username):
    # wait for a writer's commit: no position read here can belong to an event not yet visible
    advisory_locks.lock(cursor, advisory_locks.EVENT_HISTORY, shared=True)
    mark = cursor.execute("SELECT pruned_pos FROM hub_event_mark WHERE topic = ?", (topic,)).fetchone()
    pruned_pos = mark[0] if mark else 0
    generation = credentials.version_of(cursor, username)[0] if username else None
    rows = cursor.execute(
        "SELECT e.pos, e.ts, e.body FROM hub_event e WHERE e.topic = ? AND e.pos > ? AND (e.personal = 0 OR "
        "EXISTS (SELECT 1 FROM hub_event_user u WHERE u.pos = e.pos AND u.username = ? "
        "AND u.generation = ?)) "
        "ORDER BY e.pos LIMIT ?", (topic, after or 0, username or "", generation or 0, limit + 1)).fetchall()
    events = []
    size = 0
    for pos, ts, body in rows[:limit]:
        # one answer stays near PAGE_BYTES whatever the events' size (at least one event per answer)
        size += len(body)
        if events and size > PAGE_BYTES:
            break
        payload = json.loads(body)
        events.append({"publication": pos, "ts": ts, "args": payload["args"], "kwargs": payload["kwargs"]})
    return {"topic": topic, "events": events, "more": len(rows) > len(events),
            "pruned": bool(pruned_pos) and (after is None or after < pruned_pos), "last": _highest(cursor)}


def _cut(cursor, where, params):
    """Delete the events ``where`` selects (and their personal rows), raising each topic's mark to the
    newest one deleted; the number deleted."""
    gone = cursor.execute("SELECT topic, MAX(pos), MAX(ts) FROM hub_event WHERE " + where + " GROUP BY topic",
                          params).fetchall()
    if not gone:
        return 0
    cursor.execute("DELETE FROM hub_event_user WHERE pos IN (SELECT pos FROM hub_event WHERE " + where + ")",
                   params)
    cursor.execute("DELETE FROM hub_event WHERE " + where, params)
    deleted = max(cursor.rowcount, 0)
    for topic, pos, ts in gone:
        _raise_mark(cursor, topic, pos, ts or 0)
    return deleted


def _prune_bytes(cursor, max_bytes):
    """Delete the oldest events (any topic) until the stored bodies take at most ``max_bytes``."""
    total = cursor.execute("SELECT COALESCE(SUM(size), 0) FROM hub_event").fetchone()[0]
    if total <= max_bytes:
        return 0
    row = cursor.execute("SELECT pos FROM (SELECT pos, SUM(size) OVER (ORDER BY pos DESC) AS newer "
                         "FROM hub_event) ranked WHERE newer > ? ORDER BY pos DESC LIMIT 1",
                         (max_bytes,)).fetchone()
    return _cut(cursor, "pos <= ?", (row[0],)) if row else 0


def _prune(cursor, max_events, oldest_ts, max_bytes=None):
    """Cut every topic to its newest ``max_events`` events and to ``ts >= oldest_ts``, then all topics
    together to ``max_bytes`` of stored bodies; fire with rows deleted."""
    _lock(cursor)
    deleted = 0
    for (topic,) in cursor.execute("SELECT DISTINCT topic FROM hub_event").fetchall():
        bound = 0
        row = cursor.execute("SELECT pos FROM hub_event WHERE topic = ? ORDER BY pos DESC LIMIT 1 OFFSET ?",
                             (topic, max_events)).fetchone()
        if row is not None:
            bound = row[0]
        row = cursor.execute("SELECT MAX(pos) FROM hub_event WHERE topic = ? AND ts < ?",
                             (topic, oldest_ts)).fetchone()
        if row is not None and row[0] is not None:
            bound = max(bound, row[0])
        if not bound:
            continue
        deleted += _cut(cursor, "topic = ? AND pos <= ?", (topic, bound))
    if max_bytes is not None:
        deleted += _prune_bytes(cursor, max_bytes)
    return deleted


class EventStore:
    """
    The event tables of ``db`` (a :class:`components.db.database.Database`),
    migrated on first use. Every method fires with its result or fails like
    the database does (``StorageUnavailable``).
    """

    def __init__(self, db):
        self.db = db
        self.schema = SchemaOnDemand(db, SCHEMA, MIGRATIONS)
        # the credential table personal rows read (created here when the auth side has not yet)
        self.credentials = SchemaOnDemand(db, "credentials", credentials.MIGRATIONS)

    def _run(self, interaction, *args):
        d = self.credentials.ready()
        d.addCallback(lambda _: self.schema.run(interaction, *args))
        return d

    def append(self, events, lost_topics=(), now_ms=0):
        """Store ``[(topic, ts, body, users or None)]``; fire with their positions, in order."""
        return self._run(_append, list(events), set(lost_topics), now_ms)

    def page(self, topic, after=None, limit=100, username=None):
        """``{"topic", "events", "more", "pruned", "last"}`` for ``username`` (module doc)."""
        return self._run(_page, topic, after, limit, username)

    def prune(self, max_events, oldest_ts, max_bytes=None):
        """Prune every topic to ``max_events`` events and ``ts >= oldest_ts``, all of them to ``max_bytes``
        of stored bodies; fire with rows deleted."""
        return self._run(_prune, max_events, oldest_ts, max_bytes)
