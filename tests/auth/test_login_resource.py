"""
Login, token and logout over real HTTP against a real node: wrong
passwords, cookie flags, token exchange, logout, rate limit, cross-origin
refusal, and a token from /auth/token opening a WAMP session.
"""

import os

import treq
from twisted.internet import defer
from twisted.trial import unittest

from components.auth import tokens
from components.auth.directory import Directory
from components.db.database import Database
from components.db.migrations import migrate_all
from tests.support.clients import connect, post_json
from tests.support.node import TEST_SECRET, shared_node

NODE_ENV = {"LOGIN_BURST": "20", "LOGIN_RATE": "0.01", "JWT_TTL": "120"}


@defer.inlineCallbacks
def node_with_users(testcase):
    """The shared login node, with alice (user) and root (superuser) in its directory."""
    from components.node import schema_registry
    node = yield shared_node("login", env=NODE_ENV)
    if not getattr(node, "users_created", False):
        db = Database("sqlite:///" + os.path.join(node.directory, "master.db"))
        try:
            yield migrate_all(db, schema_registry.master())
            directory = Directory(db, iterations=1000)
            yield directory.create_user("alice", "alice-password", first_name="Alice")
            yield directory.create_user("root", "root-password", is_superuser=True)
        finally:
            db.close()
        node.users_created = True
    return node


def session_cookie(response):
    for header in response.headers.getRawHeaders(b"set-cookie", []):
        text = header.decode()
        if text.startswith("hub_session="):
            return text
    return None


class LoginTests(unittest.TestCase):
    """POST /auth/login, /auth/token, /auth/logout."""

    timeout = 180

    @defer.inlineCallbacks
    def login(self, node, username, password, address_hint=None):
        headers = {"X-Test": address_hint} if address_hint else None
        code, body, response = yield post_json(node.http + "/auth/login",
                                               {"username": username, "password": password}, headers=headers)
        return code, body, response

    @defer.inlineCallbacks
    def test_login_token_logout(self):
        """A good login sets a strict HttpOnly cookie; the cookie buys JWTs until logout."""
        node = yield node_with_users(self)
        code, body, response = yield self.login(node, "alice", "alice-password")
        self.assertEqual((code, body["username"], body["role"]), (200, "alice", "user"))
        cookie = session_cookie(response)
        self.assertIsNotNone(cookie)
        for flag in ("HttpOnly", "SameSite=Strict", "Path=/auth"):
            self.assertIn(flag, cookie)
        self.assertNotIn("Secure", cookie)  # plain HTTP here; set over TLS
        session_id = cookie.split(";")[0].split("=", 1)[1]

        code, body, response = yield post_json(node.http + "/auth/token", cookies={"hub_session": session_id})
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"cache-control"), [b"no-store"])
        verifier = tokens.TokenVerifier(tokens.Keys("HS256", TEST_SECRET, TEST_SECRET))
        claims = verifier.verify(body["token"])
        self.assertEqual((claims["sub"], claims["role"], claims["exp"] - claims["iat"]), ("alice", "user", 120))

        client = yield connect(self, node, ticket=body["token"])
        self.assertEqual(client.session._authid, "alice")

        code, _, _ = yield post_json(node.http + "/auth/logout", cookies={"hub_session": session_id})
        self.assertEqual(code, 200)
        code, body, _ = yield post_json(node.http + "/auth/token", cookies={"hub_session": session_id})
        self.assertEqual((code, body["error"]), (401, "reactive.error.auth.login_required"))

    @defer.inlineCallbacks
    def test_superuser_gets_admin(self):
        """A superuser's token carries the admin role."""
        node = yield node_with_users(self)
        code, body, response = yield self.login(node, "root", "root-password")
        session_id = session_cookie(response).split(";")[0].split("=", 1)[1]
        code, body, _ = yield post_json(node.http + "/auth/token", cookies={"hub_session": session_id})
        self.assertEqual((code, body["role"]), (200, "admin"))

    @defer.inlineCallbacks
    def test_wrong_password_and_unknown_user(self):
        """Wrong password and unknown user get the same 401 and no cookie."""
        node = yield node_with_users(self)
        for username, password in (("alice", "nope-nope"), ("mallory", "alice-password")):
            code, body, response = yield self.login(node, username, password)
            self.assertEqual((code, body["error"]), (401, "reactive.error.auth.bad_credentials"))
            self.assertIsNone(session_cookie(response))

    @defer.inlineCallbacks
    def test_token_without_cookie(self):
        """No cookie, or a made-up one, is login_required."""
        node = yield node_with_users(self)
        for cookies in (None, {"hub_session": "forged"}):
            code, body, _ = yield post_json(node.http + "/auth/token", cookies=cookies)
            self.assertEqual((code, body["error"]), (401, "reactive.error.auth.login_required"))

    @defer.inlineCallbacks
    def test_cross_origin_refused(self):
        """A request from another origin is refused before credentials are looked at."""
        node = yield node_with_users(self)
        code, body, response = yield post_json(node.http + "/auth/login",
                                               {"username": "alice", "password": "alice-password"},
                                               headers={"Origin": "http://evil.example"})
        self.assertEqual(code, 403)
        self.assertIsNone(session_cookie(response))
        code, _, _ = yield post_json(node.http + "/auth/token", headers={"Origin": "http://evil.example"})
        self.assertEqual(code, 403)
        code, _, _ = yield post_json(node.http + "/auth/token", headers={"Sec-Fetch-Site": "cross-site"})
        self.assertEqual(code, 403)

    @defer.inlineCallbacks
    def test_bad_requests(self):
        """Missing fields, non-JSON bodies and GET get clear 4xx answers."""
        node = yield node_with_users(self)
        code, body, _ = yield post_json(node.http + "/auth/login", {"username": "alice"})
        self.assertEqual((code, body["error"]), (400, "reactive.error.invalid_argument"))
        response = yield treq.post(node.http + "/auth/login", b"{not json", persistent=False,
                                   headers={b"Content-Type": [b"application/json"]})
        self.assertEqual(response.code, 400)
        yield response.text()
        response = yield treq.get(node.http + "/auth/login", persistent=False)
        self.assertEqual(response.code, 405)
        yield response.text()


class RateLimitTests(unittest.TestCase):
    """Login attempts are rate limited per client address."""

    timeout = 180

    @defer.inlineCallbacks
    def test_rate_limited(self):
        """After the burst, attempts get 429 with Retry-After, even with the right password."""
        node = yield shared_node("ratelimit", env={"LOGIN_BURST": "3", "LOGIN_RATE": "0.01"})
        codes = []
        for _ in range(3):
            code, _, _ = yield post_json(node.http + "/auth/login", {"username": "x", "password": "wrong-one"})
            codes.append(code)
        code, body, response = yield post_json(node.http + "/auth/login", {"username": "x", "password": "y"})
        self.assertEqual(codes, [401, 401, 401])
        self.assertEqual((code, body["error"]), (429, "reactive.error.rate_limited"))
        retry_after = int(response.headers.getRawHeaders(b"retry-after")[0])
        self.assertGreater(retry_after, 1)
        self.assertIn("retry in", body["message"])


class KeyDeliveryTests(unittest.TestCase):
    """With E2E_ENCRYPTION=on, /auth/token hands the user (only) their data keys."""

    timeout = 180

    @defer.inlineCallbacks
    def test_token_carries_user_keys(self):
        """The answer holds the current kid and its 32-byte key; another user gets another key; off means none."""
        from components.node import schema_registry
        from components.e2e.envelope import b64decode
        node = yield shared_node("login-e2e", env={"E2E_ENCRYPTION": "on"})
        db = Database("sqlite:///" + os.path.join(node.directory, "master.db"))
        self.addCleanup(db.close)
        yield migrate_all(db, schema_registry.master())
        directory = Directory(db, iterations=1000)
        keys = {}
        for name in ("gina", "hank"):
            yield directory.create_user(name, name + "-password")
            code, body, response = yield post_json(node.http + "/auth/login",
                                                   {"username": name, "password": name + "-password"})
            session_id = session_cookie(response).split(";")[0].split("=", 1)[1]
            code, body, _ = yield post_json(node.http + "/auth/token", cookies={"hub_session": session_id})
            self.assertEqual(code, 200)
            e2e = body["e2e"]
            self.assertIn(e2e["current"], e2e["keys"])
            keys[name] = b64decode(e2e["keys"][e2e["current"]], "key")
            self.assertEqual(len(keys[name]), 32)
            code, again, _ = yield post_json(node.http + "/auth/token", cookies={"hub_session": session_id})
            self.assertEqual(again["e2e"], e2e)
        self.assertNotEqual(keys["gina"], keys["hank"])
        plain = yield node_with_users(self)
        code, body, response = yield post_json(plain.http + "/auth/login",
                                               {"username": "alice", "password": "alice-password"})
        session_id = session_cookie(response).split(";")[0].split("=", 1)[1]
        code, body, _ = yield post_json(plain.http + "/auth/token", cookies={"hub_session": session_id})
        self.assertNotIn("e2e", body)
