"""
A bound on the calls one caller has in flight at once: a caller past it is
answered ``rate_limited`` at once instead of queueing behind its own calls
(one session's burst of database-backed calls would otherwise hold the small
database pool, and every other user's calls and sign-ins wait behind it).
Memory holds only callers with a call in flight.
"""

from components.core.errors import RateLimited

# what a refused caller is told to wait: until one of its calls is answered, which is about this long
RETRY_AFTER = 0.1


class CallsInFlight:
    """Counts the calls in flight per caller key; ``enter`` admits at most ``limit`` of them."""

    def __init__(self, limit):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._counts = {}

    def enter(self, caller):
        """True and counted when ``caller`` has fewer than ``limit`` calls in flight, else False."""
        count = self._counts.get(caller, 0)
        if count >= self.limit:
            return False
        self._counts[caller] = count + 1
        return True

    def leave(self, caller):
        """One call of ``caller`` was answered."""
        count = self._counts.get(caller, 0) - 1
        if count > 0:
            self._counts[caller] = count
        else:
            self._counts.pop(caller, None)

    def in_flight(self, caller):
        return self._counts.get(caller, 0)

    def refusal(self):
        """The error a caller past the bound receives."""
        return RateLimited("too many calls in flight from this session (at most {}); call again once one is "
                           "answered".format(self.limit), retry_after=RETRY_AFTER)
