"""
One connection pool per process per database: every handle on one URL
leases the same pool, built by the first; the pool is closed when the last
lease is released, never while another handle still holds it.

A pool can also be closed from outside: the reactor's "shutdown" event
closes every adbapi pool (a trial ``--jobs`` worker fires it after each
test). A lease whose pool was closed that way gets a new one built at its
next use, so a handle outlives such a shutdown.
"""


class SharedPools:
    """
    The pools of one process, by key (the database URL). ``build(key)`` makes
    a pool: an object with ``close()`` and a ``closed`` attribute that turns
    true once the pool is closed, whoever closed it.
    """

    def __init__(self, build):
        self._build = build
        self._pools = {}    # key -> pool
        self._leases = {}   # key -> number of unreleased leases

    def acquire(self, key):
        """A :class:`Lease` on the pool of ``key``, built now when there is none (a failed build leases nothing)."""
        self.pool(key)
        self._leases[key] = self._leases.get(key, 0) + 1
        return Lease(self, key)

    def pool(self, key):
        """The open pool of ``key``: the current one, or a new one when it is missing or was closed."""
        pool = self._pools.get(key)
        if pool is None or pool.closed:
            pool = self._pools[key] = self._build(key)
        return pool

    def release(self, key):
        """One lease fewer on ``key``; the last one closes the pool."""
        self._leases[key] -= 1
        if self._leases[key] > 0:
            return
        del self._leases[key]
        pool = self._pools.pop(key, None)
        if pool is not None and not pool.closed:
            pool.close()

    def leases(self, key):
        """How many unreleased leases ``key`` has (0 when its pool is closed)."""
        return self._leases.get(key, 0)


class Lease:
    """One handle's share of a pool: ``pool`` (rebuilt when closed from outside) until ``release()``."""

    def __init__(self, pools, key):
        self._pools, self.key = pools, key
        self.released = False

    @property
    def pool(self):
        if self.released:
            raise RuntimeError("this database handle is closed")
        return self._pools.pool(self.key)

    def release(self):
        """Give the share back once; later calls do nothing."""
        if not self.released:
            self.released = True
            self._pools.release(self.key)
