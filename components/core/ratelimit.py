"""
Token-bucket rate limiting keyed by client (address, session id, ...), with an
injectable clock and bounded memory.
"""

import time


class RateLimiter:
    """
    Allows ``burst`` events at once and ``rate`` events per second after that,
    per key. ``check(key)`` returns ``(allowed, retry_after_seconds)``.
    """

    def __init__(self, rate, burst, clock=time.monotonic, max_keys=100_000):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets = {}

    def check(self, key, cost=1.0):
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= cost:
            self._store(key, tokens - cost, now)
            return True, 0.0
        self._store(key, tokens, now)
        return False, (cost - tokens) / self.rate

    def refund(self, key, cost=1.0):
        """Give back ``cost`` taken by an allowed ``check`` whose event did not happen after all (never above
        ``burst``)."""
        if key in self._buckets:
            tokens, last = self._buckets[key]
            self._buckets[key] = (min(self.burst, tokens + cost), last)

    def _store(self, key, tokens, now):
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._evict(now)
        self._buckets[key] = (tokens, now)

    def _evict(self, now):
        full = [key for key, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # still full: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]
