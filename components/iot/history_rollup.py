"""
Rollups of the IoT history: per source, 1-minute and 1-hour buckets of the
numeric readings with ``min``, ``max``, ``sum``, ``count`` and ``last`` (the
value of the highest seq in the bucket). They are kept up to date in the
transaction that stores the raw states (:func:`add`, called with the states
that were new there), so a source is never rescanned: each new state costs
one upsert per resolution, batched per bucket.

What rolls up: a state that is not marked stale and whose ``value`` is a
finite number or decimal text (``42``, ``"3.5"``, as the chart reads it);
``true``/``false``, other text, objects, lists and ``null`` stay in the raw
history only. A bucket is the state's ``ts`` (epoch ms) rounded down to the
minute or hour; a bucket with no numeric reading has no row.

The cursor of a rollup row is its bucket start (epoch ms), given as ``seq``
(and ``ts``): ``after_seq`` pages like the raw history. A bucket keeps
growing while readings with its time arrive (the newest one, normally), so a
reader that keeps a chart current asks again after its newest row's
predecessor. Rollup pruning removes whole buckets that ended before the
cut-off and marks, per source and resolution, the newest bucket it removed.
"""

import math
import re

RAW = "raw"
WIDTHS = {"1m": 60_000, "1h": 3_600_000}
RESOLUTIONS = (RAW,) + tuple(WIDTHS)
_DECIMAL = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*\Z")
_ROWS_PER_STATEMENT = 200

TABLES = [
    """CREATE TABLE IF NOT EXISTS iot_history_rollup (
        source VARCHAR(255) NOT NULL,
        width BIGINT NOT NULL,
        bucket BIGINT NOT NULL,
        min_value DOUBLE PRECISION NOT NULL,
        max_value DOUBLE PRECISION NOT NULL,
        sum_value DOUBLE PRECISION NOT NULL,
        readings BIGINT NOT NULL,
        last_value DOUBLE PRECISION NOT NULL,
        last_seq BIGINT NOT NULL,
        last_ts BIGINT NOT NULL,
        PRIMARY KEY (source, width, bucket)
    )""",
    """CREATE TABLE IF NOT EXISTS iot_history_rollup_marks (
        source VARCHAR(255) NOT NULL,
        width BIGINT NOT NULL,
        pruned_bucket BIGINT NOT NULL,
        PRIMARY KEY (source, width)
    )""",
]


def number(state):
    """The reading of ``state`` as a float for the rollups, or None (module doc: what rolls up)."""
    if not isinstance(state, dict) or state.get("stale") is True:
        return None
    value = state.get("value")
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _DECIMAL.match(value):
            return None
    elif not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except (OverflowError, ValueError):
        return None
    return value if math.isfinite(value) else None


def aggregate(rows):
    """``{(source, width, bucket): [min, max, sum, count, last, last_seq, last_ts]}`` of ``(source, state)``
    rows."""
    buckets = {}
    for source, state in rows:
        value = number(state)
        if value is None:
            continue
        seq, ts = state["seq"], state["ts"]
        for width in WIDTHS.values():
            key = (source, width, ts - ts % width)
            entry = buckets.get(key)
            if entry is None:
                buckets[key] = [value, value, value, 1, value, seq, ts]
                continue
            entry[0] = min(entry[0], value)
            entry[1] = max(entry[1], value)
            entry[2] += value
            entry[3] += 1
            if seq > entry[5]:
                entry[4], entry[5], entry[6] = value, seq, ts
    return buckets


_T = "iot_history_rollup"
_NEWER = "CASE WHEN excluded.last_seq > {t}.last_seq THEN excluded.{c} ELSE {t}.{c} END"
_UPSERT_TAIL = (
    " ON CONFLICT (source, width, bucket) DO UPDATE SET "
    "min_value = CASE WHEN excluded.min_value < {t}.min_value THEN excluded.min_value "
    "ELSE {t}.min_value END, "
    "max_value = CASE WHEN excluded.max_value > {t}.max_value THEN excluded.max_value "
    "ELSE {t}.max_value END, "
    "sum_value = {t}.sum_value + excluded.sum_value, readings = {t}.readings + excluded.readings, "
).format(t=_T) + ", ".join("{c} = ".format(c=column) + _NEWER.format(t=_T, c=column)
                           for column in ("last_value", "last_ts", "last_seq"))
_COLUMNS = "source, width, bucket, min_value, max_value, sum_value, readings, last_value, last_seq, last_ts"


def add(cursor, rows):
    """Fold the new ``(source, state)`` rows into the rollups (in the caller's transaction); the buckets
    touched."""
    buckets = aggregate(rows)
    values = [key + tuple(entry) for key, entry in sorted(buckets.items())]
    for start in range(0, len(values), _ROWS_PER_STATEMENT):
        chunk = values[start:start + _ROWS_PER_STATEMENT]
        cursor.execute("INSERT INTO " + _T + " (" + _COLUMNS + ") VALUES "
                       + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)) + _UPSERT_TAIL,
                       [item for row in chunk for item in row])
    return len(values)


def _row(bucket, low, high, total, count, last, last_seq, last_ts):
    average = total / count
    return {"seq": bucket, "ts": bucket, "value": average, "min": low, "max": high, "avg": average,
            "count": count, "last": last, "last_seq": last_seq, "last_ts": last_ts}


def page(cursor, source, resolution, after, limit, since_ts):
    """``{"source", "resolution", "states", "pruned", "more"}``: rollup rows of ``source`` (module doc)."""
    width = WIDTHS[resolution]
    mark = cursor.execute("SELECT pruned_bucket FROM iot_history_rollup_marks "
                          "WHERE source = ? AND width = ?", (source, width)).fetchone()
    pruned_bucket = mark[0] if mark else None
    sql = ("SELECT bucket, min_value, max_value, sum_value, readings, last_value, last_seq, last_ts "
           "FROM " + _T + " WHERE source = ? AND width = ?")
    params = [source, width]
    if after is not None:
        sql += " AND bucket > ?"
        params.append(after)
    if since_ts is not None:
        # every bucket that reaches into the window
        sql += " AND bucket > ?"
        params.append(since_ts - width)
    sql += " ORDER BY bucket LIMIT ?"
    params.append(limit + 1)
    rows = cursor.execute(sql, params).fetchall()
    pruned = pruned_bucket is not None
    if pruned and after is not None:
        pruned = pruned_bucket > after
    if pruned and since_ts is not None:
        pruned = pruned_bucket + width > since_ts
    return {"source": source, "resolution": resolution, "states": [_row(*row) for row in rows[:limit]],
            "pruned": pruned, "more": len(rows) > limit}


def prune(cursor, sources, oldest_ts):
    """Remove the buckets of ``sources`` that ended at or before ``oldest_ts``; the rows deleted."""
    deleted = 0
    for source in sources:
        for width in WIDTHS.values():
            gone = cursor.execute("SELECT MAX(bucket) FROM " + _T + " WHERE source = ? AND width = ? "
                                  "AND bucket <= ?", (source, width, oldest_ts - width)).fetchone()[0]
            if gone is None:
                continue
            cursor.execute("DELETE FROM " + _T + " WHERE source = ? AND width = ? AND bucket <= ?",
                           (source, width, gone))
            deleted += max(cursor.rowcount, 0)
            cursor.execute("INSERT INTO iot_history_rollup_marks (source, width, pruned_bucket) "
                           "VALUES (?, ?, ?) ON CONFLICT (source, width) DO UPDATE SET "
                           "pruned_bucket = excluded.pruned_bucket "
                           "WHERE excluded.pruned_bucket > iot_history_rollup_marks.pruned_bucket",
                           (source, width, gone))
    return deleted
