"""
The state dict of the contract, ``{"value", "seq", "ts"}``, kept for one
topic: ``seq`` strictly increases, also across restarts, because it never
falls below the current epoch milliseconds.
"""

import time


def epoch_ms(clock=time.time):
    return int(clock() * 1000)


class TopicState:
    """The latest value of one topic and its sequence number."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.value = None
        self.seq = 0
        self.ts = None
        self.extra = {}

    def update(self, value, **extra):
        """Record ``value``; return the new state dict (with ``extra`` keys added)."""
        now = epoch_ms(self.clock)
        self.seq = max(self.seq + 1, now)
        self.value = value
        self.ts = now
        self.extra = extra
        return self.snapshot()

    def mark(self, **extra):
        """Change extra keys (e.g. ``stale``) without a new value; returns the new state."""
        return self.update(self.value, **dict(self.extra, **extra))

    def snapshot(self):
        """The state dict, or None before the first value."""
        if self.ts is None:
            return None
        state = {"value": self.value, "seq": self.seq, "ts": self.ts}
        state.update(self.extra)
        return state
