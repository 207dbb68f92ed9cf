"""
The click counters in the database: one row per named counter with its value
and a version that the database increments with every click, so the version
is the ``seq`` of the contract across component instances and restarts.

Clicks are applied with one atomic upsert per counter (``INSERT ... ON
CONFLICT DO UPDATE ... RETURNING``): the database adds, nothing reads the old
value first, so concurrent clicks from any number of instances are never lost.
"""

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


def state(name, value, seq, ts):
    """The contract's state dict of counter ``name``."""
    return {"value": value, "seq": seq, "ts": ts, "name": name}


def add_clicks(cursor, clicks, now_ms):
    """
    Apply ``clicks`` (a list of ``(name, n)``) in the cursor's transaction and
    return one state dict per click, in order, as if each had been its own
    transaction: click i of a counter gets that counter's version before the
    batch plus i, and the value after its own increment. Counters are updated
    in name order so concurrent batches of several instances cannot deadlock.
    """
    totals = {}
    for name, n in clicks:
        total, count = totals.get(name, (0, 0))
        totals[name] = (total + n, count + 1)
    running = {}
    for name in sorted(totals):
        total, count = totals[name]
        value, version = cursor.execute(_UPSERT, (name, total, count, now_ms)).fetchone()
        running[name] = [value - total, version - count]
    results = []
    for name, n in clicks:
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
