"""
The replay memory of the device HTTP bridge, in the client database: every
node of a deployment that shares that database refuses a signed request that
any of them has accepted before.

One row per accepted signature with the moment it may be forgotten. A request
is only valid while its timestamp is within ``DEVICE_TIMESTAMP_LIMIT`` of a
node's clock, so a row is kept for twice that limit plus ``SKEW`` seconds
(nodes' clocks may differ by that much) and then pruned: the table holds at
most the requests of that window. Claiming is one atomic upsert: of several
nodes claiming the same signature at once exactly one wins, on SQLite and
PostgreSQL alike.
"""

import time

from twisted.logger import Logger

from components.db.migrations import Migration, SchemaOnDemand

log = Logger()

SCHEMA = "iot_replay"
# seconds the nodes' clocks may disagree on top of the timestamp window
SKEW = 5
# seconds between two prunes by one node
PRUNE_EVERY = 1.0

_CREATE = """
    CREATE TABLE IF NOT EXISTS hub_device_replay (
        signature VARCHAR(128) PRIMARY KEY,
        expires_ms BIGINT NOT NULL
    )"""
_INDEX = "CREATE INDEX IF NOT EXISTS hub_device_replay_expires ON hub_device_replay (expires_ms)"

MIGRATIONS = [
    Migration(1, "signatures of accepted device requests",
              sqlite=[_CREATE, _INDEX], postgresql=[_CREATE, _INDEX]),
]

# inserts a new signature, or takes over an expired row not yet pruned; a live row is left alone (0 rows)
_CLAIM = """
    INSERT INTO hub_device_replay (signature, expires_ms) VALUES (?, ?)
    ON CONFLICT (signature) DO UPDATE SET expires_ms = excluded.expires_ms
    WHERE hub_device_replay.expires_ms <= ?"""
_PRUNE = "DELETE FROM hub_device_replay WHERE expires_ms <= ?"


class ReplayStore:
    """
    ``claim(signature)`` fires True the first time a signature is claimed
    within its window (on any node using ``db``), False for a repeat; it
    fails like the database (``StorageUnavailable``) when that is down.
    """

    def __init__(self, db, limit, clock=time.time):
        self.db = db
        self.keep_ms = int((2 * limit + SKEW) * 1000)
        self.clock = clock
        self.schema = SchemaOnDemand(db, SCHEMA, MIGRATIONS)
        self._next_prune = 0.0

    def claim(self, signature):
        now = self.clock()
        now_ms = int(now * 1000)
        d = self.schema.ready()
        d.addCallback(lambda _: self.db.run(_claim, signature, now_ms, now_ms + self.keep_ms))
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            d.addCallback(self._prune, now_ms)
        return d

    def _prune(self, fresh, now_ms):
        """Forget expired rows in a transaction of their own (a failed prune is retried on a later claim)."""
        pruned = self.db.execute(_PRUNE, (now_ms,))
        pruned.addErrback(lambda failure: log.warn("device replay prune failed: {error}",
                                                   error=failure.value))
        return pruned.addCallback(lambda _: fresh)


def _claim(cursor, signature, now_ms, expires_ms):
    return cursor.execute(_CLAIM, (signature, expires_ms, now_ms)).rowcount == 1
