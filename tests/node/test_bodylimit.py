"""
components.node.patches.bodylimit: request bodies over their path's limit are
refused with 413 before Twisted stores them, a slow body is dropped after its
deadline, and requests within the limits behave as before. Unit tests drive a
real HTTPChannel (a patched subclass) over a StringTransport with a fake
clock; the router tests send raw HTTP to a real node.
"""

import json
import os
import tempfile
import time

from twisted.internet import defer, endpoints, error, protocol, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import failure
from twisted.trial import unittest
from twisted.web import http, resource, server

from components.core.httpjson import MAX_BODY
from components.core.settings import Settings, SettingsError
from components.node import topology
from components.node.patches import PatchUnavailable, bodylimit
from tests.support.node import NodeFailed, RouterNode, free_port, router_worker, shared_node
from tests.support.polling import eventually

LIMITS = bodylimit.BodyLimits(default=16, by_segment={b"auth": 64, b"publish": 32}, timeout=5.0)
HEADER_CLOCK = bodylimit._headers_too_slow
REFUSAL = {"error": "reactive.error.invalid_argument", "message": "request body too large"}


class Recorder(resource.Resource):
    """A leaf resource that records the path and body of every request it renders."""

    isLeaf = True

    def __init__(self):
        resource.Resource.__init__(self)
        self.bodies = []

    def render(self, request):
        self.bodies.append((request.path, request.content.read()))
        return b"ok"


def patched_channel_class(limits=LIMITS):
    """A fresh HTTPChannel subclass with the limits installed (Twisted's own class stays as it is)."""

    class Channel(http.HTTPChannel):
        pass

    from twisted.web.proxy import ProxyClient
    assert bodylimit.install(limits, Channel, proxy_client_class=type("ProxyClient", (ProxyClient,), {}))
    return Channel


def chunked(target):
    """The head of a chunked POST to ``target``."""
    return b"POST " + target + b" HTTP/1.1\r\nHost: hub\r\nTransfer-Encoding: chunked\r\n\r\n"


def parse(raw):
    """``(status, headers, body)`` of the first HTTP answer in ``raw``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    return int(lines[0].split(b" ")[1]), headers, body


class ChannelCase(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.recorder = Recorder()

    def connect(self, limits=LIMITS):
        site = server.Site(self.recorder)
        channel = patched_channel_class(limits)()
        channel.site = site
        channel.requestFactory = site.requestFactory
        channel.timeOut = None
        channel.callLater = self.clock.callLater
        transport = StringTransport()
        channel.makeConnection(transport)
        return channel, transport

    def post(self, target, body=b"", length=None, extra=b""):
        length = len(body) if length is None else length
        return (b"POST " + target + b" HTTP/1.1\r\nHost: hub\r\nContent-Length: " + str(length).encode()
                + b"\r\n" + extra + b"\r\n" + body)

    def pending(self):
        """What the fake clock will still call: the header clock of the next request and nothing else, when idle."""
        return [call.func for call in self.clock.getDelayedCalls()]

    def assertRefused(self, transport, status=413, message="request body too large"):
        code, headers, body = parse(transport.value())
        self.assertEqual(code, status, transport.value())
        self.assertEqual(json.loads(body), {"error": "reactive.error.invalid_argument", "message": message})
        self.assertEqual(int(headers[b"Content-Length"]), len(body))
        self.assertEqual(headers[b"Content-Type"], b"application/json; charset=utf-8")
        self.assertEqual(headers[b"Connection"], b"close")
        self.assertTrue(transport.disconnecting, "connection left open")


class HeaderClockTests(ChannelCase):
    """An idle connection, or one sending its headers too slowly, gets 408 and is closed after HTTP_HEADER_TIMEOUT."""

    def test_idle_connection_dropped(self):
        """Nothing sent for the header timeout: 408 JSON and close."""
        channel, transport = self.connect()
        self.clock.advance(LIMITS.header_timeout)
        self.assertRefused(transport, 408, "request headers not received in time")

    def test_slow_headers_dropped_and_complete_headers_stop_the_clock(self):
        """Headers trickling in past the timeout are cut; headers in time stop the clock until the next request."""
        channel, transport = self.connect()
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: hub\r\n")
        self.clock.advance(LIMITS.header_timeout)
        self.assertRefused(transport, 408, "request headers not received in time")
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", b"x"))
        self.assertEqual(self.recorder.bodies, [(b"/auth/login", b"x")])
        # (the first, refused connection still has its abort guard)
        self.assertEqual(self.pending().count(HEADER_CLOCK), 1, "kept alive: the next request's headers are timed")


class HostHeaderTests(ChannelCase):
    """A request without exactly one ASCII Host header gets 400 on the channel (Crossbar's reverse proxy 500s on it)."""

    def test_missing_duplicate_and_non_ascii_host_refused(self):
        """No Host (HTTP/1.0), two Hosts, a non-ASCII Host: 400 JSON and close, nothing rendered."""
        for request in (b"GET /health HTTP/1.0\r\n\r\n",
                        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                        b"GET /health HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n"):
            channel, transport = self.connect()
            channel.dataReceived(request)
            self.assertRefused(transport, 400, "the request needs one ASCII Host header")
        self.assertEqual(self.recorder.bodies, [])

    def test_one_ascii_host_passes(self):
        """An ordinary request with one Host header reaches the resource."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", b"x"))
        self.assertEqual(self.recorder.bodies, [(b"/auth/login", b"x")])


class DeclaredLengthTests(ChannelCase):
    """A declared Content-Length over the path's limit: 413 at once, nothing buffered, nothing rendered."""

    def test_huge_declared_length_refused_before_any_body(self):
        """Content-Length 2000000000 on /auth/login: 413 JSON and close, no body file, no render."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", length=2000000000))
        self.assertRefused(transport)
        self.assertIsNone(channel.requests[0].content, "Twisted created a body file")
        self.assertEqual(self.recorder.bodies, [])
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), channel.abortTimeout,
                         "only the abort guard for a peer that never reads is scheduled")

    def test_limit_is_inclusive(self):
        """A body of exactly the limit reaches the resource; one byte more is refused."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", b"x" * 64))
        self.assertEqual(self.recorder.bodies, [(b"/auth/login", b"x" * 64)])
        self.assertFalse(transport.disconnecting)
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", b"x" * 65))
        self.assertRefused(transport)
        self.assertEqual(len(self.recorder.bodies), 1)

    def test_each_path_has_its_limit(self):
        """/publish and every other path get their own limits, checked on the channel."""
        for target, limit in ((b"/publish", 32), (b"/", 16), (b"/health", 16), (b"/ws", 16)):
            channel, transport = self.connect()
            channel.dataReceived(self.post(target, b"y" * limit))
            self.assertFalse(transport.disconnecting, target)
            channel, transport = self.connect()
            channel.dataReceived(self.post(target, b"y" * (limit + 1)))
            self.assertRefused(transport)
        self.assertEqual([len(body) for _, body in self.recorder.bodies], [32, 16, 16, 16])

    def test_limit_follows_the_segment_site_routes_by(self):
        """The first path segment, unquoted as Site does; query strings and look-alikes do not change it."""
        for target, limit in ((b"/auth/login", 64), (b"/auth", 64), (b"/auth/token?next=/publish", 64),
                              (b"/%61uth/login", 64), (b"/publish", 32), (b"/publish/", 32),
                              (b"/publishx", 16),
                              (b"/Auth/login", 16), (b"//auth/login", 16), (b"/static/auth", 16),
                              (b"http://hub/auth/login", 16), (b"", 16), (b"*", 16)):
            self.assertEqual(LIMITS.for_target(target), limit, target)

    def test_no_100_continue_for_a_refused_body(self):
        """A client waiting with Expect: 100-continue gets the 413 instead of an invitation to send."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/publish", length=10 ** 9, extra=b"Expect: 100-continue\r\n"))
        self.assertNotIn(b"100 Continue", transport.value())
        self.assertRefused(transport)
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/publish", length=5, extra=b"Expect: 100-continue\r\n"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 100 Continue"), "within the limit as before")

    def test_bytes_after_a_refusal_are_ignored(self):
        """Body bytes that arrive with or after the refused headers are read by nobody."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", b"z" * 1000, length=100000))
        channel.dataReceived(b"z" * 100000 + self.post(b"/auth/login", b"{}"))
        self.assertRefused(transport)
        self.assertEqual(transport.value().count(b"HTTP/1.1"), 1)
        self.assertEqual(self.recorder.bodies, [])

    def test_requests_without_a_body_are_unchanged(self):
        """Pipelined GETs are answered in order, with no deadline left behind."""
        channel, transport = self.connect()
        channel.dataReceived(b"GET /health HTTP/1.1\r\nHost: hub\r\n\r\n"
                             b"GET /ws HTTP/1.1\r\nHost: hub\r\n\r\n")
        self.assertEqual([path for path, _ in self.recorder.bodies], [b"/health", b"/ws"])
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 2)
        self.assertEqual(self.pending(), [HEADER_CLOCK], "a body deadline outlived its body")
        self.assertFalse(transport.disconnecting)

    def test_peer_that_does_not_read_the_answer_is_aborted(self):
        """After a refusal the connection is aborted abortTimeout seconds later if it is still open."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", length=10 ** 6))
        self.assertFalse(transport.disconnected)
        self.clock.advance(channel.abortTimeout)
        self.assertTrue(transport.disconnected, "not aborted")


class ChunkedTests(ChannelCase):
    """A chunked body is counted as it is decoded and refused once past the limit."""

    @staticmethod
    def chunk(data):
        return b"%x\r\n%s\r\n" % (len(data), data)

    def test_chunked_body_past_the_limit_is_aborted(self):
        """Chunks of 40 and 40 bytes to /auth (64): 413 on the second, only the first was stored."""
        channel, transport = self.connect()
        channel.dataReceived(chunked(b"/auth/login") + self.chunk(b"a" * 40))
        self.assertEqual(transport.value(), b"")
        channel.dataReceived(self.chunk(b"b" * 40))
        self.assertRefused(transport)
        self.assertEqual(channel.requests[0].content.tell(), 40)
        channel.dataReceived(self.chunk(b"c" * 40) + b"0\r\n\r\n")
        self.assertEqual(self.recorder.bodies, [])
        self.assertEqual(transport.value().count(b"HTTP/1.1"), 1)

    def test_refused_chunked_request_never_renders(self):
        """Chunks past the limit and the last chunk in one read: still 413 and no render."""
        channel, transport = self.connect()
        channel.dataReceived(chunked(b"/publish") + self.chunk(b"d" * 33) + b"0\r\n\r\n")
        self.assertRefused(transport)
        self.assertEqual(self.recorder.bodies, [])

    def test_chunked_body_within_the_limit_is_delivered(self):
        """64 bytes in chunks reach /auth whole; the deadline is cancelled."""
        channel, transport = self.connect()
        channel.dataReceived(chunked(b"/auth/login") + self.chunk(b"e" * 30) + self.chunk(b"f" * 34)
                             + b"0\r\n\r\n")
        self.assertEqual(self.recorder.bodies, [(b"/auth/login", b"e" * 30 + b"f" * 34)])
        self.assertEqual(self.pending(), [HEADER_CLOCK], "a body deadline outlived its body")


class DeadlineTests(ChannelCase):
    """A body must be complete ``timeout`` seconds after its headers, or the client is dropped with 408."""

    def test_slow_body_is_dropped(self):
        """10 of 50 bytes by the deadline: 408 JSON and close; the request never renders."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", b"g" * 10, length=50))
        self.clock.advance(4.9)
        channel.dataReceived(b"g")
        self.assertEqual(transport.value(), b"", "data does not extend the deadline")
        self.clock.advance(0.1)
        self.assertRefused(transport, 408, "request body not received in time")
        channel.dataReceived(b"g" * 39)
        self.assertEqual(self.recorder.bodies, [])

    def test_slow_chunked_body_is_dropped(self):
        """A chunked body that never ends is dropped at the deadline too."""
        channel, transport = self.connect()
        channel.dataReceived(chunked(b"/publish") + b"1\r\nh\r\n")
        self.clock.advance(5)
        self.assertRefused(transport, 408, "request body not received in time")

    def test_complete_body_cancels_the_deadline(self):
        """A body that completes in time is rendered and leaves no timer; the connection stays usable."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", b"i" * 10, length=20))
        self.clock.advance(4)
        channel.dataReceived(b"i" * 10 + self.post(b"/publish", b"j" * 5))
        self.assertEqual(self.recorder.bodies, [(b"/auth/login", b"i" * 20), (b"/publish", b"j" * 5)])
        self.assertEqual(self.pending(), [HEADER_CLOCK], "a body deadline outlived its body")
        self.clock.advance(10)
        self.assertNotIn(b"408", transport.value())
        self.assertFalse(transport.disconnecting)

    def test_lost_connection_cancels_the_deadline(self):
        """A client that goes away mid-body leaves no timer behind."""
        channel, transport = self.connect()
        channel.dataReceived(self.post(b"/auth/login", b"k", length=20))
        channel.connectionLost(failure.Failure(error.ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class InstallTests(unittest.SynchronousTestCase):
    """install() patches Twisted's channel once and leaves an unknown one alone; limits come from settings."""

    def test_installs_once_on_twisted_channel(self):
        """Against the installed Twisted: the hooked methods are replaced once, the proxy client framed."""
        from twisted.web.proxy import ProxyClient
        names = bodylimit._HOOKED
        for name in names:
            self.addCleanup(setattr, http.HTTPChannel, name, getattr(http.HTTPChannel, name))
        self.addCleanup(setattr, ProxyClient, "__init__", ProxyClient.__init__)
        self.assertEqual(bodylimit.install(LIMITS), LIMITS.describe())
        for name in names:
            self.assertTrue(getattr(getattr(http.HTTPChannel, name), bodylimit.PATCHED), name)
        self.assertTrue(getattr(ProxyClient.__init__, bodylimit.PATCHED))
        self.assertFalse(bodylimit.install(LIMITS), "installed twice")

    def test_channel_without_the_internals_is_left_alone(self):
        """A release whose channel or chunked decoder lacks what the wrappers read: PatchUnavailable, unpatched."""

        class Channel(http.HTTPChannel):
            _maybeChooseTransferDecoder = None

        self.assertRaises(PatchUnavailable, bodylimit.install, LIMITS, Channel)
        self.assertFalse(hasattr(Channel.allHeadersReceived, bodylimit.PATCHED))

        class Decoder:
            def __init__(self, deliver, finish):
                self.deliver = deliver

        class Other(http.HTTPChannel):
            pass

        error = self.assertRaises(PatchUnavailable, bodylimit.install, LIMITS, Other, Decoder)
        self.assertIn("dataCallback", str(error))
        self.assertFalse(hasattr(Other.allHeadersReceived, bodylimit.PATCHED))

    def test_limits_from_settings(self):
        """Defaults: /auth MAX_BODY, /publish 4096, /apps 65536, anything else 1024 bytes, 10 s; each setting
        overrides."""
        limits = bodylimit.BodyLimits.from_settings(Settings(environ={}, node_directory="/node"))
        self.assertEqual((limits.by_segment, limits.default, limits.timeout),
                         ({b"auth": MAX_BODY, b"publish": 4096, b"apps": 65536}, 1024, 10.0))
        self.assertEqual(limits.header_timeout, 15.0)
        limits = bodylimit.limits_from_environment(
            ["crossbar"], {"HTTP_BODY_LIMIT": "0", "DEVICE_BODY_LIMIT": "8192", "APPS_BODY_LIMIT": "4096",
                           "HTTP_BODY_TIMEOUT": "500ms",
                           "HTTP_HEADER_TIMEOUT": "2s"})
        self.assertEqual((limits.by_segment[b"publish"], limits.default, limits.timeout, limits.header_timeout),
                         (8192, 0, 0.5, 2.0))
        self.assertEqual(limits.by_segment[b"apps"], 4096)
        self.assertEqual(limits.describe(), "/apps 4096, /auth 16384, /publish 8192, anything else 0 bytes; "
                                            "0.5 s per body, 2 s for a request's headers")
        malformed = (("HTTP_BODY_LIMIT", "lots"), ("DEVICE_BODY_LIMIT", "10"), ("HTTP_BODY_TIMEOUT", "0"),
                     ("HTTP_HEADER_TIMEOUT", "soon"))
        for name, value in malformed:
            with self.assertRaises(SettingsError) as caught:
                bodylimit.limits_from_environment(["crossbar"], {name: value})
            self.assertIn(name, str(caught.exception))


def head(target, *headers):
    """The request line and headers of a POST to ``target``."""
    lines = [b"POST " + target + b" HTTP/1.1", b"Host: 127.0.0.1"] + list(headers)
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


class RawClient(protocol.Protocol):
    """Collects what the server sends; ``lost`` fires when the connection ends."""

    def __init__(self):
        self.received = b""
        self.lost = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost.callback(None)


def router_pid(node):
    """The pid of the node's router worker: the controller's child titled as the config's router worker."""
    title = router_worker(node.config)["options"]["title"].encode()
    for entry in os.listdir("/proc"):
        try:
            with open("/proc/{}/stat".format(entry), "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
            with open("/proc/{}/cmdline".format(entry), "rb") as handle:
                command = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if parent == node.process.pid and title in command:
            return int(entry)
    raise AssertionError("no router worker under pid {}".format(node.process.pid))


def open_temp_files(pid):
    """The files under the temp directory the process holds open (Twisted's body files are unlinked ones)."""
    directory = os.path.realpath(tempfile.gettempdir())
    found = set()
    for fd in os.listdir("/proc/{}/fd".format(pid)):
        try:
            target = os.readlink("/proc/{}/fd/{}".format(pid, fd))
        except OSError:
            continue
        if target.startswith(directory + "/") and target.endswith("(deleted)"):
            found.add((fd, target))
    return found


class WireCase(unittest.TestCase):
    """Raw HTTP over TCP to a node: ``open`` a connection, wait for the ``answer`` and the close."""

    timeout = 120

    @defer.inlineCallbacks
    def open(self, node):
        client = RawClient()
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", node.port)
        yield endpoints.connectProtocol(endpoint, client)
        self.addCleanup(lambda: client.transport.abortConnection() if client.transport.connected else None)
        return client

    def open_when_listening(self, node, timeout=60.0):
        """``open``, retried until the port listens (proxy workers start after the router is ready)."""
        return eventually(lambda: self.open(node), timeout=timeout, interval=0.1,
                          retry_on=(error.ConnectionRefusedError,),
                          message="port {} not listening".format(node.port))

    @defer.inlineCallbacks
    def answer(self, client, timeout=10.0):
        """The whole answer; the server must close the connection within ``timeout``."""
        yield eventually(lambda: client.lost.called, timeout=timeout, message="connection still open")
        return parse(client.received)

    @defer.inlineCallbacks
    def exchange(self, node, data, timeout=10.0):
        """Open a connection, send ``data``, and fire with the ``(status, headers, body)`` answer."""
        client = yield self.open(node)
        client.transport.write(data)
        answer = yield self.answer(client, timeout=timeout)
        return answer


class RouterTests(WireCase):
    """Against a real router: oversized, chunked and slow bodies are refused on the wire."""

    BODY_TIMEOUT = 1.0
    DEVICE_LIMIT = 5000

    @defer.inlineCallbacks
    def node(self):
        node = yield shared_node("bodylimit", env={"HTTP_BODY_TIMEOUT": str(self.BODY_TIMEOUT),
                                                   "DEVICE_BODY_LIMIT": str(self.DEVICE_LIMIT)})
        return node

    @defer.inlineCallbacks
    def refused_at_once(self, target):
        node = yield self.node()
        pid = router_pid(node)
        before = open_temp_files(pid)
        client = yield self.open(node)
        client.transport.write(head(target, b"Content-Type: application/json", b"Content-Length: 2000000000"))
        # not one body byte is sent: the answer must come from the headers alone
        yield eventually(lambda: b"\r\n\r\n" in client.received, timeout=5.0,
                         message="no answer to the headers")
        self.assertEqual(open_temp_files(pid) - before, set(), "the worker opened a body file")
        status, _, body = yield self.answer(client)
        self.assertEqual((status, json.loads(body)), (413, REFUSAL))

    def test_huge_login_is_refused_at_once(self):
        """POST /auth/login declaring 2000000000 bytes: 413 before any body byte, no temp file opened."""
        return self.refused_at_once(b"/auth/login")

    def test_huge_publish_is_refused_at_once(self):
        """POST /publish declaring 2000000000 bytes: 413 before any body byte, no temp file opened."""
        return self.refused_at_once(b"/publish")

    @defer.inlineCallbacks
    def test_bodies_within_the_limits_reach_the_resources(self):
        """DEVICE_BODY_LIMIT (5000 here) bytes reach the bridge, a small login its resource; 5001 get 413."""
        node = yield self.node()
        for target, size in ((b"/publish", self.DEVICE_LIMIT), (b"/auth/login", 2)):
            client = yield self.open(node)
            body = b"{}".ljust(size)
            client.transport.write(head(target, b"Connection: close", b"Content-Type: application/json",
                                        b"Content-Length: %d" % size) + body)
            status, _, answer = yield self.answer(client)
            self.assertNotIn(status, (408, 413), (target, answer))
        status, _, answer = yield self.exchange(node, head(b"/publish", b"Content-Length: %d" % (self.DEVICE_LIMIT + 1)))
        self.assertEqual((status, json.loads(answer)), (413, REFUSAL))

    @defer.inlineCallbacks
    def test_chunked_login_past_the_limit_is_aborted(self):
        """A chunked login body past 16 KiB is refused once the limit is crossed, before the body ends."""
        node = yield self.node()
        chunk = b"x" * (MAX_BODY + 1)
        # no last chunk: without the limit the router would still be waiting for the body to end
        status, _, body = yield self.exchange(node, head(b"/auth/login", b"Content-Type: application/json",
                                                         b"Transfer-Encoding: chunked")
                                              + b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.assertEqual((status, json.loads(body)), (413, REFUSAL))

    @defer.inlineCallbacks
    def test_slow_sender_is_dropped(self):
        """10 of 100 declared bytes, then silence: 408 and close after HTTP_BODY_TIMEOUT (1 s here)."""
        node = yield self.node()
        client = yield self.open(node)
        started = time.monotonic()
        client.transport.write(head(b"/auth/login", b"Content-Type: application/json", b"Content-Length: 100")
                               + b"{" * 10)
        status, _, body = yield self.answer(client, timeout=self.BODY_TIMEOUT + 5)
        elapsed = time.monotonic() - started
        self.assertEqual((status, json.loads(body)),
                         (408, {"error": "reactive.error.invalid_argument",
                                "message": "request body not received in time"}))
        self.assertGreaterEqual(elapsed, self.BODY_TIMEOUT * 0.9)

    @defer.inlineCallbacks
    def test_malformed_setting_stops_the_node(self):
        """HTTP_BODY_LIMIT=lots: the router worker stops at start-up with an error naming the setting."""
        node = RouterNode(name="badlimit", env={"HTTP_BODY_LIMIT": "lots"})
        self.addCleanup(node.cleanup)
        try:
            # Crossbar may still log the worker "configured and ready" while it goes down
            yield node.start()
        except NodeFailed:
            pass
        code = yield node.wait_exit()
        self.assertNotEqual(code, 0)
        yield node.logged("HTTP_BODY_LIMIT")


class ProxyTests(WireCase):
    """Behind a proxy worker (a production client node), the proxy refuses before it buffers or forwards."""

    @defer.inlineCallbacks
    def test_proxy_worker_refuses_a_huge_publish_at_once(self):
        """/publish declaring 2000000000 bytes to the proxy's public port gets 413 at once."""
        node = RouterNode(name="bodyproxy")
        self.addCleanup(node.cleanup)
        config = topology.client_config(port=node.port, internal_port=free_port(), proxies=1, containers=0)
        with open(os.path.join(node.directory, "config.json"), "w") as handle:
            json.dump(topology.production_defaults(config), handle)
        yield node.start()
        client = yield self.open_when_listening(node)
        client.transport.write(head(b"/publish", b"Content-Length: 2000000000"))
        # the proxy forwards a body only once it has all of it: this 413 is the proxy's own
        status, _, body = yield self.answer(client)
        self.assertEqual((status, json.loads(body)), (413, REFUSAL))


class ProxyFramingTests(unittest.SynchronousTestCase):
    """A proxy worker forwards a chunked body it has decoded with its length, not with the chunked header."""

    def forwarded(self, headers, data):
        from twisted.web import proxy
        client_class = type("ProxyClient", (proxy.ProxyClient,), {})
        self.assertTrue(bodylimit.install_proxy_framing(client_class))
        self.assertFalse(bodylimit.install_proxy_framing(client_class), "installed twice")
        client = client_class(b"POST", b"/publish", b"HTTP/1.1", headers, data, None)
        transport = StringTransport()
        client.makeConnection(transport)
        head, _, body = transport.value().partition(b"\r\n\r\n")
        return head.lower().split(b"\r\n")[1:], body

    def test_chunked_header_replaced_by_the_length(self):
        """Transfer-Encoding: chunked goes, Content-Length of the decoded body comes, the body is unchanged."""
        headers, body = self.forwarded({b"transfer-encoding": b"chunked", b"host": b"hub"}, b'{"a":1}')
        self.assertNotIn(b"transfer-encoding: chunked", headers)
        self.assertIn(b"content-length: 7", headers)
        self.assertEqual(body, b'{"a":1}')

    def test_length_framed_requests_unchanged(self):
        """A request that came with a Content-Length is forwarded as Twisted does."""
        headers, body = self.forwarded({b"content-length": b"2", b"host": b"hub"}, b"{}")
        self.assertIn(b"content-length: 2", headers)
        self.assertEqual(body, b"{}")
