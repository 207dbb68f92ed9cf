"""
``POST /apps/publish`` on a real node: every answer (200, 400, 401, 403,
405, 413, 429), per-user delivery (the user named in ``to_users`` gets the
event, another subscriber of the same topic does not), a private
application's events only through ``to_users``, and a revoked key refused
within the registry's cache life.
"""

import base64
import json

import treq
from autobahn.wamp import types
from twisted.internet import defer
from twisted.trial import unittest

from components.applications.app_registry import AppRegistry
from components.core import errors
from components.core.settings import Settings
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek
from tests.support.clients import connect
from tests.support.node import shared_node
from tests.support.polling import eventually

# a small burst so the rate limit is reached in a few requests; every test uses its own application
ENV = {"APPS_RATE": "0.01", "APPS_BURST": "4", "APPS_BODY_LIMIT": "2048"}


def basic(key, secret):
    return "Basic " + base64.b64encode("{}:{}".format(key, secret).encode("utf-8")).decode("ascii")


class AppPublishRouterTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("apps-publish", env=ENV)
        settings = Settings(environ=self.node.env, node_directory=self.node.directory)
        self.registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        self.addCleanup(self.registry.db.close)

    @defer.inlineCallbacks
    def app(self, name, private=False):
        key, secret = yield self.registry.add(name, private=private)
        return basic(key, secret)

    @defer.inlineCallbacks
    def post(self, body, authorization=None, method="POST", raw=None):
        """Fire with ``(status, decoded body, response)``."""
        headers = {b"Content-Type": [b"application/json"]}
        if authorization is not None:
            headers[b"Authorization"] = [authorization.encode("ascii")]
        data = raw if raw is not None else json.dumps(body).encode("utf-8")
        response = yield treq.request(method, self.node.http + "/apps/publish", data=data, headers=headers,
                                      persistent=False, timeout=30)
        text = yield response.text()
        return response.code, json.loads(text), response

    @defer.inlineCallbacks
    def test_answers(self):
        """200 with the publication id; 401 without or with a wrong key; 400 malformed; 403 another prefix;
        413 over the body limit; 405 for GET; all in the hub's one error body."""
        auth = yield self.app("answers")
        key = base64.b64decode(auth[6:]).decode("ascii").split(":")[0]
        status, body, _ = yield self.post({"topic": "app.answers.orders", "args": [1], "kwargs": {"id": 42}}, auth)
        self.assertEqual(status, 200, body)
        self.assertIsInstance(body["publication"], int)
        status, body, response = yield self.post({"topic": "app.answers.orders"})
        self.assertEqual((status, body["error"]), (401, errors.NOT_AUTHORIZED))
        self.assertTrue(response.headers.getRawHeaders("www-authenticate")[0].startswith("Basic"))
        for wrong in (basic(key, "not-the-secret"), basic("ak" + "0" * 24, "x"), "Basic !!!", "Bearer x"):
            status, body, _ = yield self.post({"topic": "app.answers.orders"}, wrong)
            self.assertEqual((status, body["error"]), (401, errors.NOT_AUTHORIZED), wrong)
        for bad in ({"args": [1]}, {"topic": "app.answers.x", "extra": 1}, {"topic": "app.answers.x", "args": {}},
                    {"topic": "app.answers.x", "to_users": "alice"}, {"topic": "app.answers.x", "to_users": []},
                    {"topic": "App.Answers"}, {"topic": "app.answers..x"}, ["app.answers.x"]):
            status, body, _ = yield self.post(bad, auth)
            self.assertEqual((status, body["error"]), (400, errors.INVALID_ARGUMENT), bad)
        status, body, _ = yield self.post(None, auth, raw=b"{not json")
        self.assertEqual(status, 400)
        for foreign in ("app.other.orders", "iot.device.x", "users.changed", "app.answers"):
            status, body, _ = yield self.post({"topic": foreign}, auth)
            self.assertEqual((status, body["error"]), (403, errors.NOT_AUTHORIZED), foreign)
        status, body, _ = yield self.post({"topic": "app.answers.big", "args": ["x" * 3000]}, auth)
        self.assertEqual((status, body["error"]), (413, errors.INVALID_ARGUMENT))
        status, body, _ = yield self.post(None, auth, method="GET", raw=b"")
        self.assertEqual(status, 405)

    @defer.inlineCallbacks
    def test_rate_limit(self):
        """Past APPS_BURST an application gets 429 with Retry-After; another application is not affected."""
        auth = yield self.app("flood")
        statuses = []
        for _ in range(5):
            status, body, response = yield self.post({"topic": "app.flood.tick"}, auth)
            statuses.append(status)
        self.assertEqual(statuses, [200, 200, 200, 200, 429])
        self.assertEqual(body["error"], errors.RATE_LIMITED)
        self.assertGreaterEqual(int(response.headers.getRawHeaders("retry-after")[0]), 1)
        other = yield self.app("calm")
        self.assertEqual((yield self.post({"topic": "app.calm.tick"}, other))[0], 200)

    @defer.inlineCallbacks
    def test_to_users(self):
        """An event for alice reaches alice's session only; bob, subscribed to the same topic, gets only the
        event meant for everyone."""
        auth = yield self.app("shop")
        alice = yield connect(self, self.node, sub="alice")
        bob = yield connect(self, self.node, sub="bob")
        got = {"alice": [], "bob": []}
        for name, client in (("alice", alice), ("bob", bob)):
            yield client.session.subscribe(lambda *args, name=name, **kwargs: got[name].append((args, kwargs)),
                                           "app.shop.orders")
        status, body, _ = yield self.post({"topic": "app.shop.orders", "args": ["for alice"],
                                           "to_users": ["alice"]}, auth)
        self.assertEqual(status, 200, body)
        yield eventually(lambda: got["alice"], message="alice never got her event")
        status, _, _ = yield self.post({"topic": "app.shop.orders", "args": ["for all"], "kwargs": {"n": 1}}, auth)
        self.assertEqual(status, 200)
        yield eventually(lambda: len(got["bob"]) == 1 and len(got["alice"]) == 2,
                         message="the event for everyone did not arrive", details=lambda: repr(got))
        self.assertEqual(got["alice"], [(("for alice",), {}), (("for all",), {"n": 1})])
        self.assertEqual(got["bob"], [(("for all",), {"n": 1})])

    @defer.inlineCallbacks
    def test_pattern_subscribers_get_the_kwargs_as_sent(self):
        """Prefix and wildcard subscribers (served after the history recorder) get exactly the kwargs posted."""
        auth = yield self.app("kwshop")
        alice = yield connect(self, self.node, sub="alice")
        got = []
        for topic, match in (("app.kwshop.", "prefix"), ("app..orders", "wildcard"), ("app.kwshop.orders", "exact")):
            yield alice.session.subscribe(lambda *args, match=match, **kwargs: got.append((match, args, kwargs)),
                                          topic, options=types.SubscribeOptions(match=match))
        status, body, _ = yield self.post({"topic": "app.kwshop.orders", "args": [1], "kwargs": {"n": 1}}, auth)
        self.assertEqual(status, 200, body)
        yield eventually(lambda: len(got) == 3, message="not every subscription got the event",
                         details=lambda: repr(got))
        self.assertEqual(sorted(got), [("exact", (1,), {"n": 1}), ("prefix", (1,), {"n": 1}),
                                       ("wildcard", (1,), {"n": 1})])

    @defer.inlineCallbacks
    def test_private_app(self):
        """A private application must name to_users (400 without); the named user gets it, another not."""
        auth = yield self.app("payroll", private=True)
        alice = yield connect(self, self.node, sub="alice")
        bob = yield connect(self, self.node, sub="bob")
        got = {"alice": [], "bob": []}
        for name, client in (("alice", alice), ("bob", bob)):
            yield client.session.subscribe(lambda *args, name=name: got[name].append(args), "app.payroll.slip")
        status, body, _ = yield self.post({"topic": "app.payroll.slip", "args": ["everyone"]}, auth)
        self.assertEqual((status, body["error"]), (400, errors.INVALID_ARGUMENT))
        yield self.post({"topic": "app.payroll.slip", "args": ["bob's"], "to_users": ["bob"]}, auth)
        yield self.post({"topic": "app.payroll.slip", "args": ["alice's"], "to_users": ["alice"]}, auth)
        yield self.post({"topic": "app.payroll.slip", "args": ["both"], "to_users": ["alice", "bob"]}, auth)
        yield eventually(lambda: len(got["alice"]) == 2 and len(got["bob"]) == 2,
                         message="a named user did not get the events", details=lambda: repr(got))
        self.assertEqual(got, {"alice": [("alice's",), ("both",)], "bob": [("bob's",), ("both",)]})

    @defer.inlineCallbacks
    def test_revoked_key(self):
        """A revoked application's key gets 401 within the cache life."""
        auth = yield self.app("gone")
        self.assertEqual((yield self.post({"topic": "app.gone.x"}, auth))[0], 200)
        yield self.registry.revoke("gone")
        yield eventually(lambda: self.post({"topic": "app.gone.x"}, auth), check=lambda answer: answer[0] == 401,
                         message="the revoked key was still accepted")
