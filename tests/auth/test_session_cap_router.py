"""
The per-authid session cap against a real node with SESSION_MAX_PER_AUTHID=3:
a user's fourth session is refused with reactive.error.auth.too_many_sessions
while the first three keep working, a place freed by a closed session is
taken by the next join, and backend sessions sharing one authid are not capped;
the same cap on a client node whose users come through a proxy worker.
"""

from autobahn.twisted.websocket import WampWebSocketClientFactory
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString
from twisted.trial import unittest

from components.auth import AUTH_TOO_MANY_SESSIONS
from tests.node.test_session_bounds import _Backend
from tests.support.clients import connect
from tests.support.node import router_worker, shared_node
from tests.support.polling import eventually
from tests.support.rawwebsocket import proxied_node

CAP = 3
CAP_ENV = {"SESSION_MAX_PER_AUTHID": str(CAP)}
BACKEND_AUTHID = "cap-backend"
BACKEND_PATH = {"type": "websocket", "serializers": ["json"],
                "auth": {"anonymous": {"type": "static", "role": "backend", "authid": BACKEND_AUTHID}}}


def with_backend_path(config):
    for transport in router_worker(config)["transports"]:
        if "paths" in transport:
            transport["paths"]["cap-backend"] = dict(BACKEND_PATH)
    return config


class CapChecks:
    """What every node with the cap at 3 must do; ``self.node`` is set by the test case."""

    @defer.inlineCallbacks
    def assertRefused(self, sub, role="user"):
        try:
            client = yield connect(self, self.node, sub=sub, role=role)
        except ApplicationError as refusal:
            self.assertEqual(refusal.error, AUTH_TOO_MANY_SESSIONS, refusal)
            return refusal
        yield client.close()
        self.fail("session {} of {} was admitted".format(CAP + 1, sub))

    @defer.inlineCallbacks
    def test_fourth_session_refused_first_three_work(self):
        """Three sessions of one user join and call; the fourth is refused with the reason; another user joins."""
        clients = []
        for _ in range(CAP):
            clients.append((yield connect(self, self.node, sub="capped-dora")))
        refusal = yield self.assertRefused("capped-dora")
        self.assertIn(str(CAP), refusal.args[0])
        for client in clients:
            state = yield client.session.call("time.get")
            self.assertIn("seq", state)
        other = yield connect(self, self.node, sub="capped-erin")
        self.assertIsNotNone(other.session)

    @defer.inlineCallbacks
    def test_closed_session_frees_its_place(self):
        """After one of three sessions closes, a new one gets in (once the router has announced the leave)."""
        clients = []
        for _ in range(CAP):
            clients.append((yield connect(self, self.node, sub="capped-fred", role="admin")))
        yield self.assertRefused("capped-fred", role="admin")
        yield clients[0].close()

        @defer.inlineCallbacks
        def join():
            try:
                return (yield connect(self, self.node, sub="capped-fred", role="admin"))
            except ApplicationError as refusal:
                self.assertEqual(refusal.error, AUTH_TOO_MANY_SESSIONS, refusal)
        replacement = yield eventually(join, message="the freed place was not given to a new session")
        state = yield replacement.session.call("time.get")
        self.assertIn("seq", state)



class SessionCapRouterTests(CapChecks, unittest.TestCase):

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("session-cap", env=CAP_ENV, transform=with_backend_path)

    @defer.inlineCallbacks
    def test_backend_sessions_are_not_capped(self):
        """Twice the cap of backend sessions with one shared authid all join."""
        from twisted.internet import reactor
        sessions = []
        for _ in range(2 * CAP):
            session = _Backend()
            factory = WampWebSocketClientFactory(lambda session=session: session,
                                                 url=self.node.url.replace("/ws", "/cap-backend"))
            factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
            yield clientFromString(reactor, "tcp:127.0.0.1:{}".format(self.node.port)).connect(factory)
            self.addCleanup(session.leave_now)
            sessions.append(session)
        joined = yield defer.gatherResults([session.joined for session in sessions])
        self.assertEqual({(s._authid, s._authrole) for s in joined}, {(BACKEND_AUTHID, "backend")})


class ProxiedSessionCapTests(CapChecks, unittest.TestCase):
    """Users reach the router through a proxy worker: the proxy's admission and the router's join meet."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield proxied_node("session-cap-proxied", env=dict(CAP_ENV, REVOCATION_DATABASE="master"))
