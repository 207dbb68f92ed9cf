"""
Authentication and authorization against a real Crossbar node: every refused
token, what a user may not do, and sessions ending when their token expires.
"""

import base64
import json
import time

import jwt
from autobahn.wamp.exception import ApplicationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer
from twisted.trial import unittest

from components.auth import (AUTH_EXPIRED, AUTH_INVALID_TOKEN, AUTH_NOT_YET_VALID, AUTH_NO_TOKEN,
                             AUTH_TOKEN_EXPIRED_SESSION, AUTH_UNKNOWN_ROLE, AUTH_WRONG_AUDIENCE, AUTH_WRONG_ISSUER)
from tests.support.clients import connect, issuer, token
from tests.support.devices import register
from tests.support.node import TEST_SECRET, shared_node
from tests.support.polling import eventually


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**overrides):
    now = int(time.time())
    claims = {"sub": "alice", "role": "user", "iss": "reactive", "aud": "reactive", "iat": now, "exp": now + 300}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


class RefusedTokenTests(unittest.TestCase):
    """Each bad ticket is refused by the router with the reason's error URI."""

    timeout = 180

    @defer.inlineCallbacks
    def assertRefused(self, ticket, uri):
        node = yield shared_node()
        try:
            yield connect(self, node, ticket=ticket)
        except ApplicationError as refusal:
            self.assertEqual(refusal.error, uri, refusal)
        else:
            self.fail("ticket was accepted")

    def test_no_token(self):
        """An empty ticket is refused as no_token."""
        return self.assertRefused("", AUTH_NO_TOKEN)

    def test_garbage(self):
        """A ticket that is not a JWT is refused."""
        return self.assertRefused("not-a-jwt", AUTH_INVALID_TOKEN)

    def test_bad_signature(self):
        """A token signed with another secret is refused."""
        return self.assertRefused(jwt.encode(_claims(), "another-secret" * 4, algorithm="HS256"),
                                  AUTH_INVALID_TOKEN)

    def test_alg_none(self):
        """An unsigned ``alg: none`` token is refused."""
        unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + "."
        return self.assertRefused(unsigned, AUTH_INVALID_TOKEN)

    def test_rs256_token_on_hs256_node(self):
        """A token with another algorithm than the pinned one is refused."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.assertRefused(jwt.encode(_claims(), key, algorithm="RS256"), AUTH_INVALID_TOKEN)

    def test_expired(self):
        """A token whose exp has passed is refused as expired."""
        now = int(time.time())
        return self.assertRefused(jwt.encode(_claims(iat=now - 100, exp=now - 60), TEST_SECRET, "HS256"),
                                  AUTH_EXPIRED)

    def test_not_yet_valid(self):
        """A token whose nbf lies in the future is refused."""
        return self.assertRefused(jwt.encode(_claims(nbf=int(time.time()) + 120), TEST_SECRET, "HS256"),
                                  AUTH_NOT_YET_VALID)

    def test_missing_exp(self):
        """A token without exp is refused."""
        return self.assertRefused(jwt.encode(_claims(exp=None), TEST_SECRET, "HS256"), AUTH_INVALID_TOKEN)

    def test_wrong_issuer(self):
        """A token from another issuer is refused."""
        return self.assertRefused(jwt.encode(_claims(iss="evil"), TEST_SECRET, "HS256"), AUTH_WRONG_ISSUER)

    def test_wrong_audience(self):
        """A token for another audience is refused."""
        return self.assertRefused(jwt.encode(_claims(aud="other"), TEST_SECRET, "HS256"),
                                  AUTH_WRONG_AUDIENCE)

    def test_unknown_role(self):
        """A token with a role outside user/admin/device is refused."""
        return self.assertRefused(jwt.encode(_claims(role="backend"), TEST_SECRET, "HS256"),
                                  AUTH_UNKNOWN_ROLE)


class AuthorizationTests(unittest.TestCase):
    """What an authenticated user may and may not do."""

    timeout = 180

    @defer.inlineCallbacks
    def test_authid_is_sub(self):
        """The WAMP authid is the token's sub and the role its role claim."""
        node = yield shared_node()
        client = yield connect(self, node, sub="bob.o'neil+1@x", role="admin")
        self.assertEqual(client.session._authid, "bob.o'neil+1@x")
        self.assertEqual(client.session._authrole, "admin")

    @defer.inlineCallbacks
    def test_user_cannot_register_backend_uri(self):
        """A user session may not register a procedure under a backend prefix."""
        node = yield shared_node()
        client = yield connect(self, node)
        with self.assertRaises(ApplicationError) as caught:
            yield client.session.register(lambda: "forged", "time.set")
        self.assertEqual(caught.exception.error, "wamp.error.not_authorized")

    @defer.inlineCallbacks
    def test_user_cannot_publish_backend_topic(self):
        """A user session may not publish on time.tic (acknowledged publish is refused)."""
        from autobahn.wamp.types import PublishOptions
        node = yield shared_node()
        client = yield connect(self, node)
        with self.assertRaises(ApplicationError) as caught:
            yield client.session.publish("time.tic", {"value": "forged"}, options=PublishOptions(acknowledge=True))
        self.assertEqual(caught.exception.error, "wamp.error.not_authorized")

    @defer.inlineCallbacks
    def test_user_cannot_call_admin_procedures(self):
        """A user session may not call master.users.*."""
        node = yield shared_node()
        client = yield connect(self, node)
        with self.assertRaises(ApplicationError) as caught:
            yield client.session.call("master.users.delete", "alice")
        self.assertEqual(caught.exception.error, "wamp.error.not_authorized")

    @defer.inlineCallbacks
    def test_device_may_only_report_readings(self):
        """A registered device may call iot.device.publish (the bridge publishes for it) but not call time.get."""
        node = yield shared_node()
        yield register(self, node, "sensor-1")
        client = yield connect(self, node, sub="sensor-1", role="device")
        answer = yield client.session.call("iot.device.publish", 1)
        self.assertIsInstance(answer["seq"], int)
        with self.assertRaises(ApplicationError) as caught:
            yield client.session.call("time.get")
        self.assertEqual(caught.exception.error, "wamp.error.not_authorized")


class ExpiryTests(unittest.TestCase):
    """A session does not outlive its token."""

    timeout = 180

    @defer.inlineCallbacks
    def test_session_ends_at_exp_and_client_reconnects(self):
        """The hub ends the session when exp passes; a client with a token source rejoins by itself."""
        node = yield shared_node("expiry", env={"JWT_LEEWAY": "0"})
        minted = []

        def fresh_token():
            minted.append(issuer().issue("carol", "user", ttl=2))
            return minted[-1]
        client = yield connect(self, node, token_source=fresh_token)
        first = client.session
        started = time.monotonic()
        yield eventually(lambda: client.last_leave is not None, timeout=15, message="session was not ended")
        self.assertEqual(client.last_leave.reason, AUTH_TOKEN_EXPIRED_SESSION)
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        yield eventually(lambda: client.session is not None and client.session is not first, timeout=15,
                         message="client did not rejoin")
        self.assertGreaterEqual(len(minted), 2)
        state = yield client.session.call("time.get")
        self.assertIn("seq", state)
