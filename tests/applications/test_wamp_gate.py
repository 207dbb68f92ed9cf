"""
Applications over WAMP on a real node: an application joins with WAMP-CRA
(its key and secret), registers and publishes under ``app.<name>.`` (a user
receives the event, another session of the application calls the
procedure), is refused everywhere else, a wrong secret or unknown key is
refused at join, and revoking or rotating its key ends its sessions.
"""

import json
import os

from autobahn.twisted.wamp import ApplicationSession
from autobahn.twisted.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth, types
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, endpoints, reactor
from twisted.trial import unittest

from components.applications.app_registry import AppRegistry
from components.applications.wamp_gate import AUTHORIZE, allowed
from components.core.settings import Settings
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek
from components.node import topology
from tests.support.clients import connect, status_of
from tests.support.node import RouterNode, free_port, shared_node
from tests.support.polling import eventually


class AppSession(ApplicationSession):
    """A WAMP-CRA client: ``joined`` fires with itself or fails with the refusal; ``closed`` on leave."""

    def __init__(self, config, key, secret):
        ApplicationSession.__init__(self, config)
        self.key, self.secret = key, secret
        self.joined, self.closed = defer.Deferred(), defer.Deferred()

    def onConnect(self):
        self.join(self.config.realm, authmethods=["wampcra"], authid=self.key)

    def onChallenge(self, challenge):
        return auth.compute_wcs(self.secret, challenge.extra["challenge"])

    def onJoin(self, details):
        self.joined.callback(self)

    def onLeave(self, details):
        if not self.joined.called:
            self.joined.errback(ApplicationError(details.reason, details.message))
        if not self.closed.called:
            self.closed.callback(details)
        self.disconnect()

    def onDisconnect(self):
        # a connection lost before the welcome (or without the router's GOODBYE) ends the waits too
        if not self.joined.called:
            self.joined.errback(ApplicationError("transport_lost", "the connection closed before the welcome"))
        if not self.closed.called:
            self.closed.callback(types.CloseDetails("transport_lost", "the connection closed without a GOODBYE"))


class AppJoins:
    """Joins as an application, and the checks both node shapes run (``self.node``, ``self.registry``)."""

    def open_registry(self):
        settings = Settings(environ=self.node.env, node_directory=self.node.directory)
        self.registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        self.addCleanup(self.registry.db.close)

    @defer.inlineCallbacks
    def join(self, key, secret):
        """Join as an application; fire with the session (left when the test ends)."""
        session = AppSession(types.ComponentConfig(realm="reactive"), key, secret)
        factory = WampWebSocketClientFactory(lambda: session, url=self.node.url)
        factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.node.port, timeout=30)
        protocol = yield endpoint.connect(factory)

        def close():
            if session.is_attached():
                session.leave()
            return session.closed
        self.addCleanup(lambda: protocol.transport.loseConnection())
        try:
            yield session.joined
        except Exception:
            protocol.transport.loseConnection()
            raise
        self.addCleanup(close)
        return session

    @defer.inlineCallbacks
    def refused(self, key, secret):
        """Fire True when a join with ``key`` is refused (within the registry's cache life, 1 s)."""
        try:
            yield self.join(key, secret)
        except ApplicationError:
            return True
        return False

    @defer.inlineCallbacks
    def test_owns_its_prefix(self):
        """Registers and publishes under app.<name>.; a user gets the event; another session of the
        application calls the procedure; anything outside the prefix is refused."""
        key, secret = yield self.registry.add("wampshop")
        app = yield self.join(key, secret)
        yield app.register(lambda text: "echo " + text, "app.wampshop.echo")
        other = yield self.join(key, secret)
        self.assertEqual((yield other.call("app.wampshop.echo", "hi")), "echo hi")
        alice = yield connect(self, self.node, sub="alice")
        got = []
        yield alice.session.subscribe(lambda *args: got.append(args), "app.wampshop.x")
        yield app.publish("app.wampshop.x", 7, options=types.PublishOptions(acknowledge=True))
        yield eventually(lambda: got == [(7,)], message="the user never got the application's event",
                         details=lambda: repr(got))
        refusals = [
            app.register(lambda: None, "app.other.echo"),
            app.register(lambda: None, "counter.get"),
            app.publish("app.other.x", 1, options=types.PublishOptions(acknowledge=True)),
            app.publish("users.changed", 1, options=types.PublishOptions(acknowledge=True)),
            app.call("time.get"),
            app.subscribe(lambda *args: None, "users.changed"),
            # what /apps/publish refuses is refused over WAMP too
            app.publish("app.wampshop.Orders", 1, options=types.PublishOptions(acknowledge=True)),
        ]
        for attempt in refusals:
            failure = yield self.assertFailure(attempt, ApplicationError)
            self.assertEqual(failure.error, ApplicationError.NOT_AUTHORIZED)

    @defer.inlineCallbacks
    def test_revoke_ends_sessions(self):
        """Revoking the application ends its open session; the key is refused at the next join."""
        key, secret = yield self.registry.add("wampgone")
        app = yield self.join(key, secret)
        yield self.registry.revoke("wampgone")
        details = yield app.closed
        self.assertEqual(details.reason, "reactive.error.auth.revoked")
        yield eventually(lambda: self.refused(key, secret), message="the revoked key still joins")


class AppGateRouterTests(AppJoins, unittest.TestCase):
    """On the development node (config.json)."""

    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("apps-publish")
        self.open_registry()

    @defer.inlineCallbacks
    def test_wrong_secret_refused(self):
        """A wrong secret, or a key no application has, is refused at join."""
        key, _ = yield self.registry.add("wampwrong")
        yield self.assertFailure(self.join(key, "not-the-secret"), ApplicationError)
        yield self.assertFailure(self.join("ak" + "0" * 24, "x"), ApplicationError)

    @defer.inlineCallbacks
    def test_one_applications_answer_is_not_given_to_another(self):
        """
        An application allowed on its own topic does not make another one
        allowed there, and one refused on a foreign topic does not make the
        owner refused (the router must not reuse an answer across sessions).
        """
        owner_key, owner_secret = yield self.registry.add("wampowner")
        other_key, other_secret = yield self.registry.add("wampother")
        owner = yield self.join(owner_key, owner_secret)
        other = yield self.join(other_key, other_secret)
        acknowledged = types.PublishOptions(acknowledge=True)
        yield owner.publish("app.wampowner.x", 1, options=acknowledged)
        failure = yield self.assertFailure(other.publish("app.wampowner.x", 2, options=acknowledged),
                                           ApplicationError)
        self.assertEqual(failure.error, ApplicationError.NOT_AUTHORIZED)
        failure = yield self.assertFailure(other.register(lambda: None, "app.wampowner.echo"), ApplicationError)
        self.assertEqual(failure.error, ApplicationError.NOT_AUTHORIZED)
        yield owner.register(lambda: "mine", "app.wampowner.echo")
        self.assertEqual((yield owner.call("app.wampowner.echo")), "mine")

    @defer.inlineCallbacks
    def test_private_application_and_retained_events(self):
        """A private application registers but publishes nothing over WAMP; no application publishes a retained
        event; a user who subscribes with get_retained gets nothing."""
        key, secret = yield self.registry.add("wampsecret", private=True)
        private = yield self.join(key, secret)
        public_key, public_secret = yield self.registry.add("wampretain")
        public = yield self.join(public_key, public_secret)
        attempts = [
            private.publish("app.wampsecret.slip", 1, options=types.PublishOptions(acknowledge=True)),
            public.publish("app.wampretain.x", "for bob", options=types.PublishOptions(
                acknowledge=True, retain=True, eligible_authid=["bob"])),
        ]
        for attempt in attempts:
            failure = yield self.assertFailure(attempt, ApplicationError)
            self.assertEqual(failure.error, ApplicationError.NOT_AUTHORIZED)
        yield private.register(lambda: "ok", "app.wampsecret.echo")
        self.assertEqual((yield private.call("app.wampsecret.echo")), "ok")
        alice = yield connect(self, self.node, sub="alice")
        got = []
        yield alice.session.subscribe(lambda *args: got.append(args), "app.wampretain.x",
                                      options=types.SubscribeOptions(get_retained=True))
        yield public.publish("app.wampretain.x", "live", options=types.PublishOptions(acknowledge=True))
        yield eventually(lambda: got, message="the live event never arrived")
        self.assertEqual(got, [("live",)])

    @defer.inlineCallbacks
    def test_rotate_ends_sessions(self):
        """Rotating the key ends the sessions of the old key; the new key joins."""
        key, secret = yield self.registry.add("wamprot")
        app = yield self.join(key, secret)
        new_key, new_secret = yield self.registry.rotate("wamprot")
        details = yield app.closed
        self.assertEqual(details.reason, "reactive.error.auth.revoked")
        yield self.join(new_key, new_secret)


class ProductionClientTests(AppJoins, unittest.TestCase):
    """The same through a production client node's proxy workers (client.json: the proxies ask the router's
    gate to authenticate, as they do for tickets)."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.node = RouterNode(name="apps-client")
        self.addCleanup(self.node.cleanup)
        config = topology.client_config(port=self.node.port, internal_port=free_port())
        with open(os.path.join(self.node.directory, "config.json"), "w") as handle:
            json.dump(config, handle)
        yield self.node.start()
        yield eventually(lambda: status_of(self.node.http + "/health/ready"), check=lambda code: code == 200,
                         timeout=90, interval=0.2, message="node not ready", details=self.node.log_tail)
        self.open_registry()


class AllowedTests(unittest.SynchronousTestCase):
    """The authorizer's rule: the application's own prefix, only for the app role with a name in authextra."""

    def test_rule(self):
        app = {"authrole": "app", "authextra": {"app": "shop", "private": False}}
        for action in ("publish", "subscribe", "register", "call"):
            self.assertTrue(allowed(app, "app.shop.orders", action))
            self.assertFalse(allowed(app, "app.shopper.orders", action))
            self.assertFalse(allowed(app, "time.get", action))
        self.assertFalse(allowed(app, AUTHORIZE, "call"))
        self.assertFalse(allowed({"authrole": "user", "authextra": {"app": "shop"}}, "app.shop.x", "publish"))
        self.assertFalse(allowed({"authrole": "app", "authextra": {}}, "app.shop.x", "publish"))
        self.assertFalse(allowed({"authrole": "app"}, "app..x", "publish"))

    def test_lower_case_uris_of_at_most_255_characters(self):
        """The URIs /apps/publish takes: an upper-case, non-ASCII or overlong one is refused for every action;
        a wildcard subscription (an empty word) is not."""
        app = {"authrole": "app", "authextra": {"app": "shop", "private": False}}
        for action in ("publish", "subscribe", "register", "call"):
            for uri in ("app.shop.Orders", "app.shop.ordérs", "app.shop.a-b", "app.shop." + "x" * 247):
                self.assertFalse(allowed(app, uri, action), uri)
            self.assertTrue(allowed(app, "app.shop." + "x" * 246, action))
        self.assertTrue(allowed(app, "app.shop..paid", "subscribe"))

    def test_private_application_and_retain(self):
        """A private application (or one whose session does not say) publishes nothing; retain is refused."""
        private = {"authrole": "app", "authextra": {"app": "shop", "private": True}}
        unsaid = {"authrole": "app", "authextra": {"app": "shop"}}
        public = {"authrole": "app", "authextra": {"app": "shop", "private": False}}
        for details in (private, unsaid):
            self.assertFalse(allowed(details, "app.shop.x", "publish"))
            for action in ("subscribe", "register", "call"):
                self.assertTrue(allowed(details, "app.shop.x", action))
        self.assertTrue(allowed(public, "app.shop.x", "publish", {"acknowledge": True}))
        self.assertFalse(allowed(public, "app.shop.x", "publish", {"retain": True}))
        self.assertTrue(allowed(public, "app.shop.x", "publish", {"retain": False}))
