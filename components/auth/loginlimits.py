"""
The per-account half of the login limits (the per-client half is a
:class:`~components.core.ratelimit.RateLimiter` keyed by the client address
of :mod:`components.core.clientaddress`).

Failed logins against one account, from any number of addresses, slow the
account's logins down; they never lock it. Each failure adds one to the
account's score, which halves every ``half_life`` seconds. While the score
is below ``free`` nothing is delayed; above it every attempt on the
account waits ``base * 2 ** (score - free)`` seconds, at most ``maximum``,
**before** its password is checked: right and wrong passwords wait alike,
so the wait tells nothing and cannot be skipped by giving up on slow
answers. A correct password from anywhere therefore gets in after at most
``maximum`` seconds (plus the hashing), whatever a stranger does; a
successful login clears the score. The attempt waits while holding its
account in :mod:`components.auth.checkgate` (one check per account at a
time), so on a slowed account the delay is also a rate: one check per delay.
The same scoring, keyed by client address, is the gate's standing of a client.
"""

import math
import time

from components.auth import auth_settings

DEFAULT_MAXIMUM = auth_settings.LOGIN_ACCOUNT_DELAY_MAX.default
DEFAULT_BASE = 0.25
DEFAULT_FREE = 3
DEFAULT_HALF_LIFE = 60.0
MAX_NAME = 150   # longer names are no account's; they share the key of their first 150 characters


class AccountDelay:
    """Progressive, capped delays per account name; an injectable clock and bounded memory."""

    def __init__(self, maximum=DEFAULT_MAXIMUM, base=DEFAULT_BASE, free=DEFAULT_FREE,
                 half_life=DEFAULT_HALF_LIFE, clock=time.monotonic, max_accounts=100_000):
        if maximum < 0 or base <= 0 or free < 0 or half_life <= 0:
            raise ValueError("maximum >= 0, base > 0, free >= 0 and half_life > 0 are required")
        self.maximum = float(maximum)
        self.base = float(base)
        self.free = free
        self.half_life = float(half_life)
        self.clock = clock
        self.max_accounts = max_accounts
        self._scores = {}

    def _score(self, name, now):
        score, last = self._scores.get(name, (0.0, now))
        return score * math.pow(0.5, (now - last) / self.half_life)

    def score(self, name):
        """The decayed count of recent failures on ``name`` (the check gate's standing of a client address)."""
        return self._score(name[:MAX_NAME], self.clock())

    def delay(self, name):
        """Seconds an attempt on ``name`` waits before its password is checked (0 while below ``free``)."""
        if not self.maximum:
            return 0.0
        excess = self._score(name[:MAX_NAME], self.clock()) - self.free
        if excess < 0:
            return 0.0
        return min(self.maximum, self.base * math.pow(2.0, min(excess, 64.0)))

    def failed(self, name):
        """Count one failed login on ``name``."""
        name, now = name[:MAX_NAME], self.clock()
        if name not in self._scores and len(self._scores) >= self.max_accounts:
            self._evict(now)
        self._scores[name] = (self._score(name, now) + 1.0, now)

    def succeeded(self, name):
        """A correct password: the account's score is cleared."""
        self._scores.pop(name[:MAX_NAME], None)

    def _evict(self, now):
        faded = [name for name in self._scores if self._score(name, now) < 0.5]
        for name in faded:
            del self._scores[name]
        if len(self._scores) >= self.max_accounts:   # still full: forget the quietest half
            quiet = sorted(self._scores, key=lambda name: self._score(name, now))
            for name in quiet[: len(quiet) // 2]:
                del self._scores[name]
