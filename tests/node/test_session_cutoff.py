"""
A session the hub ends is cut off at once (components.node.patches.session_cutoff),
whatever its client does.

Through a real router, a WAMP client that never answers GOODBYE (autobahn's
WebSocket layer answers pings; the WAMP part is driven by hand) is ended by
token expiry, a logout, a deactivation written by SQL in the master
database, and an admin's ``wamp.session.kill``: what it sends after the
GOODBYE (a call, a click, a subscription, an acknowledged publication) gets
no answer, it receives no event, and its connection is closed within
``SESSION_CUTOFF_GRACE`` of the GOODBYE. On the dev node, the master node
(master.json), a node with two router workers (``--routers 2``) and a client
node behind a proxy worker.
A polite client still gets the GOODBYE with the reason (tests/auth).
"""

import itertools
import json
import os
import time

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.wamp import message
from autobahn.wamp.message import Goodbye
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import CloseDetails
from twisted.internet import defer, protocol, task
from twisted.trial import unittest

from components.auth import AUTH_REVOKED, AUTH_TOKEN_EXPIRED_SESSION, credentials
from components.core.settings import SettingsError
from components.db.database import Database
from components.node import topology
from components.node.patches import PatchUnavailable, session_cutoff
from tests.support.clients import post_json, token
from tests.support.node import REPO, RouterNode, free_port, router_worker, shared_node
from tests.support.polling import eventually
from tests.support.users import add_users

PASSWORD = "cutoff-password-1"
NODE_DIR = os.path.join(REPO, ".crossbar")
GRACE = session_cutoff.DEFAULT_GRACE
# an operator's session that may call wamp.session.kill: anonymous, role backend, on a path of its own
OPS_PATH = {"type": "websocket", "serializers": ["json"], "auth": {"anonymous": {"type": "static", "role": "backend"}}}
ADMIN_KILL = "wamp.close.killed"
# each session kind's subscription: time.tic comes every CLOCK_INTERVAL
TICK = "0.25"


class _Router:
    def __init__(self):
        self.attached = set()

    def detach(self, session):
        self.attached.remove(session)


class _Transport:
    def __init__(self):
        self.sent = []
        self.aborted = 0

    def send(self, msg):
        self.sent.append(msg)

    def abort(self):
        self.aborted += 1


class _ServiceSession:
    def __init__(self):
        self.published = []

    def publish(self, topic, *args):
        self.published.append((topic,) + args)


class _RouterSession:
    """Crossbar's RouterSession as far as the cut-off sees it: leave sends GOODBYE; joined messages are routed."""

    def __init__(self, router, session_id=7):
        self._router, self._transport, self._service_session = router, _Transport(), _ServiceSession()
        self._session_id, self._previous_session_id, self._pending_session_id = session_id, None, None
        self._goodbye_sent = False
        self.routed, self.left = [], []
        router.attached.add(self)

    def leave(self, reason=None, message=None):
        self._transport.send(Goodbye(reason, message))
        self._goodbye_sent = True

    def onMessage(self, msg):
        if self._session_id is None:
            return
        if isinstance(msg, Goodbye):  # the names Crossbar's GOODBYE branch uses
            self._router.detach(self)
            self._previous_session_id, self._pending_session_id = self._session_id, None
            self._service_session.publish("wamp.session.on_leave", self._previous_session_id)
            self.onLeave(CloseDetails(msg.reason))
        self.routed.append(msg)

    def onLeave(self, details):
        self.left.append(details.reason)



class CutOffUnitTests(unittest.SynchronousTestCase):
    """The cut-off on a stand-in of Crossbar's RouterSession, on a test clock."""

    def setUp(self):
        self.clock = task.Clock()
        self.session_class = type("RouterSession", (_RouterSession,), {})
        self.assertTrue(session_cutoff.install(grace=2.0, session_class=self.session_class, router_class=_Router,
                                               clock=lambda: self.clock))
        self.router = _Router()
        self.session = self.session_class(self.router)
        self.session.leave(reason=AUTH_REVOKED, message="logged out")

    def test_goodbye_then_detached_in_the_same_turn(self):
        """GOODBYE with the reason; detached and no longer joined before anything else runs; on_leave next turn."""
        self.assertEqual([(msg.reason, msg.message) for msg in self.session._transport.sent],
                         [(AUTH_REVOKED, "logged out")])
        self.assertEqual(self.router.attached, set())
        self.assertIsNone(self.session._session_id)
        self.session.onMessage(message.Call(1, "time.get"))
        self.assertEqual(self.session.routed, [])
        self.clock.advance(0)
        self.assertEqual(self.session._service_session.published, [("wamp.session.on_leave", 7)])
        self.assertEqual(self.session.left, [AUTH_REVOKED])

    def test_a_silent_client_loses_its_transport_after_the_grace(self):
        self.clock.advance(1.9)
        self.assertEqual(self.session._transport.aborted, 0)
        self.clock.advance(0.2)
        self.assertEqual(self.session._transport.aborted, 1)
        self.assertNotIn("onMessage", vars(self.session))

    def test_a_client_that_replies_keeps_its_transport(self):
        """The GOODBYE reply ends the wait; the session's messages go to the class's onMessage again."""
        self.session.onMessage(message.Goodbye())
        self.clock.advance(5)
        self.assertEqual(self.session._transport.aborted, 0)
        self.assertNotIn("onMessage", vars(self.session))
        self.assertEqual(self.session.left, [AUTH_REVOKED], "left once")

    def test_abort_from_the_client_closes_at_once(self):
        self.session.onMessage(message.Abort("wamp.error.goodbye"))
        self.assertEqual(self.session._transport.aborted, 1)
        self.clock.advance(5)
        self.assertEqual(self.session._transport.aborted, 1)

    def test_installing_twice_changes_nothing(self):
        patched = self.session_class.leave
        self.assertFalse(session_cutoff.install(grace=2.0, session_class=self.session_class, router_class=_Router))
        self.assertIs(self.session_class.leave, patched)

    def test_differing_internals_are_refused(self):
        """A RouterSession whose GOODBYE handling does not detach as expected: PatchUnavailable naming it."""
        bare = type("RouterSession", (), {"leave": lambda self, reason=None, message=None: None,
                                          "onMessage": lambda self, msg: None, "onLeave": lambda self, d: None})
        with self.assertRaises(PatchUnavailable) as caught:
            session_cutoff.install(grace=2.0, session_class=bare, router_class=_Router)
        self.assertIn("onMessage uses detach", str(caught.exception))

    def test_the_installed_crossbar_has_the_internals(self):
        from crossbar.router.router import Router
        from crossbar.router.session import RouterSession
        session_cutoff.check_internals(RouterSession, Router)

    def test_grace_setting(self):
        self.assertEqual(session_cutoff.grace_from_environment({}), 2.0)
        self.assertEqual(session_cutoff.grace_from_environment({"SESSION_CUTOFF_GRACE": "500ms"}), 0.5)
        with self.assertRaises(SettingsError):
            session_cutoff.grace_from_environment({"SESSION_CUTOFF_GRACE": "soon"})


class RudeClient(WebSocketClientProtocol):
    """
    A WAMP-over-WebSocket client that takes no notice of GOODBYE. ``joined``
    fires with itself at WELCOME; ``inbox`` holds every message received;
    ``closed_at`` is the monotonic time the connection ended.
    """

    def __init__(self):
        super().__init__()
        self.serializer = JsonSerializer()
        self.inbox = []
        self.requests = itertools.count(1)
        self.waiting = {}
        self.joined = defer.Deferred()
        self.closed = defer.Deferred()
        self.closed_at = None
        self.goodbye_at = None
        self.session_id = None

    def onOpen(self):
        hello = {"roles": {"caller": {}, "subscriber": {}, "publisher": {}},
                 "authmethods": ["ticket"] if self.factory.ticket else ["anonymous"]}
        self.send([message.Hello.MESSAGE_TYPE, "reactive", hello])

    def send(self, frame):
        """Send one WAMP message; nothing once the connection is closing (a proxy closes it with the GOODBYE)."""
        if self.state == self.STATE_OPEN:
            self.sendMessage(json.dumps(frame).encode("utf-8"), False)

    def onMessage(self, payload, is_binary):
        for msg in self.serializer.unserialize(payload, is_binary):
            self.inbox.append(msg)
            if isinstance(msg, message.Challenge):
                self.send([message.Authenticate.MESSAGE_TYPE, self.factory.ticket, {}])
            elif isinstance(msg, message.Welcome):
                self.session_id = msg.session
                self.joined.callback(self)
            elif isinstance(msg, message.Abort) and not self.joined.called:
                self.joined.errback(AssertionError("join refused: {} {}".format(msg.reason, msg.message)))
            elif isinstance(msg, message.Goodbye):
                self.goodbye_at = time.monotonic()
            elif getattr(msg, "request", None) in self.waiting:
                self.waiting.pop(msg.request).callback(msg)

    def request(self, kind, *rest):
        """Send ``[kind, request id, *rest]``; fire with the answer to that request id."""
        request = next(self.requests)
        self.waiting[request] = answer = defer.Deferred()
        self.send([kind, request] + list(rest))
        return answer

    def subscribe(self, topic):
        return self.request(message.Subscribe.MESSAGE_TYPE, {}, topic)

    def call(self, procedure, *args, **kwargs):
        return self.request(message.Call.MESSAGE_TYPE, {}, procedure, list(args), kwargs)

    def publish_acknowledged(self, topic, *args):
        return self.request(message.Publish.MESSAGE_TYPE, {"acknowledge": True}, topic, list(args))

    def after_goodbye(self):
        """The messages received after the first GOODBYE (its reason first), as ``(goodbye, [later messages])``."""
        for index, msg in enumerate(self.inbox):
            if isinstance(msg, message.Goodbye):
                return msg, self.inbox[index + 1:]
        return None, []

    def events(self):
        return [msg for msg in self.inbox if isinstance(msg, message.Event)]

    def sendCloseFrame(self, *args, **kwargs):
        """Never answers the router's WebSocket close either: only the router dropping the connection ends it."""

    def onClose(self, was_clean, code, reason):
        if self.closed_at is None:
            self.closed_at = time.monotonic()
            self.closed.callback(self.closed_at)


@defer.inlineCallbacks
def rude_join(testcase, port, ticket=None, path="ws"):
    """A :class:`RudeClient` joined at ``ws://127.0.0.1:port/path`` (anonymous without a ticket), closed at cleanup."""
    from twisted.internet import reactor
    factory = WebSocketClientFactory("ws://127.0.0.1:{}/{}".format(port, path), protocols=["wamp.2.json"])
    # no handshake timers (they would outlive the test); autobahn still answers the router's pings
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
    factory.protocol = RudeClient
    factory.ticket = ticket
    client = yield protocol.ClientCreator(reactor, lambda: factory.buildProtocol(None)).connectTCP(
        "127.0.0.1", port, timeout=10)

    @defer.inlineCallbacks
    def close():
        if client.closed_at is None:
            client.transport.abortConnection()
            yield client.closed
    testcase.addCleanup(close)
    yield client.joined
    return client


class CutOffChecks:
    """The checks every topology runs: mixed into a TestCase that sets ``self.node`` and ``self.port_of``."""

    timeout = 180
    # what a session is served before the cut-off: a procedure it calls, a topic whose events it receives
    SERVED_BY = ("time.get", "time.tic")
    ROLE = "user"

    @defer.inlineCallbacks
    def served(self, port, ticket):
        """A rude client that is being served: ``SERVED_BY``'s procedure answered it, its topic's events came."""
        procedure, topic = self.SERVED_BY
        rude = yield rude_join(self, port, ticket)
        if topic is not None:
            subscribed = yield rude.subscribe(topic)
            self.assertIsInstance(subscribed, message.Subscribed)
        answer = yield rude.call(procedure)
        self.assertIsInstance(answer, message.Result, getattr(answer, "error", None))
        if topic is not None:
            yield eventually(lambda: rude.events(), timeout=10, message="no event before the cut-off")
        return rude

    @defer.inlineCallbacks
    def assertCutOff(self, rude, reason, within=10.0):
        """GOODBYE with ``reason``; afterwards no answer, no event; the connection closed within the grace."""
        yield eventually(lambda: rude.goodbye_at is not None, timeout=within, message="no GOODBYE")
        # what a client that ignores the GOODBYE would try next
        rude.call("time.get")
        rude.call("counter.click")
        rude.subscribe("counter.changed")
        rude.publish_acknowledged("time.tic", {"value": "forged"})
        try:
            yield eventually(lambda: rude.closed_at is not None, timeout=GRACE + 2.0)
        except AssertionError:
            pass
        goodbye, later = rude.after_goodbye()
        self.assertEqual(goodbye.reason, reason)
        self.assertEqual([type(msg).__name__ for msg in later], [], "routed after the GOODBYE")
        self.assertIsNotNone(rude.closed_at, "the connection was still open {:g} s after the GOODBYE".format(
            GRACE + 2.0))
        self.assertLess(rude.closed_at - rude.goodbye_at, GRACE + 1.0)

    @defer.inlineCallbacks
    def admin_kill(self, port, session_id):
        """An operator's session calls ``wamp.session.kill`` for ``session_id``."""
        operator = yield rude_join(self, port, path="ops")
        answer = yield operator.call("wamp.session.kill", session_id, reason=ADMIN_KILL, message="by the operator")
        self.assertIsInstance(answer, message.Result, getattr(answer, "error", None))

    @defer.inlineCallbacks
    def deactivate(self, username):
        master = Database("sqlite:///" + os.path.join(self.node.directory, "master.db"))
        try:
            yield master.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (False, username))
        finally:
            master.close()

    @defer.inlineCallbacks
    def check_expiry(self, port):
        rude = yield self.served(port, token("cutoff_expiring", ttl=3))
        yield self.assertCutOff(rude, AUTH_TOKEN_EXPIRED_SESSION)

    @defer.inlineCallbacks
    def check_admin_kill(self, port, ops_port, username="cutoff_killed"):
        yield add_users(self.node, [(username, "Cut", self.ROLE == "admin")], PASSWORD)
        rude = yield self.served(port, token(username, role=self.ROLE))
        yield self.admin_kill(ops_port, rude.session_id)
        yield self.assertCutOff(rude, ADMIN_KILL)

    @defer.inlineCallbacks
    def check_recorded_logout(self, ports, username):
        """
        A logout as the master's ``/auth/logout`` records it in the master database (the login ``sid`` ended,
        its tokens refused): the sessions joined with that login's token on each of ``ports`` are cut off.
        For nodes that serve no ``/auth`` themselves (client nodes, router replicas).
        """
        sid = "logout-" + username
        ticket = token(username, role=self.ROLE, extra_claims={"sid": sid})
        clients = []
        for port in ports:
            clients.append((yield self.served(port, ticket)))
        master = Database("sqlite:///" + os.path.join(self.node.directory, "master.db"))
        try:
            yield master.run(credentials.revoke_login, sid, username, int((time.time() + 900) * 1000))
        finally:
            master.close()
        for rude in clients:
            yield self.assertCutOff(rude, AUTH_REVOKED)

    @defer.inlineCallbacks
    def check_deactivation(self, ports, username):
        """A token minted before the change (no ``cv``: revoked by its issue time) on each of ``ports``."""
        yield add_users(self.node, [(username, "Cut", self.ROLE == "admin")], PASSWORD)
        ticket = token(username, role=self.ROLE)
        clients = []
        for port in ports:
            clients.append((yield self.served(port, ticket)))
        yield self.deactivate(username)
        for rude in clients:
            yield self.assertCutOff(rude, AUTH_REVOKED)


def _with_ops_path(config):
    transport = router_worker(config)["transports"][0]
    transport["paths"]["ops"] = dict(OPS_PATH)
    return config


class DevNodeTests(CutOffChecks, unittest.TestCase):
    """The dev node (.crossbar/config.json)."""

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("cutoff", transform=_with_ops_path, env={"CLOCK_INTERVAL": TICK})

    def test_expiry(self):
        """Token expiry: the session is cut off and its connection closed within the grace."""
        return self.check_expiry(self.node.port)

    @defer.inlineCallbacks
    def test_logout(self):
        """A logout at /auth/logout: the login's session is cut off."""
        yield add_users(self.node, [("cutoff_logout", "Cut", False)], PASSWORD)
        code, body, response = yield post_json(self.node.http + "/auth/login",
                                               {"username": "cutoff_logout", "password": PASSWORD})
        self.assertEqual(code, 200, body)
        cookies = {cookie.name: cookie.value for cookie in response.cookies()}
        code, issued, _ = yield post_json(self.node.http + "/auth/token", cookies=cookies)
        self.assertEqual(code, 200, issued)
        rude = yield self.served(self.node.port, issued["token"])
        code, body, _ = yield post_json(self.node.http + "/auth/logout", cookies=cookies)
        self.assertEqual(code, 200, body)
        yield self.assertCutOff(rude, AUTH_REVOKED)

    def test_deactivation(self):
        """is_active written false by SQL in the master database: the session is cut off."""
        return self.check_deactivation([self.node.port], "cutoff_inactive")

    def test_admin_kill(self):
        """An admin's wamp.session.kill: the session is cut off."""
        return self.check_admin_kill(self.node.port, self.node.port)

    @defer.inlineCallbacks
    def test_admin_kill_by_authid(self):
        """wamp.session.kill_by_authid: every session of the user is cut off (the router's index survives)."""
        ticket = token("cutoff_twice")
        rudes = []
        for _ in range(2):
            rudes.append((yield self.served(self.node.port, ticket)))
        operator = yield rude_join(self, self.node.port, path="ops")
        answer = yield operator.call("wamp.session.kill_by_authid", "cutoff_twice", reason=ADMIN_KILL)
        self.assertEqual(sorted(answer.args[0]), sorted(rude.session_id for rude in rudes))
        for rude in rudes:
            yield self.assertCutOff(rude, ADMIN_KILL)
        self.assertNotIn("Set changed size during iteration", self.node.log_text())


def _started(key, build):
    """The node ``build()`` makes, shared per test process and ``key`` (tests.support.node.shared_node)."""
    return shared_node("cutoff-" + key, build=build, start=lambda node: node.start(timeout=90))


def _write_config(node, config):
    node.config = config
    with open(os.path.join(node.directory, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)


# the authenticators read the master database in the node directory, where the tests write the user table
_MASTER_REVOCATION = {"REVOCATION_DATABASE": "master", "CLOCK_INTERVAL": TICK}


class RouterReplicasTests(CutOffChecks, unittest.TestCase):
    """A node with two router workers (``topology client --routers 2``), each also on a port of its own."""

    def build(self):
        node = RouterNode(name="cutoff-replicas", env=_MASTER_REVOCATION)
        config = topology.router_replicas_config(routers=2, port=node.port)
        node.direct = []
        for router in (worker for worker in config["workers"] if worker["type"] == "router"):
            port = free_port()
            node.direct.append(port)
            web = router["transports"][0]
            router["transports"].append({"id": "direct", "type": "web", "endpoint": {"type": "tcp", "port": port},
                                         "paths": {"/": web["paths"]["/"], "ws": web["paths"]["ws"],
                                                   "ops": dict(OPS_PATH)}})
        _write_config(node, config)
        return node

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield _started("replicas", self.build)
        yield eventually(lambda: 'Ok, worker "Router router2" configured and ready' in self.node.log_text(),
                         timeout=60, message="second router worker not ready")

    def test_deactivation_on_both_router_workers(self):
        """A deactivation by SQL cuts off the user's sessions on both router workers."""
        return self.check_deactivation(self.node.direct, "cutoff_replicated")

    def test_logout_on_both_router_workers(self):
        """A logout recorded on the master cuts off the login's sessions on both router workers."""
        return self.check_recorded_logout(self.node.direct, "cutoff_logout_replicated")

    @defer.inlineCallbacks
    def test_expiry_and_admin_kill(self):
        """Expiry on the first router worker, an admin kill on the second: each cut off."""
        first, second = self.node.direct
        yield self.check_expiry(first)
        yield self.check_admin_kill(second, second, "cutoff_killed_replica")


class ProxiedTests(CutOffChecks, unittest.TestCase):
    """A client node (client.json) whose users come through a proxy worker."""

    def build(self):
        node = RouterNode(name="cutoff-proxied", env=_MASTER_REVOCATION)
        node.internal = free_port()
        config = topology.client_config(port=node.port, internal_port=node.internal, proxies=1, containers=0)
        router = router_worker(config)
        internal = next(item for item in router["transports"] if item["id"] == "internal")
        internal["paths"]["ops"] = dict(OPS_PATH)
        _write_config(node, config)
        return node

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield _started("proxied", self.build)
        yield eventually(self.proxy_ready, timeout=60, message="proxy worker not ready")

    def proxy_ready(self):
        return 'Ok, worker "Proxy proxy1" configured and ready' in self.node.log_text()

    def test_deactivation(self):
        """A deactivation by SQL cuts off the proxied session (the proxy closes the client's connection)."""
        return self.check_deactivation([self.node.port], "cutoff_proxied")

    def test_logout(self):
        """A logout recorded on the master cuts off the login's proxied session."""
        return self.check_recorded_logout([self.node.port], "cutoff_logout_proxied")

    @defer.inlineCallbacks
    def test_expiry_and_admin_kill(self):
        """Expiry, and an admin kill at the router: each proxied session is cut off."""
        yield self.check_expiry(self.node.port)
        yield self.check_admin_kill(self.node.port, self.node.internal, "cutoff_killed_proxied")


class MasterNodeTests(CutOffChecks, unittest.TestCase):
    """The master node (master.json): an admin session on the directory's procedures."""

    SERVED_BY = ("master.users.list", None)
    ROLE = "admin"

    def build(self):
        node = RouterNode(name="cutoff-master", config_path=os.path.join(NODE_DIR, "master.json"))
        config = node.config
        router = router_worker(config)
        web = next(item for item in router["transports"] if item["id"] == "web")
        web["endpoint"]["port"] = node.port
        web["paths"]["ops"] = dict(OPS_PATH)
        _write_config(node, config)
        return node

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield _started("master", self.build)
        yield eventually(lambda: 'Ok, worker "Container master" configured and ready' in self.node.log_text(),
                         timeout=60, message="the master's container worker not ready")

    @defer.inlineCallbacks
    def test_deactivation_and_admin_kill(self):
        """A deactivation by SQL, then an admin kill: each admin session is cut off."""
        yield self.check_deactivation([self.node.port], "cutoff_master_admin")
        yield self.check_admin_kill(self.node.port, self.node.port)
