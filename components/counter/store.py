"""
The click counters in the database: one row per named counter with its value
and a version that the database increments with every click, so the version
is the ``seq`` of the contract across component instances and restarts.

Clicks are applied with one atomic upsert per counter (``INSERT ... ON
CONFLICT DO UPDATE ... RETURNING``): the database adds, nothing reads the old
value first, so concurrent clicks from any number of instances are never lost.

The number of counters is capped: a click that would create a row beyond
``max_names`` rows is not applied. On PostgreSQL a batch that creates rows
first locks the table against other writers (``SHARE ROW EXCLUSIVE``, before
any row of its own is written, so it cannot deadlock), so the cap is exact
across instances; SQLite serialises writers anyway.
"""

from components.db.database import POSTGRESQL
from components.db.migrations import Migration

_CREATE = """
    CREATE TABLE IF NOT EXISTS hub_counter (
        name VARCHAR(64) PRIMARY KEY,
        value BIGINT NOT NULL,
        version BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    )"""

MIGRATIONS = [
    Migration(1, "named click counters", sqlite=[_CREATE], postgresql=[_CREATE]),
]

_UPSERT = """
    INSERT INTO hub_counter (name, value, version, updated_ms) VALUES (?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET
        value = hub_counter.value + excluded.value,
        version = hub_counter.version + excluded.version,
        updated_ms = excluded.updated_ms
    RETURNING value, version"""

_READ = "SELECT value, version, updated_ms FROM hub_counter WHERE name = ?"
_COUNT = "SELECT COUNT(*) FROM hub_counter"
# blocks other writers (their ROW EXCLUSIVE) and itself, not readers
_LOCK = "LOCK TABLE hub_counter IN SHARE ROW EXCLUSIVE MODE"


def state(name, value, seq, ts):
    """The contract's state dict of counter ``name``."""
    return {"value": value, "seq": seq, "ts": ts, "name": name}


def existing(cursor, names):
    """The subset of ``names`` that have a row."""
    names = sorted(set(names))
    if not names:
        return set()
    sql = "SELECT name FROM hub_counter WHERE name IN ({})".format(", ".join("?" * len(names)))
    return {row[0] for row in cursor.execute(sql, names).fetchall()}


def exists(cursor, name):
    """Whether counter ``name`` has a row (was ever clicked)."""
    return bool(existing(cursor, [name]))


def beyond_cap(cursor, names, max_names):
    """
    The names among ``names`` that have no row and would not fit under
    ``max_names`` rows in total; the others get their rows in name order.
    """
    new = sorted(set(names) - existing(cursor, names))
    if not new:
        return set()
    if cursor.dialect == POSTGRESQL:
        cursor.execute(_LOCK)
        new = sorted(set(new) - existing(cursor, new))  # another instance may have created some meanwhile
    room = max(0, max_names - cursor.execute(_COUNT).fetchone()[0])
    return set(new[room:])


def add_clicks(cursor, clicks, now_ms, max_names=None):
    """
    Apply ``clicks`` (a list of ``(name, n)``) in the cursor's transaction and
    return one state dict per click, in order, as if each had been its own
    transaction: click i of a counter gets that counter's version before the
    batch plus i, and the value after its own increment. Counters are updated
    in name order so concurrent batches of several instances cannot deadlock.
    With ``max_names``, a click that would create a counter beyond that many
    is not applied and gets ``None`` instead of a state.
    """
    totals = {}
    for name, n in clicks:
        total, count = totals.get(name, (0, 0))
        totals[name] = (total + n, count + 1)
    refused = beyond_cap(cursor, totals, max_names) if max_names is not None else set()
    running = {}
    for name in sorted(set(totals) - refused):
        total, count = totals[name]
        value, version = cursor.execute(_UPSERT, (name, total, count, now_ms)).fetchone()
        running[name] = [value - total, version - count]
    results = []
    for name, n in clicks:
        if name in refused:
            results.append(None)
            continue
        current = running[name]
        current[0] += n
        current[1] += 1
        results.append(state(name, current[0], current[1], now_ms))
    return results


def read(cursor, name, now_ms):
    """The state of counter ``name``; a counter never clicked is 0 with seq 0."""
    row = cursor.execute(_READ, (name,)).fetchone()
    if row is None:
        return state(name, 0, 0, now_ms)
    value, version, updated_ms = row
    return state(name, value, version, updated_ms)
