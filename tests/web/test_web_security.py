"""
Security of the web transport: the headers on pages, scripts and errors
(Content-Security-Policy allowing only our scripts and the WebSocket
endpoint, nosniff, Referrer-Policy, no framing, no permissive CORS), no
directory listings, the session cookie's Secure flag over TLS, and the
same-origin (CSRF) check on the login endpoints.
"""

import treq
from twisted.internet import defer
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from components.node import webui
from components.auth.resource import AuthService
from components.core.httpjson import HTTPError, check_same_origin
from tests.support.clients import post_json
from tests.support.node import shared_node


def directives(policy):
    """A CSP header as {directive: [sources]}."""
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


class PolicyTests(unittest.SynchronousTestCase):
    """The Content-Security-Policy text."""

    def test_only_own_scripts_and_the_websocket(self):
        """Scripts, workers, styles from 'self' only; connections to 'self' and the /ws endpoint of the host."""
        policy = directives(webui.content_security_policy("hub.example:8443", secure=True))
        self.assertEqual(policy["default-src"], ["'none'"])
        self.assertEqual(policy["script-src"], ["'self'"])
        self.assertEqual(policy["worker-src"], ["'self'"])
        self.assertEqual(policy["style-src"], ["'self'"])
        self.assertEqual(policy["connect-src"], ["'self'", "wss://hub.example:8443/ws"])
        self.assertEqual(policy["frame-ancestors"], ["'none'"])
        self.assertEqual(policy["base-uri"], ["'none'"])

    def test_plain_http_also_allows_ws(self):
        """Over plain HTTP the unencrypted ws:// endpoint of the same host is allowed too."""
        policy = directives(webui.content_security_policy("127.0.0.1:8080", secure=False))
        self.assertEqual(policy["connect-src"], ["'self'", "wss://127.0.0.1:8080/ws", "ws://127.0.0.1:8080/ws"])

    def test_forged_host_adds_nothing(self):
        """A Host header that is not a plain host[:port] cannot inject sources or directives."""
        for host in ("evil.example; script-src *", "a b", "x/y", "", "host:80:90", "ex\u00e4mple.org"):
            policy = directives(webui.content_security_policy(host, secure=False))
            self.assertEqual(policy["connect-src"], ["'self'"], host)
            self.assertEqual(policy["script-src"], ["'self'"], host)

    def test_ipv6_host(self):
        """A bracketed IPv6 host is accepted."""
        self.assertEqual(webui.websocket_sources("[::1]:8080", secure=True), ["wss://[::1]:8080/ws"])


class SecureRequest(DummyRequest):
    def isSecure(self):
        return True


class CookieAndOriginTests(unittest.SynchronousTestCase):
    """The session cookie's flags and the same-origin check, on requests built in memory."""

    def cookie_for(self, request):
        service = AuthService(None, None, None, None, cookie_lifetime=60)
        service._cookie(request, "abc", 60)
        return request.responseHeaders.getRawHeaders(b"set-cookie")[0].decode()

    def test_secure_over_tls(self):
        """Over TLS the session cookie is Secure, HttpOnly, SameSite=Strict and limited to /auth."""
        cookie = self.cookie_for(SecureRequest([b"auth", b"login"]))
        for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/auth"):
            self.assertIn(flag, cookie.split("; "))

    def test_same_origin_passes(self):
        """A browser request whose Origin is the host it was sent to passes; one without Origin (curl) too."""
        request = DummyRequest([b"auth", b"token"])
        request.requestHeaders.setRawHeaders(b"host", [b"hub.example:8080"])
        request.requestHeaders.setRawHeaders(b"origin", [b"http://hub.example:8080"])
        request.requestHeaders.setRawHeaders(b"sec-fetch-site", [b"same-origin"])
        self.assertIsNone(check_same_origin(request))
        self.assertIsNone(check_same_origin(DummyRequest([b"auth", b"token"])))

    def test_cross_site_refused(self):
        """Another origin, an opaque 'null' origin, or Sec-Fetch-Site: cross-site is refused with 403."""
        cases = [[(b"origin", b"https://evil.example")], [(b"origin", b"null")],
                 [(b"sec-fetch-site", b"cross-site")]]
        for headers in cases:
            request = DummyRequest([b"auth", b"login"])
            request.requestHeaders.setRawHeaders(b"host", [b"hub.example:8080"])
            for name, value in headers:
                request.requestHeaders.setRawHeaders(name, [value])
            error = self.assertRaises(HTTPError, check_same_origin, request)
            self.assertEqual(error.status, 403, headers)


class HeadersOverHTTPTests(unittest.TestCase):
    """The headers as a real node sends them."""

    timeout = 60

    @defer.inlineCallbacks
    def get(self, path, headers=None):
        node = yield shared_node()
        response = yield treq.get(node.http + path, headers=headers, persistent=False)
        body = yield response.content()
        return node, response, body

    def header(self, response, name):
        values = response.headers.getRawHeaders(name)
        return values[0] if values else None

    @defer.inlineCallbacks
    def test_pages_and_scripts(self):
        """Pages, modules, the worker and autobahn.js carry CSP, nosniff, Referrer-Policy and no CORS grant."""
        for path in ("/", "/admin.html", "/js/hub.js", "/js/worker.js", "/css/hub.css",
                     "/node_modules/autobahn-browser/autobahn.min.js"):
            node, response, body = yield self.get(path, headers={"Origin": "http://evil.example"})
            self.assertEqual(response.code, 200, path)
            policy = directives(self.header(response, "Content-Security-Policy"))
            self.assertEqual(policy["script-src"], ["'self'"], path)
            self.assertIn("ws://127.0.0.1:{}/ws".format(node.port), policy["connect-src"], path)
            self.assertEqual(self.header(response, "X-Content-Type-Options"), "nosniff", path)
            self.assertEqual(self.header(response, "Referrer-Policy"), "no-referrer", path)
            self.assertEqual(self.header(response, "X-Frame-Options"), "DENY", path)
            self.assertIsNone(self.header(response, "Access-Control-Allow-Origin"), path)
        node, response, body = yield self.get("/js/hub.js")
        self.assertIn("javascript", self.header(response, "Content-Type"))

    @defer.inlineCallbacks
    def test_errors_and_no_listing(self):
        """A missing page and a directory answer 404 with the headers; no listing is ever shown."""
        for path in ("/no-such-page.html", "/js/", "/node_modules/"):
            _node, response, body = yield self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertNotIn(b"hub.js", body)
            self.assertIsNotNone(self.header(response, "Content-Security-Policy"), path)
            self.assertEqual(self.header(response, "X-Content-Type-Options"), "nosniff", path)

    @defer.inlineCallbacks
    def test_auth_endpoints_carry_headers_and_refuse_cross_site(self):
        """/auth/* answers carry the headers; cross-site logout and token requests are refused with 403."""
        node = yield shared_node()
        for path in ("/auth/token", "/auth/logout"):
            code, body, response = yield post_json(node.http + path, headers={"Sec-Fetch-Site": "cross-site"})
            self.assertEqual(code, 403, path)
            self.assertEqual(body["error"], "reactive.error.not_authorized")
            self.assertEqual(self.header(response, "X-Content-Type-Options"), "nosniff")
            self.assertIsNotNone(self.header(response, "Content-Security-Policy"))
