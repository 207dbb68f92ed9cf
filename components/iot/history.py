"""
The stored history of every IoT source, in the client database: each
published state of ``iot.serial.reader``, ``iot.odata.value`` and every
``iot.device.<name>`` topic (the source id is the topic URI), one row per
``(source, seq)``.

A second table keeps, per source, the newest state (for ``iot.sources``)
and how far pruning went: ``pruned_seq``/``pruned_ts`` are the highest seq
and ts ever pruned, so a reader asking for states after a seq at or below
``pruned_seq`` learns that some of them are gone. Pruning always removes a
prefix (by seq) of a source's states: those beyond ``max_states`` newest and
those older than ``max_age``.

Writes are idempotent: a ``(source, seq)`` already stored is ignored, so
linked nodes sharing one client database may both write the same state.
The states that were new in a write are folded into the 1-minute and 1-hour
rollups in the same transaction (:mod:`components.iot.history_rollup`).
"""

import json

from components.db.migrations import Migration, SchemaOnDemand
from components.iot import DEVICE_PREFIX, ODATA_TOPIC, SERIAL_TOPIC
from components.iot import history_rollup
from components.iot.device_registry import NAME

SCHEMA = "iot_history"
MAX_SOURCE = 255

_TABLES = [
    """CREATE TABLE IF NOT EXISTS iot_history (
        source VARCHAR(255) NOT NULL,
        seq BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (source, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS iot_history_sources (
        source VARCHAR(255) PRIMARY KEY,
        last_seq BIGINT NOT NULL,
        last_ts BIGINT NOT NULL,
        state TEXT NOT NULL,
        pruned_seq BIGINT NOT NULL DEFAULT 0,
        pruned_ts BIGINT NOT NULL DEFAULT 0
    )""",
]

# iot.history(minutes=N) and pruning by age find a source's recent states without walking its older ones
_BY_TS = ["CREATE INDEX IF NOT EXISTS iot_history_source_ts ON iot_history (source, ts)"]

MIGRATIONS = [Migration(1, "IoT source history and per-source latest state / pruning mark", _TABLES, _TABLES),
              Migration(2, "IoT history rollups (1 min, 1 h) and their pruning marks", history_rollup.TABLES,
                        history_rollup.TABLES),
              Migration(3, "IoT history: states by source and ts", _BY_TS, _BY_TS)]


def kind_of(source):
    """``serial``, ``odata`` or ``device`` (``iot.device.<a device name>``) for a source id (topic URI), else
    None: for anything else, control characters, spaces, dots and non-ASCII text included."""
    if source == SERIAL_TOPIC:
        return "serial"
    if source == ODATA_TOPIC:
        return "odata"
    if isinstance(source, str) and source.startswith(DEVICE_PREFIX) and NAME.fullmatch(source[len(DEVICE_PREFIX):]):
        return "device"
    return None


_ROWS_PER_STATEMENT = 200


def _insert(cursor, rows):
    """Store ``rows`` of ``(source, state)``; duplicates ignored; fire with the number of new rows."""
    added = []
    newest = {}
    values = []
    for source, state in rows:
        values.append((source, state["seq"], state["ts"], json.dumps(state, separators=(",", ":"))))
        if source not in newest or state["seq"] > newest[source][1]:
            newest[source] = values[-1]
    # many rows per statement: one round trip (and one GIL hand-over) per 200 states, not per state;
    # RETURNING names the rows that were new (a duplicate written by a linked node must not roll up twice)
    for start in range(0, len(values), _ROWS_PER_STATEMENT):
        chunk = values[start:start + _ROWS_PER_STATEMENT]
        cursor.execute("INSERT INTO iot_history (source, seq, ts, state) VALUES "
                       + ", ".join(["(?, ?, ?, ?)"] * len(chunk))
                       + " ON CONFLICT (source, seq) DO NOTHING RETURNING source, seq",
                       [item for row in chunk for item in row])
        added.extend(cursor.fetchall())
    if added:
        new = set((source, seq) for source, seq in added)
        fresh = []
        for source, state in rows:
            if (source, state["seq"]) in new:
                new.discard((source, state["seq"]))   # a state twice in one batch rolls up once
                fresh.append((source, state))
        history_rollup.add(cursor, fresh)
    for row in newest.values():
        cursor.execute(
            "INSERT INTO iot_history_sources (source, last_seq, last_ts, state) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (source) DO UPDATE SET last_seq = excluded.last_seq, last_ts = excluded.last_ts, "
            "state = excluded.state WHERE excluded.last_seq > iot_history_sources.last_seq", row)
    return len(added)


def _page(cursor, source, after_seq, limit, since_ts, resolution=history_rollup.RAW):
    if resolution != history_rollup.RAW:
        return history_rollup.page(cursor, source, resolution, after_seq, limit, since_ts)
    mark = cursor.execute("SELECT pruned_seq, pruned_ts FROM iot_history_sources WHERE source = ?",
                          (source,)).fetchone()
    pruned_seq, pruned_ts = mark if mark else (0, 0)
    sql = "SELECT state FROM iot_history WHERE source = ?"
    params = [source]
    if after_seq is not None:
        sql += " AND seq > ?"
        params.append(after_seq)
    if since_ts is not None:
        sql += " AND ts >= ?"
        params.append(since_ts)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit + 1)
    rows = cursor.execute(sql, params).fetchall()
    states = [json.loads(row[0]) for row in rows[:limit]]
    # were states the caller asked for pruned? after_seq: any seq in (after_seq, pruned_seq];
    # minutes: a pruned state inside the window; neither: anything pruned at all
    pruned = pruned_seq > 0
    if after_seq is not None:
        pruned = pruned and pruned_seq > after_seq
    if since_ts is not None:
        pruned = pruned and pruned_ts >= since_ts
    return {"source": source, "resolution": history_rollup.RAW, "states": states, "pruned": bool(pruned),
            "more": len(rows) > limit}


def _prune(cursor, max_states, oldest_ts, rollup_oldest_ts=None):
    """
    Cut every source's raw states to its newest ``max_states`` and to ``ts >= oldest_ts``, and with
    ``rollup_oldest_ts`` its rollups to the buckets ending after it; fire with the rows deleted.
    """
    deleted = 0
    sources = [row[0] for row in cursor.execute("SELECT source FROM iot_history_sources").fetchall()]
    if rollup_oldest_ts is not None:
        deleted += history_rollup.prune(cursor, sources, rollup_oldest_ts)
    for source in sources:
        bound = 0
        row = cursor.execute("SELECT seq FROM iot_history WHERE source = ? "
                             "ORDER BY seq DESC LIMIT 1 OFFSET ?",
                             (source, max_states)).fetchone()
        if row is not None:
            bound = row[0]
        row = cursor.execute("SELECT MAX(seq) FROM iot_history WHERE source = ? AND ts < ?",
                             (source, oldest_ts)).fetchone()
        if row is not None and row[0] is not None:
            bound = max(bound, row[0])
        if not bound:
            continue
        gone = cursor.execute("SELECT MAX(ts) FROM iot_history WHERE source = ? AND seq <= ?",
                              (source, bound)).fetchone()[0]
        if gone is None:
            continue
        cursor.execute("DELETE FROM iot_history WHERE source = ? AND seq <= ?", (source, bound))
        deleted += max(cursor.rowcount, 0)
        cursor.execute("UPDATE iot_history_sources SET pruned_seq = CASE WHEN pruned_seq > ? THEN pruned_seq "
                       "ELSE ? END, pruned_ts = CASE WHEN pruned_ts > ? THEN pruned_ts ELSE ? END "
                       "WHERE source = ?", (bound, bound, gone, gone, source))
    return deleted


_UNDER = "source LIKE ? ESCAPE '!'"


def _pattern(prefix):
    """A LIKE pattern for the sources starting with ``prefix`` (escape character ``!``)."""
    return prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


def _highest(cursor, source=None, prefix=None):
    """The highest seq ever stored (or pruned) for ``source``, or for any source starting with ``prefix``."""
    if prefix is not None:
        where, params = _UNDER, (_pattern(prefix),)
    else:
        where, params = "source = ?", (source,)
    row = cursor.execute("SELECT MAX(last_seq), MAX(pruned_seq) FROM iot_history_sources WHERE " + where,
                         params).fetchone()
    return max(row[0] or 0, row[1] or 0) if row else 0


def _highest_each(cursor, prefix):
    """``{source: highest seq stored or pruned}`` of every source starting with ``prefix``."""
    rows = cursor.execute("SELECT source, last_seq, pruned_seq FROM iot_history_sources WHERE " + _UNDER,
                          (_pattern(prefix),)).fetchall()
    return {source: max(last_seq, pruned_seq) for source, last_seq, pruned_seq in rows}


def _sources(cursor):
    rows = cursor.execute("SELECT source, last_ts, state FROM iot_history_sources ORDER BY source").fetchall()
    return [(source, last_ts, json.loads(state)) for source, last_ts, state in rows]


class HistoryStore:
    """
    The history tables of ``db`` (a :class:`components.db.database.Database`),
    migrated on first use (and again after a failed attempt, so a database
    that is down at start is fine once it is back). Every method fires with
    its result or fails like the database does (``StorageUnavailable``).
    """

    def __init__(self, db):
        self.db = db
        self.schema = SchemaOnDemand(db, SCHEMA, MIGRATIONS)

    def insert(self, rows):
        """Store ``[(source, state), ...]``; fire with how many were new."""
        return self.schema.run(_insert, list(rows))

    def page(self, source, after_seq=None, limit=500, since_ts=None, resolution=history_rollup.RAW):
        """
        ``{"source", "states", "pruned", "more"}``: up to ``limit`` states, oldest first (module doc); with
        ``resolution`` ``1m`` or ``1h`` the rollup rows instead (:func:`components.iot.history_rollup.page`).
        """
        return self.schema.run(_page, source, after_seq, limit, since_ts, resolution)

    def prune(self, max_states, oldest_ts, rollup_oldest_ts=None):
        """Prune every source's raw states to ``max_states`` and ``ts >= oldest_ts``, its rollups to
        ``rollup_oldest_ts`` (when given); fire with the rows deleted."""
        return self.schema.run(_prune, max_states, oldest_ts, rollup_oldest_ts)

    def highest_seq(self, source=None, prefix=None):
        """The highest seq stored or pruned for ``source`` (or any source under ``prefix``), 0 if none."""
        return self.schema.run(_highest, source, prefix)

    def highest_each(self, prefix):
        """``{source: highest seq stored or pruned}`` for every source under ``prefix``."""
        return self.schema.run(_highest_each, prefix)

    def sources(self):
        """``[(source, last_ts, latest state), ...]`` of every source with history, by name."""
        return self.schema.run(_sources)
