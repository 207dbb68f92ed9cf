"""
Security of the web transport: the headers on pages, scripts and errors
(Content-Security-Policy allowing only our scripts and the WebSocket
endpoint, nosniff, Referrer-Policy, no framing, no permissive CORS), no
directory listings, only the UI's own files served (no package manifests,
no node_modules but the autobahn file), no 500 for odd paths, no Crossbar
status page or version, the session cookie's Secure flag over TLS and
behind a TLS proxy (PUBLIC_URL), and the same-origin (CSRF) check on the
login endpoints.
"""

import json
import re

import treq
from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from components.node import webui
from components.auth.resource import AuthService
from components.core.httpjson import HTTPError, check_same_origin
from components.core.settings import Settings, SettingsError
from tests.support.clients import post_json
from tests.support.node import RouterNode, shared_node

VERSIONED = re.compile(r"[0-9]|crossbar/|twisted", re.IGNORECASE)


class _RawResponse(protocol.Protocol):
    """Collects an HTTP response's bytes; done at the end of the headers or when the server closes."""

    def __init__(self, request, done):
        self.request, self.done, self.data = request, done, b""

    def connectionMade(self):
        self.transport.write(self.request)

    def dataReceived(self, data):
        self.data += data
        if b"\r\n\r\n" in self.data and self.data.startswith(b"HTTP/1.1 101"):
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(self.data)


def raw_http(port, request):
    """Send ``request`` (bytes, exactly as given) to 127.0.0.1:``port``; fire with the raw answer."""
    done = defer.Deferred()
    protocol.ClientCreator(reactor, _RawResponse, request, done).connectTCP("127.0.0.1", port, timeout=5)
    return done


def raw_get(port, path, headers=b""):
    return raw_http(port, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers +
                    b"\r\n")


def status_and_headers(raw):
    """``(status, {lower-case name: [values]}, body)`` of a raw HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, body


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


class PlainRequest(DummyRequest):
    def isSecure(self):
        return False


class PublicURLPolicyTests(unittest.SynchronousTestCase):
    """PUBLIC_URL: the origin browsers use when TLS ends at a proxy in front of the hub."""

    def headers_for(self, public, host=b"10.0.0.7:8080"):
        request = PlainRequest([b""])
        request.requestHeaders.setRawHeaders(b"host", [host])
        webui.apply_security_headers(request, public=webui.public_origin(public))
        return request

    def test_https_public_url_allows_only_wss_to_that_host(self):
        """An https:// PUBLIC_URL: connect-src holds only wss:// of that host (not the proxy-facing Host), and
        Strict-Transport-Security is sent."""
        request = self.headers_for("https://hub.example.org")
        policy = directives(request.responseHeaders.getRawHeaders(b"content-security-policy")[0].decode())
        self.assertEqual(policy["connect-src"], ["'self'", "wss://hub.example.org/ws"])
        self.assertEqual(request.responseHeaders.getRawHeaders(b"strict-transport-security"), [b"max-age=31536000"])

    def test_http_public_url(self):
        """A plain http:// PUBLIC_URL (a local balancer) allows ws:// of that host too, and sends no HSTS."""
        request = self.headers_for("http://localhost:8080")
        policy = directives(request.responseHeaders.getRawHeaders(b"content-security-policy")[0].decode())
        self.assertEqual(policy["connect-src"], ["'self'", "wss://localhost:8080/ws", "ws://localhost:8080/ws"])
        self.assertIsNone(request.responseHeaders.getRawHeaders(b"strict-transport-security"))

    def test_without_public_url_the_request_counts(self):
        """Unset, the request's Host and scheme count, as before; no HSTS."""
        request = self.headers_for("", host=b"127.0.0.1:8080")
        policy = directives(request.responseHeaders.getRawHeaders(b"content-security-policy")[0].decode())
        self.assertEqual(policy["connect-src"], ["'self'", "wss://127.0.0.1:8080/ws", "ws://127.0.0.1:8080/ws"])
        self.assertIsNone(request.responseHeaders.getRawHeaders(b"strict-transport-security"))

    def test_malformed_public_url_is_refused(self):
        """A PUBLIC_URL that is not an http(s) origin with a plain host stops the resource with a SettingsError."""
        for value in ("ftp://hub.example.org", "hub.example.org", "https://evil.example; script-src *",
                      "https://a b"):
            with self.assertRaises(SettingsError, msg=value):
                webui.WebUIResource(Settings({"PUBLIC_URL": value}, {}, "/tmp"))

    def test_https_public_url_makes_the_cookie_secure(self):
        """Behind a TLS proxy (request looks plain) an https:// PUBLIC_URL still gives a Secure cookie."""
        service = AuthService(None, None, None, None, cookie_lifetime=60, secure_cookie=True)
        request = DummyRequest([b"auth", b"login"])
        service._cookie(request, "abc", 60)
        self.assertIn("Secure", request.responseHeaders.getRawHeaders(b"set-cookie")[0].decode().split("; "))


class ServableTests(unittest.SynchronousTestCase):
    """Which files under the UI directory are part of the UI."""

    def test_ui_files_and_the_autobahn_file(self):
        """Pages, scripts, styles and icons are served, and of node_modules only autobahn.min.js."""
        for path in ("index.html", "admin.html", "favicon.svg", "js/hub.js", "js/worker.js", "css/hub.css",
                     "node_modules/autobahn-browser/autobahn.min.js"):
            self.assertTrue(webui.servable(path), path)

    def test_everything_else(self):
        """Manifests, the rest of node_modules, dot files and other types are not."""
        for path in ("package.json", "package-lock.json", "node_modules/autobahn-browser/package.json",
                     "node_modules/autobahn-browser/autobahn.js", "node_modules/x", "node_modules/.package-lock.json",
                     "node_modules/other/autobahn.min.js", ".env", "js/.hidden.js", ".git/config", "README.md",
                     "js/x.json", "js/hub.js.map", "js//hub.js"):
            self.assertFalse(webui.servable(path), path)

    def test_not_served_is_the_one_error_body(self):
        """A missing file, a manifest and a directory answer 404 in the hub's one error body, with nosniff."""
        static = webui.SecureStatic(webui.DEFAULT_DIRECTORY)
        for segments in ([b"no-such-page.html"], [b"package.json"], [b"js"]):
            request = PlainRequest(segments)
            resource = static
            for segment in segments:
                resource = resource.getChildWithDefault(segment, request)
            body = resource.render(request)
            self.assertEqual((request.responseCode, json.loads(body)),
                             (404, {"error": "reactive.error.not_found", "message": "no such page"}), segments)
            self.assertIn(b"nosniff", request.responseHeaders.getRawHeaders(b"x-content-type-options"))


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

    timeout = 180

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
        """A missing page and a directory answer 404 with the headers and the hub's one error body; no listing
        is ever shown."""
        for path in ("/no-such-page.html", "/js/", "/node_modules/"):
            _node, response, body = yield self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(json.loads(body), {"error": "reactive.error.not_found", "message": "no such page"}, path)
            self.assertIsNotNone(self.header(response, "Content-Security-Policy"), path)
            self.assertEqual(self.header(response, "X-Content-Type-Options"), "nosniff", path)

    @defer.inlineCallbacks
    def test_unknown_auth_path(self):
        """A path under /auth that is no endpoint answers 404 in the one error body (was Twisted's HTML page)."""
        for path in ("/auth/", "/auth/no-such-endpoint"):
            _node, response, body = yield self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertEqual(json.loads(body), {"error": "reactive.error.not_found", "message": "no such page"}, path)

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

    @defer.inlineCallbacks
    def test_only_ui_files(self):
        """package.json, package-lock.json and node_modules other than the autobahn file answer 404 (with the
        headers); the pages and the autobahn file load."""
        for path in ("/package.json", "/package-lock.json", "/node_modules/x", "/node_modules",
                     "/node_modules/autobahn-browser/package.json", "/node_modules/autobahn-browser/autobahn.js",
                     "/node_modules/.package-lock.json", "/js"):
            _node, response, body = yield self.get(path)
            self.assertEqual(response.code, 404, path)
            self.assertNotIn(b"autobahn", body, path)
            self.assertIsNotNone(self.header(response, "Content-Security-Policy"), path)
        for path in ("/", "/index.html", "/admin.html", "/node_modules/autobahn-browser/autobahn.min.js"):
            _node, response, body = yield self.get(path)
            self.assertEqual(response.code, 200, path)
            self.assertTrue(body, path)

    @defer.inlineCallbacks
    def test_odd_paths_are_not_found(self):
        """A NUL byte or other odd segments answer 404, never 500, and leave no critical traceback in the log."""
        node = yield shared_node()
        offset = len(node.log_text())
        for path in (b"/js%00.js", b"/%00", b"/js/%00", b"/js/hub.js%00", b"/%2e%2e/%2e%2e/etc/passwd",
                     b"/js/%2Fetc%2Fpasswd", b"/%ff%fe", b"/js/..%2F..%2Fsetup.cfg"):
            status, headers, _body = status_and_headers((yield raw_get(node.port, path)))
            self.assertIn(status, (400, 404), path)
        self.assertNotIn('"level": "critical"', node.log_text()[offset:])

    @defer.inlineCallbacks
    def test_no_crossbar_status_page_on_ws(self):
        """GET /ws without an upgrade shows no Crossbar status page (no version, no PID), and a real
        WebSocket handshake names no version."""
        node = yield shared_node()
        status, headers, body = status_and_headers((yield raw_get(node.port, b"/ws")))
        self.assertNotEqual(status, 200)
        self.assertNotIn(b"Crossbar", body)
        self.assertNotIn(b"<html", body.lower())
        handshake = (b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: wamp.2.json\r\n")
        status, headers, _body = status_and_headers((yield raw_http(
            node.port, b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n" + handshake + b"\r\n")))
        self.assertEqual(status, 101)
        for value in headers.get("server", []):
            self.assertIsNone(VERSIONED.search(value), value)

    @defer.inlineCallbacks
    def test_server_header_names_no_version(self):
        """Pages, /ws, /auth/*, /health and 404s carry no Server header with a version."""
        node = yield shared_node()
        answers = []
        for path in (b"/", b"/ws", b"/auth/login", b"/health", b"/no-such-page", b"/js%00.js"):
            answers.append((path, (yield raw_get(node.port, path))))
        code, _body, response = yield post_json(node.http + "/auth/login", {"username": "x", "password": "y"})
        answers.append((b"POST /auth/login", b"HTTP/1.1 %d X\r\n" % code + b"".join(
            b"%s: %s\r\n" % (name, value) for name, values in response.headers.getAllRawHeaders()
            for value in values) + b"\r\n"))
        for path, raw in answers:
            _status, headers, _body = status_and_headers(raw)
            for value in headers.get("server", []):
                self.assertIsNone(VERSIONED.search(value), (path, value))


class BehindTLSProxyTests(unittest.TestCase):
    """A node with PUBLIC_URL=https://hub.example.org, reached over plain HTTP as a TLS proxy reaches it."""

    timeout = 180

    @defer.inlineCallbacks
    def test_secure_cookie_and_wss_only(self):
        """The session cookie is Secure although the request is plain HTTP, and the CSP allows only
        wss://hub.example.org/ws (no ws://), with Strict-Transport-Security."""
        node = RouterNode(name="behind-tls", env={"PUBLIC_URL": "https://hub.example.org"})
        self.addCleanup(node.cleanup)
        yield node.start()
        response = yield treq.get(node.http + "/", persistent=False)
        yield response.content()
        policy = directives(response.headers.getRawHeaders("Content-Security-Policy")[0])
        self.assertEqual(policy["connect-src"], ["'self'", "wss://hub.example.org/ws"])
        self.assertEqual(response.headers.getRawHeaders("Strict-Transport-Security"), ["max-age=31536000"])
        code, _body, response = yield post_json(node.http + "/auth/logout")
        self.assertEqual(code, 200)
        cookie = response.headers.getRawHeaders("Set-Cookie")[0]
        self.assertIn("Secure", cookie.split("; "))
        self.assertTrue(cookie.startswith("hub_session="), cookie)
