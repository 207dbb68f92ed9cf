"""
Bounds the password-hashing work ``/auth/login`` does on one node, so that
a burst of attempts cannot queue minutes of hashing in front of a correct
login (each check is one PBKDF2 derivation, about 0.3-0.6 s of CPU).

Every attempt passes three limits before its password is checked:

1. **one attempt at a time per client address** (its rate key): a second
   one while the first is in progress is turned away (429);
2. **one check at a time per account**, and one more attempt waiting for
   it. A further attempt on that account is turned away (429), unless it
   ranks before the waiting one, which is then turned away instead. Rank:
   fewer whole recent failed logins of the client (``standing``) first,
   then the client that was first turned away from the account and kept
   coming back (a number taken at its first refusal, kept while it returns
   within ``TICKET_TTL``; a newcomer's number is now). So clients that have
   been sending wrong passwords cannot keep a clean client out, nor can a
   stream of fresh addresses: a client waits for at most the clients that
   were turned away before it. The holder of the account spends its account
   delay (:mod:`components.auth.loginlimits`) holding it, so the delay is a
   rate (one check per delay on a slowed account), not only a latency;
3. **at most ``parallel`` checks hashing at once on the node**, the rest
   waiting in arrival order, at most ``queued`` of them; beyond that 503.

So a correct login from a client without recent failures waits, per
check of its account, for the clients turned away before it, and for at most
``queued / parallel`` checks of other accounts; see docs/security.md.
"""

import math
import time

from components.auth import auth_settings
from collections import OrderedDict, deque

from twisted.internet import defer

DEFAULT_PARALLEL = auth_settings.LOGIN_HASH_PARALLEL.default
DEFAULT_QUEUED = auth_settings.LOGIN_HASH_QUEUE.default
TICKET_TTL = 30.0        # seconds a turned-away client keeps its place in line without coming back
MAX_TICKETS = 100_000    # the oldest numbers are forgotten beyond this

CLIENT_BUSY = "another login from this address is in progress"
ACCOUNT_BUSY = "other logins for this account are in progress"
NODE_BUSY = "too many logins in progress on this node"


class Busy(Exception):
    """An attempt the gate turned away: HTTP ``status`` (429: this client or account, 503: this node)."""

    def __init__(self, status, reason):
        Exception.__init__(self, reason)
        self.status = status
        self.reason = reason


class _Account:
    __slots__ = ("holder", "waiter")

    def __init__(self, holder):
        self.holder = holder
        self.waiter = None


class Attempt:
    """One login attempt inside the gate: wait for :attr:`turn`, then :meth:`check`, and always :meth:`leave`."""

    def __init__(self, gate, account, client, rank):
        self.gate = gate
        self.account = account
        self.client = client
        self.rank = rank
        self.turn = defer.Deferred()   # fires when this attempt holds its account; fails with Busy when replaced
        self._left = False

    def check(self, work):
        """The Deferred result of ``work()``, called once a hashing slot of the node is free (Busy 503 when full)."""
        return self.gate._hash(work)

    def leave(self):
        """Give back the account (to the waiting attempt) and the client's place; safe to call twice."""
        if not self._left:
            self._left = True
            self.gate._leave(self)


class CheckGate:
    """The three limits above, for one node; ``standing(client)`` is the client's recent failure count."""

    def __init__(self, parallel=DEFAULT_PARALLEL, queued=DEFAULT_QUEUED, standing=lambda client: 0.0,
                 clock=time.monotonic):
        if parallel < 1 or queued < 0:
            raise ValueError("parallel >= 1 and queued >= 0 are required")
        self.parallel = parallel
        self.queued = queued
        self.standing = standing
        self.clock = clock
        self._tickets = OrderedDict()   # client -> (number: time of its first refusal, time it last came)
        self._clients = set()
        self._accounts = {}
        self._hashing = 0
        self._queue = deque()

    def enter(self, account, client):
        """An :class:`Attempt` on ``account`` from ``client``; raises :class:`Busy` when it is turned away."""
        if client in self._clients:
            raise Busy(429, CLIENT_BUSY)
        now = self.clock()
        failures = math.floor(self.standing(client) + 0.5)   # whole recent failures
        attempt = Attempt(self, account, client, (failures, self._number(client, now)))
        held = self._accounts.get(account)
        if held is None:
            self._accounts[account] = _Account(attempt)
            attempt.turn.callback(None)
        elif held.waiter is None:
            held.waiter = attempt
        elif attempt.rank < held.waiter.rank:
            replaced, held.waiter = held.waiter, attempt
            self._take_number(replaced.client, replaced.rank[1], now)
            replaced.turn.errback(Busy(429, ACCOUNT_BUSY))
        else:
            self._take_number(client, attempt.rank[1], now)
            raise Busy(429, ACCOUNT_BUSY)
        self._tickets.pop(client, None)
        self._clients.add(client)
        return attempt

    def _number(self, client, now):
        """``client``'s place in line: the time of its first refusal if it kept coming back, else ``now``."""
        ticket = self._tickets.get(client)
        if ticket is None or now - ticket[1] > TICKET_TTL:
            return now
        return ticket[0]

    def _take_number(self, client, number, now):
        self._tickets.pop(client, None)
        self._tickets[client] = (number, now)
        while len(self._tickets) > MAX_TICKETS:
            self._tickets.popitem(last=False)

    def busy(self):
        """``(checks hashing, checks waiting, accounts held, clients inside)`` for metrics and tests."""
        return self._hashing, len(self._queue), len(self._accounts), len(self._clients)

    def _leave(self, attempt):
        self._clients.discard(attempt.client)
        held = self._accounts.get(attempt.account)
        if held is None:
            return
        if held.waiter is attempt:
            held.waiter = None
        elif held.holder is attempt:
            if held.waiter is None:
                del self._accounts[attempt.account]
            else:
                held.holder, held.waiter = held.waiter, None
                held.holder.turn.callback(None)

    def _hash(self, work):
        if self._hashing < self.parallel:
            return self._run(work)
        if len(self._queue) >= self.queued:
            return defer.fail(Busy(503, NODE_BUSY))
        slot = defer.Deferred()
        self._queue.append(slot)
        return slot.addCallback(lambda _: self._run(work))

    def _run(self, work):
        self._hashing += 1
        return defer.maybeDeferred(work).addBoth(self._done)

    def _done(self, result):
        self._hashing -= 1
        if self._queue:
            self._queue.popleft().callback(None)
        return result
