"""
Deadlines before authentication over the wire (components/node/patches/auth_deadline.py):
a WebSocket that sends no HELLO, or never answers the CHALLENGE, is closed
once WAMP_AUTH_DEADLINE has passed, an authenticated one is not, and an
address may hold only WAMP_PENDING_PER_ADDRESS connections that have not
authenticated yet; on a router worker and on a proxy worker facing the clients.
"""

import json
import time

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.clients import connect
from tests.support.node import shared_node
from tests.support.polling import eventually
from tests.support.rawjoin import hello, join, leave, wait_until
from tests.support.rawwebsocket import open_websocket, proxied_node

# loopback is exempt from the cap by default: these nodes count it like any client address
SHORT = {"WAMP_AUTH_DEADLINE": "1", "WAMP_PENDING_PER_ADDRESS": "4", "WAMP_PENDING_EXEMPT": "none"}
CAPPED = {"WAMP_AUTH_DEADLINE": "60", "WAMP_PENDING_PER_ADDRESS": "4", "WAMP_PENDING_EXEMPT": "none"}
# the test client plays a reverse proxy on 127.0.0.1 that names the client in X-Forwarded-For
FORWARDED = dict(CAPPED, TRUSTED_PROXIES="127.0.0.1")
CLOSED_LINE = "not authenticated within 1 s"
REFUSED_LINE = "refused a WAMP connection from 127.0.0.1"
# long enough for a loaded machine to authenticate well within it
REARM = {"WAMP_AUTH_DEADLINE": "6"}
REARM_DEADLINE = 6.0
HELLO = hello("alice")


class DeadlineChecks:

    @defer.inlineCallbacks
    def assertClosedAfterDeadline(self, node, hello=False, early=None):
        """A WebSocket (silent, or after a HELLO whose CHALLENGE it leaves unanswered, or after an ``early``
        message the router leaves unanswered) closes at 1 s, not before (and an early message does not make it
        wait for the hub: closed well before HUB_WAIT_DEADLINES of them)."""
        offset = len(node.log_text())
        client = yield open_websocket(node.port)
        opened = time.monotonic()
        self.addCleanup(client.abort)
        self.assertEqual(client.status, 101)
        if hello:
            client.send(HELLO)
            yield eventually(lambda: b'[4,"ticket"' in client.received.replace(b" ", b""), timeout=10,
                             message="no CHALLENGE")
        if early is not None:
            client.send(early)
        yield eventually(lambda: not client.open, timeout=10, message="the connection outlived the deadline")
        self.assertGreater(client.closed_at - opened, 0.8)
        if early is not None:
            self.assertLess(client.closed_at - opened, 4.0)
        yield eventually(lambda: CLOSED_LINE in node.log_text()[offset:], timeout=15, message="no log line")
        self.assertNotIn("Traceback", node.log_text()[offset:])

    @defer.inlineCallbacks
    def assertClosedAfterLeaving(self, node, sub):
        """A connection joined as ``sub`` that says GOODBYE 8 s after it opened (past its first deadline, 6 s
        on the REARM nodes) and nothing more is closed about 6 s after the GOODBYE, not before."""
        client = yield open_websocket(node.port)
        opened = time.monotonic()
        self.addCleanup(client.abort)
        yield join(client, sub)
        yield wait_until(opened + REARM_DEADLINE + 2.0)
        self.assertTrue(client.open)
        left = yield leave(client)
        yield eventually(lambda: not client.open, timeout=REARM_DEADLINE + 10,
                         message="a connection whose session left stays open")
        self.assertGreater(client.closed_at - left, REARM_DEADLINE - 1.0)

    @defer.inlineCallbacks
    def assertCapped(self, node):
        """Four silent WebSockets from 127.0.0.1 are taken, the fifth refused at the upgrade (429, closed);
        once one of the
        four closes, a new one is taken again."""
        offset = len(node.log_text())
        clients = yield defer.gatherResults([open_websocket(node.port) for _ in range(4)])
        for client in clients:
            self.addCleanup(client.abort)
        self.assertEqual([client.status for client in clients], [101] * 4)
        refused = yield open_websocket(node.port)
        self.addCleanup(refused.abort)
        self.assertEqual(refused.status, 429)
        yield eventually(lambda: not refused.open, timeout=5, message="the refused connection stays open")
        yield eventually(lambda: REFUSED_LINE in node.log_text()[offset:], timeout=15, message="no log line")
        clients[0].abort()

        @defer.inlineCallbacks
        def taken():
            client = yield open_websocket(node.port)
            self.addCleanup(client.abort)
            return client.status == 101
        # the router sees the close a moment later: retry until a place is free
        yield eventually(taken, message="no place freed after a pending connection closed")


class RouterWorkerTests(DeadlineChecks, unittest.TestCase):
    """The dev node: the router worker faces the clients."""

    timeout = 180

    @defer.inlineCallbacks
    def test_silent_websocket_is_closed(self):
        """A WebSocket that never sends HELLO is closed once the deadline (1 s here) has passed."""
        node = yield shared_node("deadline", env=SHORT)
        yield self.assertClosedAfterDeadline(node)

    @defer.inlineCallbacks
    def test_call_before_hello_is_closed_at_the_deadline(self):
        """A CALL sent instead of a HELLO is the client's turn still: closed at the deadline (1 s), not after
        the 6 deadlines the hub may take to answer a HELLO."""
        node = yield shared_node("deadline", env=SHORT)
        yield self.assertClosedAfterDeadline(node, early=json.dumps([48, 1, {}, "time.get"]).encode())

    @defer.inlineCallbacks
    def test_unanswered_challenge_is_closed(self):
        """A WebSocket that sends HELLO and never answers the ticket CHALLENGE is closed at the deadline."""
        node = yield shared_node("deadline", env=SHORT)
        yield self.assertClosedAfterDeadline(node, hello=True)

    @defer.inlineCallbacks
    def test_authenticated_session_is_kept(self):
        """A session that authenticated in time outlives the deadline: it still calls after a silent
        WebSocket opened with it has been closed."""
        node = yield shared_node("deadline", env=SHORT)
        user = yield connect(self, node, "deadline_user")
        yield self.assertClosedAfterDeadline(node)
        answer = yield user.session.call("time.get")
        self.assertIn("value", answer)

    @defer.inlineCallbacks
    def test_rejoin_after_goodbye_outlives_the_first_deadline(self):
        """Joined, GOODBYE at 3 s, HELLO again with its CHALLENGE left unanswered past the connection's first
        deadline (6 s): still open, and welcomed when it answers (the new deadline runs from the GOODBYE)."""
        node = yield shared_node("rearm", env=REARM)
        client = yield open_websocket(node.port)
        opened = time.monotonic()
        self.addCleanup(client.abort)
        yield join(client, "rearm_user")
        yield wait_until(opened + 3.0)
        left = yield leave(client)
        yield join(client, "rearm_user", challenged=wait_until(opened + REARM_DEADLINE + 0.8))
        self.assertLess(time.monotonic(), left + REARM_DEADLINE, "the machine was too slow for this test")
        yield wait_until(left + REARM_DEADLINE + 1.0)
        self.assertTrue(client.open, "a session welcomed again was closed")

    @defer.inlineCallbacks
    def test_connection_whose_session_left_is_closed(self):
        """Joined, GOODBYE long after the first deadline (8 s), nothing more: the connection is closed about
        6 s after the GOODBYE, with the deadline's log line."""
        node = yield shared_node("rearm", env=REARM)
        offset = len(node.log_text())
        yield self.assertClosedAfterLeaving(node, "rearm_leaver")
        yield eventually(lambda: "not authenticated within 6 s" in node.log_text()[offset:], timeout=15,
                         message="no log line")

    @defer.inlineCallbacks
    def test_unauthenticated_connections_per_address_are_capped(self):
        """At most WAMP_PENDING_PER_ADDRESS (4 here) connections per address wait for authentication;
        authenticated sessions from the same address (6 here) take none of those places."""
        node = yield shared_node("capped", env=CAPPED)
        for index in range(6):
            yield connect(self, node, "capped_user_{}".format(index))
        yield self.assertCapped(node)


    @defer.inlineCallbacks
    def test_forwarded_clients_are_capped_each(self):
        """Behind a reverse proxy in TRUSTED_PROXIES the cap counts the client its X-Forwarded-For names:
        a fifth pending upgrade for 203.0.113.5 gets 429 while 203.0.113.6 is still taken."""
        node = yield shared_node("forwarded", env=FORWARDED)

        @defer.inlineCallbacks
        def upgrade(client):
            websocket = yield open_websocket(node.port, headers=b"X-Forwarded-For: " + client + b"\r\n")
            self.addCleanup(websocket.abort)
            return websocket.status
        statuses = []
        for _ in range(5):
            statuses.append((yield upgrade(b"203.0.113.5")))
        self.assertEqual(statuses, [101, 101, 101, 101, 429])
        self.assertEqual((yield upgrade(b"203.0.113.6")), 101)
        yield eventually(lambda: "refused a WAMP connection from 203.0.113.5" in node.log_text(), timeout=15,
                         message="no log line naming the forwarded client")


class ProxyWorkerTests(DeadlineChecks, unittest.TestCase):
    """The production client node: a proxy worker faces the clients and enforces both."""

    timeout = 240

    @defer.inlineCallbacks
    def test_deadline_and_cap_at_the_proxy(self):
        """Behind a proxy worker a silent WebSocket and an unanswered CHALLENGE are closed at the deadline
        while an authenticated session is kept, and the fifth pending connection from one address is
        refused, by the proxy worker."""
        node = yield proxied_node("deadline-proxied", env=SHORT)
        user = yield connect(self, node, "proxied_deadline_user")
        yield self.assertClosedAfterDeadline(node)
        answer = yield user.session.call("time.get")  # an authenticated proxied session outlives the deadline
        self.assertIn("value", answer)
        yield self.assertClosedAfterDeadline(node, hello=True)
        offset = len(node.log_text())
        yield self.assertCapped(node)
        lines = [line for line in node.log_text()[offset:].splitlines() if REFUSED_LINE in line]
        self.assertTrue(lines and all("[Proxy" in line for line in lines), lines)

    @defer.inlineCallbacks
    def test_connection_whose_session_left_is_closed_at_the_proxy(self):
        """Joined through a proxy worker, GOODBYE long after the first deadline (8 s), nothing more: the proxy
        closes the connection about 6 s after the GOODBYE (its frontend session cannot join again)."""
        node = yield proxied_node("rearm-proxied", env=REARM)
        yield self.assertClosedAfterLeaving(node, "proxied_leaver")
