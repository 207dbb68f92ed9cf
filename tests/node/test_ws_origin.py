"""
The router's WebSocket accepts a browser's handshake from the page's own
origin and from ``ALLOWED_ORIGINS`` only (the ``ws_origin`` patch): a
Django ``runserver`` page on another port may connect when listed, any
other origin and ``null`` are refused, a handshake without ``Origin`` (a
server) passes.
"""

from twisted.internet import defer
from twisted.trial import unittest

from components.core.settings import Settings, SettingsError
from components.node import node_settings
from components.node.origin_policy import OriginPolicy, origin_triple
from components.node.patches import PatchUnavailable, ws_origin
from tests.support.node import RouterNode, free_port, shared_node
from tests.support.rawwebsocket import open_websocket, proxied_node


class PolicyTests(unittest.SynchronousTestCase):
    """Which origins a policy allows for a handshake's Host."""

    def test_own_host_and_port(self):
        """The origin naming the Host's host and port passes; another port or host does not."""
        policy = OriginPolicy(())
        self.assertTrue(policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080"))
        self.assertTrue(policy.allows("https://hub.example.org", "hub.example.org"))
        self.assertFalse(policy.allows("http://127.0.0.1:8000", "127.0.0.1:8080"))
        self.assertFalse(policy.allows("http://localhost:8080", "127.0.0.1:8080"))
        self.assertFalse(policy.allows("http://evil.example", None))

    def test_allowlist_and_public_origin(self):
        """Listed origins (default ports filled in) and PUBLIC_URL's pass whatever the Host."""
        listed = {origin_triple("http://127.0.0.1:8000"), origin_triple("https://app.example.org")}
        policy = OriginPolicy(listed, public=origin_triple("https://hub.example.org"))
        self.assertTrue(policy.allows("http://127.0.0.1:8000", "127.0.0.1:8080"))
        self.assertTrue(policy.allows("https://app.example.org:443", "127.0.0.1:8080"))
        self.assertTrue(policy.allows("https://hub.example.org", "internal:8080"))
        self.assertFalse(policy.allows("http://app.example.org", "127.0.0.1:8080"))

    def test_null_and_junk_refused(self):
        """``null`` (a file or sandboxed page) and what is not an origin never pass."""
        policy = OriginPolicy(())
        for origin in ("null", "file:///tmp/page.html", "", "127.0.0.1:8080"):
            self.assertFalse(policy.allows(origin, "127.0.0.1:8080"), origin)

    def test_setting(self):
        """ALLOWED_ORIGINS reads as origin triples; a path or a bare host refuses the setting."""
        read = Settings(environ={"ALLOWED_ORIGINS": "http://127.0.0.1:8000, https://App.example.org"})
        self.assertEqual(read.get(node_settings.ALLOWED_ORIGINS),
                         {("http", "127.0.0.1", 8000), ("https", "app.example.org", 443)})
        self.assertEqual(Settings(environ={}).get(node_settings.ALLOWED_ORIGINS), frozenset())
        for bad in ("http://127.0.0.1:8000/page", "127.0.0.1:8000", "*"):
            self.assertRaises(SettingsError, Settings(environ={"ALLOWED_ORIGINS": bad}).get,
                              node_settings.ALLOWED_ORIGINS)


class InstallTests(unittest.SynchronousTestCase):
    """The patch on a stand-in protocol class."""

    def protocol_class(self):
        from autobahn.websocket.protocol import WebSocketServerProtocol

        class Protocol:
            processHandshake = WebSocketServerProtocol.processHandshake
            factory = type("Factory", (), {"allowNullOrigin": True})()

            def _connectionMade(self):
                self.allowedOriginsPatterns = ["factory's"]

        return Protocol

    def test_connection_gets_the_policy(self):
        """After install a connection checks the policy and refuses ``null``; a second install is a no-op."""
        cls = self.protocol_class()
        self.assertTrue(ws_origin.install(cls, environ={"ALLOWED_ORIGINS": "http://127.0.0.1:8000"}))
        self.assertFalse(ws_origin.install(cls, environ={}))
        connection = cls()
        connection._connectionMade()
        connection.http_headers = {"host": "127.0.0.1:8080"}
        [matcher] = connection.allowedOriginsPatterns
        self.assertFalse(connection.factory.allowNullOrigin)
        self.assertTrue(matcher.match("http://127.0.0.1:8000"))
        self.assertTrue(matcher.match("http://127.0.0.1:8080"))
        self.assertFalse(matcher.match("http://evil.example:80"))

    def test_changed_handshake_is_unavailable(self):
        """A handshake that no longer reads the origin patterns: PatchUnavailable, not a silent no-op."""

        class Protocol:
            def processHandshake(self):
                return None

            def _connectionMade(self):
                return None

        self.assertRaises(PatchUnavailable, ws_origin.install, Protocol, environ={})

    def test_malformed_setting_refuses(self):
        """A malformed ALLOWED_ORIGINS refuses the install (the worker does not serve)."""
        self.assertRaises(SettingsError, ws_origin.install, self.protocol_class(),
                          environ={"ALLOWED_ORIGINS": "evil"})


def origin_header(origin):
    return b"Origin: " + origin.encode("ascii") + b"\r\n" if origin is not None else b""


@defer.inlineCallbacks
def upgrade_status(node, origin, host=None):
    """The HTTP status answering a WebSocket upgrade to ``node`` with ``origin`` (None: no Origin header)."""
    host = host or "127.0.0.1:{}".format(node.port)
    client = yield open_websocket(node.port, headers=origin_header(origin), host_header=host.encode("ascii"))
    client.abort()
    return client.status


class RouterTests(unittest.TestCase):
    """A real node's WebSocket handshake."""

    timeout = 180

    @defer.inlineCallbacks
    def test_allowlisted_origin(self):
        """With ALLOWED_ORIGINS set: it and the own origin upgrade; others and ``null`` are refused."""
        other = "http://127.0.0.1:{}".format(free_port())
        node = RouterNode(name="ws-origin", env={"ALLOWED_ORIGINS": other})
        yield node.start()
        self.addCleanup(node.stop)
        own = "http://127.0.0.1:{}".format(node.port)
        self.assertEqual((yield upgrade_status(node, other)), 101)
        self.assertEqual((yield upgrade_status(node, own)), 101)
        self.assertEqual((yield upgrade_status(node, None)), 101)
        for refused in ("http://evil.example", "http://127.0.0.1:1", "null"):
            status = yield upgrade_status(node, refused)
            self.assertNotEqual(status, 101, refused)
            self.assertIsNotNone(status, refused)

    @defer.inlineCallbacks
    def test_unset_is_same_origin_only(self):
        """Without ALLOWED_ORIGINS only the page's own origin (and no Origin at all) upgrades."""
        node = yield shared_node()
        self.assertEqual((yield upgrade_status(node, "http://127.0.0.1:{}".format(node.port))), 101)
        self.assertEqual((yield upgrade_status(node, None)), 101)
        self.assertNotEqual((yield upgrade_status(node, "http://127.0.0.1:{}".format(free_port()))), 101)
        self.assertNotEqual((yield upgrade_status(node, "http://localhost:{}".format(node.port))), 101)

    @defer.inlineCallbacks
    def test_proxy_worker_checks_too(self):
        """In the production client topology the proxy worker facing browsers applies the same policy."""
        other = "http://127.0.0.1:{}".format(free_port())
        node = yield proxied_node("ws-origin-proxy", env={"ALLOWED_ORIGINS": other})
        self.assertEqual((yield upgrade_status(node, other)), 101)
        self.assertEqual((yield upgrade_status(node, "http://127.0.0.1:{}".format(node.port))), 101)
        self.assertNotEqual((yield upgrade_status(node, "http://evil.example")), 101)
