"""
components.auth.checkgate: the bounds on the password-hashing work of
/auth/login (one attempt per client, one check per account plus one waiting,
``parallel`` checks per node plus ``queued`` waiting), on Deferreds the
test fires itself. Over the wire: tests/auth/test_login_limits.py.
"""

from twisted.internet import defer, task
from twisted.trial import unittest

from components.auth.checkgate import ACCOUNT_BUSY, CLIENT_BUSY, NODE_BUSY, TICKET_TTL, Busy, CheckGate


class CheckGateTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.failures = {}
        self.clock = task.Clock()
        self.gate = CheckGate(parallel=2, queued=2, standing=lambda client: self.failures.get(client, 0),
                              clock=self.clock.seconds)

    def busy(self, account, client):
        with self.assertRaises(Busy) as caught:
            self.gate.enter(account, client)
        return caught.exception

    def test_one_attempt_at_a_time_per_client(self):
        """A second attempt from a client with one in progress is turned away (429); after it left, admitted."""
        first = self.gate.enter("alice", "198.51.100.7")
        refused = self.busy("bob", "198.51.100.7")
        self.assertEqual((refused.status, refused.reason), (429, CLIENT_BUSY))
        first.leave()
        first.leave()
        self.assertTrue(self.gate.enter("bob", "198.51.100.7").turn.called)

    def test_one_check_per_account_and_one_waiting(self):
        """The account's holder goes first; one attempt waits and gets the account when the holder leaves;
        a third is turned away while the waiting client is no worse than it."""
        holder = self.gate.enter("alice", "198.51.100.1")
        waiter = self.gate.enter("alice", "198.51.100.2")
        self.assertTrue(holder.turn.called)
        self.assertFalse(waiter.turn.called)
        refused = self.busy("alice", "198.51.100.3")
        self.assertEqual((refused.status, refused.reason), (429, ACCOUNT_BUSY))
        self.assertTrue(self.gate.enter("bob", "198.51.100.3").turn.called)   # another account is free
        holder.leave()
        self.assertTrue(waiter.turn.called)
        waiter.leave()
        self.assertEqual(self.gate.busy(), (0, 0, 1, 1))

    def test_a_clean_client_takes_the_place_of_a_failing_one(self):
        """A client with fewer recent failures replaces the waiting attempt of one with more (which gets 429);
        the replaced client may try again later, and the account goes on to the clean client."""
        self.failures.update({"198.51.100.1": 3, "198.51.100.2": 5})
        holder = self.gate.enter("alice", "198.51.100.1")
        attacker = self.gate.enter("alice", "198.51.100.2")
        victim = self.gate.enter("alice", "203.0.113.9")
        replaced = self.failureResultOf(attacker.turn, Busy).value
        self.assertEqual((replaced.status, replaced.reason), (429, ACCOUNT_BUSY))
        attacker.leave()
        self.assertEqual(self.busy("alice", "198.51.100.2").status, 429)   # no better than the victim
        holder.leave()
        self.assertTrue(victim.turn.called)

    def test_fresh_addresses_cannot_keep_a_turned_away_client_out(self):
        """
        A client turned away from a busy account keeps its place in line
        while it comes back: a fresh address that took the waiting place since
        gives it up to the returning client; after TICKET_TTL away the place is lost.
        """
        holder = self.gate.enter("alice", "198.51.100.1")
        waiter = self.gate.enter("alice", "198.51.100.2")
        self.clock.advance(1)
        self.busy("alice", "203.0.113.9")                    # the owner, turned away: number 1
        self.clock.advance(1)
        self.busy("alice", "198.51.100.3")                   # a fresh address after it: number 2, never back
        holder.leave()
        self.assertTrue(waiter.turn.called)
        self.clock.advance(0.5)
        fresh = self.gate.enter("alice", "198.51.100.4")     # takes the free waiting place: number 2.5
        self.clock.advance(0.5)
        owner = self.gate.enter("alice", "203.0.113.9")      # back: ranks before the fresh one
        self.assertEqual(self.failureResultOf(fresh.turn, Busy).value.status, 429)
        fresh.leave()
        waiter.leave()
        self.assertTrue(owner.turn.called)
        late = self.gate.enter("alice", "198.51.100.5")      # waits behind the owner: number 3
        back = self.gate.enter("alice", "198.51.100.4")      # the replaced one kept its number 2.5: before it
        self.assertEqual(self.failureResultOf(late.turn, Busy).value.status, 429)
        late.leave()
        self.clock.advance(TICKET_TTL + 1)
        back.leave()
        newcomer = self.gate.enter("alice", "198.51.100.6")  # number 34
        self.clock.advance(1)
        self.busy("alice", "198.51.100.5")                   # away longer than TICKET_TTL: number 35, after it
        newcomer.leave()
        owner.leave()
        self.assertEqual(self.gate.busy(), (0, 0, 0, 0))

    def test_parallel_checks_per_node_and_a_bounded_queue(self):
        """At most `parallel` checks run; the next wait in order up to `queued`; beyond that 503."""
        started, running = [], []

        def work(name):
            started.append(name)
            running.append(defer.Deferred())
            return running[-1]

        attempts = [self.gate.enter("user{}".format(n), "198.51.100.{}".format(n)) for n in range(5)]
        results = [attempt.check(lambda n=n: work(n)) for n, attempt in enumerate(attempts)]
        self.assertEqual(started, [0, 1])
        full = self.failureResultOf(results[4], Busy).value
        self.assertEqual((full.status, full.reason), (503, NODE_BUSY))
        self.assertEqual(self.gate.busy()[:2], (2, 2))
        running[0].callback("zero")
        self.assertEqual(self.successResultOf(results[0]), "zero")
        self.assertEqual(started, [0, 1, 2])
        running[1].errback(RuntimeError("directory down"))
        self.failureResultOf(results[1], RuntimeError)
        self.assertEqual(started, [0, 1, 2, 3])
        running[2].callback(None)
        running[3].callback(None)
        self.assertEqual(self.gate.busy()[:2], (0, 0))
