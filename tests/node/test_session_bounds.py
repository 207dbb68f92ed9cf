"""
Per-session bounds, over the wire against a real router
(components.node.patches.session_bounds, authcache_bound, send_bound):
subscriptions and registrations past the session's bound are refused while
the earlier ones keep working; over-long URIs are refused for SUBSCRIBE,
PUBLISH, CALL and REGISTER; a session that never reads while big answers
queue up is closed once its unsent bytes pass the bound, and the router
worker's memory stays bounded meanwhile; what a closed session made the
router keep (its authorizations) is released. The node runs with small
bounds from its environment.
"""

import os

from autobahn.twisted.wamp import ApplicationSession
from autobahn.twisted.websocket import WampWebSocketClientFactory
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import ComponentConfig, PublishOptions
from twisted.internet import defer, task
from twisted.internet.endpoints import clientFromString
from twisted.trial import unittest

from components.client.hub_client import HubClient
from components.core import errors
from components.node.patches import authcache_bound, send_bound, session_bounds
from tests.support.clients import connect, token
from tests.support.node import router_worker, shared_node
from tests.support.polling import eventually

SUBSCRIPTIONS = 20
REGISTRATIONS = 20
URI_LENGTH = session_bounds.SessionBounds().uri_length
SEND_QUEUE = 1024 * 1024
CACHE = 1000
BOUNDS_ENV = {"SESSION_MAX_SUBSCRIPTIONS": str(SUBSCRIPTIONS), "SESSION_MAX_REGISTRATIONS": str(REGISTRATIONS),
              "SESSION_SEND_QUEUE_LIMIT": str(SEND_QUEUE), "AUTHORIZATION_CACHE_SIZE": str(CACHE)}
# a backend session of the test's own: anonymous, role backend, on a path of its own
BACKEND_PATH = {"type": "websocket", "serializers": ["json", "msgpack"],
                "auth": {"anonymous": {"type": "static", "role": "backend"}}}
INVALID_URI = session_bounds.INVALID_URI
CLIENT_OPTIONS = {"openHandshakeTimeout": 0, "closeHandshakeTimeout": 0, "maxMessagePayloadSize": 0}
BIG_ANSWER = 256 * 1024
BIG_CALLS = 200  # 50 MB of answers: far more than the kernel's socket buffers on loopback hold
SEND_BOUND_LINE = "send queue bound:"


def with_backend_path(config):
    for transport in router_worker(config)["transports"]:
        if "paths" in transport:
            transport["paths"]["bounds-backend"] = dict(BACKEND_PATH)
    return config


def router_pid(node):
    """The pid of the node's router worker: the child of its controller started for the router."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/{}/stat".format(name)) as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/{}/cmdline".format(name), "rb") as handle:
                command = handle.read()
        except (OSError, ValueError, IndexError):
            continue
        if parent == node.process.pid and (b"crossbar.worker.router" in command or b" router" in command[:80]):
            return int(name)
    raise AssertionError("no router worker under the node's controller {}".format(node.process.pid))


def rss_bytes(pid):
    """Resident set size of process ``pid`` (VmRSS)."""
    with open("/proc/{}/status".format(pid)) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for {}".format(pid))


def long_uri(prefix, length):
    return prefix + "x" * (length - len(prefix))


class _Backend(ApplicationSession):
    """A session joining anonymously; ``joined`` fires on join, ``disconnected`` when its connection is gone."""

    def __init__(self):
        ApplicationSession.__init__(self, ComponentConfig(realm="reactive"))
        self.joined = defer.Deferred()
        self.disconnected = defer.Deferred()

    def onConnect(self):
        self.join("reactive", authmethods=["anonymous"])

    def onJoin(self, details):
        self.joined.callback(self)

    def onDisconnect(self):
        if not self.disconnected.called:
            self.disconnected.callback(None)

    def leave_now(self):
        if self._transport is not None:
            self._transport.transport.loseConnection()
            return self.disconnected
        return None


class SessionBoundsTests(unittest.TestCase):

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("session-bounds", env=BOUNDS_ENV, transform=with_backend_path)
        self.pid = router_pid(self.node)

    @defer.inlineCallbacks
    def backend(self):
        """An anonymous session with role backend, joined on the test's own path; left at cleanup."""
        from twisted.internet import reactor
        session = _Backend()
        factory = WampWebSocketClientFactory(lambda: session, url=self.node.url.replace("/ws", "/bounds-backend"))
        factory.setProtocolOptions(**CLIENT_OPTIONS)
        yield clientFromString(reactor, "tcp:127.0.0.1:{}".format(self.node.port)).connect(factory)
        yield session.joined
        self.addCleanup(session.leave_now)
        return session

    @defer.inlineCallbacks
    def assertRefused(self, d, uri):
        try:
            yield d
        except ApplicationError as error:
            self.assertEqual(error.error, uri, error)
        else:
            self.fail("not refused (expected {})".format(uri))

    @defer.inlineCallbacks
    def test_subscriptions_past_the_bound_are_refused(self):
        user = (yield connect(self, self.node, sub="bounded-subscriber", protocol_options=CLIENT_OPTIONS)).session
        backend = yield self.backend()
        received = []
        subscriptions = yield defer.gatherResults([
            user.subscribe(lambda state, i=i: received.append((i, state)), "counter.changed.bound{}".format(i))
            for i in range(SUBSCRIPTIONS)])
        yield self.assertRefused(user.subscribe(lambda *a: None, "counter.changed.one-too-many"),
                                 errors.SESSION_LIMIT)
        # subscribing again to a topic held already adds nothing and is not refused
        again = yield user.subscribe(lambda *a: None, "counter.changed.bound3")
        self.assertEqual(again.id, subscriptions[3].id)
        # the earlier subscriptions still deliver
        yield backend.publish("counter.changed.bound5", {"value": 5}, options=PublishOptions(acknowledge=True))
        yield eventually(lambda: received, message="no event on an earlier subscription")
        self.assertEqual(received, [(5, {"value": 5})])
        # an unsubscription frees a place at once
        yield subscriptions[0].unsubscribe()
        yield user.subscribe(lambda *a: None, "counter.changed.after-unsubscribe")

    @defer.inlineCallbacks
    def test_registrations_past_the_bound_are_refused(self):
        backend = yield self.backend()
        yield defer.gatherResults([backend.register(lambda i=i: i, "iot.boundtest.proc{}".format(i))
                                   for i in range(REGISTRATIONS)])
        yield self.assertRefused(backend.register(lambda: None, "iot.boundtest.one-too-many"), errors.SESSION_LIMIT)
        caller = yield self.backend()
        answer = yield caller.call("iot.boundtest.proc7")
        self.assertEqual(answer, 7)

    @defer.inlineCallbacks
    def test_over_long_uris_are_refused(self):
        user = (yield connect(self, self.node, sub="long-uris", protocol_options=CLIENT_OPTIONS)).session
        backend = yield self.backend()
        # the longest URI the bound allows still works
        yield user.subscribe(lambda *a: None, long_uri("counter.changed.", URI_LENGTH))
        yield self.assertRefused(user.subscribe(lambda *a: None, long_uri("counter.changed.", URI_LENGTH + 1)),
                                 INVALID_URI)
        yield self.assertRefused(backend.publish(long_uri("iot.boundtest.", URI_LENGTH + 1), 1,
                                                 options=PublishOptions(acknowledge=True)), INVALID_URI)
        yield self.assertRefused(backend.register(lambda: None, long_uri("iot.boundtest.", URI_LENGTH + 1)),
                                 INVALID_URI)
        yield self.assertRefused(backend.call(long_uri("iot.boundtest.", 8000)), INVALID_URI)
        yield self.assertRefused(user.call(long_uri("counter.get.", 8000)), INVALID_URI)

    @defer.inlineCallbacks
    def test_a_session_that_does_not_read_is_closed_at_the_send_bound(self):
        from twisted.internet import reactor
        callee = yield self.backend()
        yield callee.register(lambda: "x" * BIG_ANSWER, "iot.boundtest.big")
        reader = yield self.backend()
        before = rss_bytes(self.pid)
        peak = [before]
        sampler = task.LoopingCall(lambda: peak.append(rss_bytes(self.pid)))
        sampler.clock = reactor
        sampler.start(0.02)
        self.addCleanup(lambda: sampler.running and sampler.stop())
        transport = reader._transport.transport
        transport.pauseProducing()  # this client reads nothing from now on
        calls = [reader.call("iot.boundtest.big") for _ in range(BIG_CALLS)]
        for d in calls:
            d.addErrback(lambda failure: None)
        offset = len(self.node.log_text())
        yield eventually(lambda: SEND_BOUND_LINE in self.node.log_text()[offset:], timeout=60,
                         message="the router did not close the connection at its send bound")
        sampler.stop()
        transport.resumeProducing()
        yield eventually(lambda: reader.disconnected.called, timeout=20, message="the connection stayed open")
        lines = [line for line in self.node.log_text()[offset:].splitlines() if SEND_BOUND_LINE in line]
        self.assertEqual(len(lines), 1, lines)
        grown = max(peak) - before
        # without the bound the router keeps (nearly) all 50 MB for the session: its peak grows past 35 MB
        self.assertLess(grown, 20 * 1024 * 1024, "router worker grew by {} bytes".format(grown))

    @defer.inlineCallbacks
    def test_what_a_closed_session_made_the_router_keep_is_released(self):
        # every distinct URI a session names (here: calls it may not make) was kept in the router's
        # authorization cache for the worker's life; now at most AUTHORIZATION_CACHE_SIZE entries
        def one_session(round_number):
            return self.call_distinct_uris(round_number, 12000, URI_LENGTH - 20)

        yield one_session(0)
        after_first = yield self.settled_rss()
        yield one_session(1)
        after_second = yield self.settled_rss()
        grown = after_second - after_first
        # a second session like the first reuses what the first one's left free (glibc keeps freed heap
        # memory for reuse: docs/wire.md, "Session bounds"); unbounded, each such session keeps ~10 MB more
        self.assertLess(grown, 3 * 1024 * 1024, "the second session left {} more bytes".format(grown))

    @defer.inlineCallbacks
    def call_distinct_uris(self, round_number, count, length):
        ticket = token("distinct-{}".format(round_number))
        client = HubClient(self.node.url, lambda: ticket, reconnect=False, protocol_options=CLIENT_OPTIONS)
        session = yield client.connect()
        for start in range(0, count, 500):
            calls = [session.call(long_uri("counter.get.r{}.{}.".format(round_number, index), length))
                     for index in range(start, min(count, start + 500))]
            results = yield defer.DeferredList(calls, consumeErrors=True)
            self.assertTrue(all(not ok and failure.value.error == ApplicationError.NOT_AUTHORIZED
                                for ok, failure in results))
        yield client.close()

    @defer.inlineCallbacks
    def settled_rss(self):
        """The router worker's RSS once two readings 0.2 s apart agree within 256 KiB (else the last after 10 s)."""
        readings = []

        def settled():
            readings.append(rss_bytes(self.pid))
            return len(readings) > 1 and abs(readings[-1] - readings[-2]) < 256 * 1024
        try:
            yield eventually(settled, timeout=10, interval=0.2)
        except AssertionError:
            pass  # still moving: the callers' bounds judge the newest reading
        return readings[-1]


class InstallTests(unittest.SynchronousTestCase):
    """install() on Crossbar's own classes: once, then nothing; the cache bound empties a full cache."""

    def test_bounded_cache_empties_when_full(self):
        cache = authcache_bound.BoundedCache(3)
        for key in "abc":
            cache[key] = key
        cache["a"] = "again"
        self.assertEqual(len(cache), 3)
        cache["d"] = "d"
        self.assertEqual(dict(cache), {"d": "d"})

    def test_session_bounds_install_once(self):
        from crossbar.router.broker import Broker
        from crossbar.router.dealer import Dealer

        broker = type("Broker", (Broker,), {})
        dealer = type("Dealer", (Dealer,), {})
        bounds = session_bounds.SessionBounds()
        self.assertTrue(session_bounds.install(bounds, broker, dealer))
        self.assertFalse(session_bounds.install(bounds, broker, dealer))

    def test_bounded_cache_replaces_running_routers_caches(self):
        class Router:
            def __init__(self):
                self._authorization_cache = {"kept": 1}

        running = Router()
        self.assertTrue(authcache_bound.install(limit=100, router_class=Router))
        self.assertFalse(authcache_bound.install(limit=100, router_class=Router))
        for router in (running, Router()):
            self.assertIsInstance(router._authorization_cache, authcache_bound.BoundedCache)
            self.assertEqual(router._authorization_cache.limit, 100)
        self.assertEqual(dict(running._authorization_cache), {"kept": 1})


class _Buffered:
    """What the send bound reads of a Twisted TCP transport."""

    def __init__(self, producer=None):
        self.dataBuffer, self.offset, self._tempDataBuffer, self._tempDataLen = b"", 0, [], 0
        self.producer, self.streamingProducer, self.disconnecting, self.aborted = producer, True, False, 0

    def queue(self, size):
        self._tempDataBuffer.append(b"x" * size)
        self._tempDataLen += size

    def registerProducer(self, producer, streaming):
        self.producer, self.streamingProducer = producer, streaming

    def unregisterProducer(self):
        self.producer = None

    def abortConnection(self):
        self.aborted += 1


class _Producer:
    def __init__(self):
        self.calls = []

    def pauseProducing(self):
        self.calls.append("pause")

    def resumeProducing(self):
        self.calls.append("resume")

    def stopProducing(self):
        self.calls.append("stop")


class _Protocol:
    peer = "tcp4:127.0.0.1:1"
    _session = None

    def __init__(self, transport):
        self.transport = transport


class SendQueueBoundTests(unittest.SynchronousTestCase):
    """The producer in front of the transport: passes calls on, aborts once past the bound, frees the queue."""

    def test_in_front_of_the_producer_the_transport_had(self):
        channel = _Producer()
        transport = _Buffered(channel)
        self.assertTrue(send_bound.watch(_Protocol(transport), transport, 1000))
        bound = transport.producer
        self.assertIsInstance(bound, send_bound.SendQueueBound)
        transport.queue(900)
        bound.pauseProducing()
        bound.resumeProducing()
        self.assertEqual((channel.calls, transport.aborted), (["pause", "resume"], 0))
        transport.queue(200)
        bound.pauseProducing()
        bound.pauseProducing()
        self.assertEqual(transport.aborted, 1)
        self.assertEqual((transport._tempDataLen, transport._tempDataBuffer), (0, []))
        bound.stopProducing()
        self.assertEqual(channel.calls, ["pause", "resume", "pause", "stop"])

    def test_registered_when_there_is_none_and_released_when_closing(self):
        transport = _Buffered()
        self.assertTrue(send_bound.watch(_Protocol(transport), transport, 1000))
        transport.disconnecting = True
        transport.producer.resumeProducing()
        self.assertIsNone(transport.producer)

    def test_router_links_are_not_bounded(self):
        transport = _Buffered()
        protocol = _Protocol(transport)
        protocol._session = type("Session", (), {"_authrole": "rlink"})()
        send_bound.watch(protocol, transport, 1000)
        transport.queue(5000)
        transport.producer.pauseProducing()
        self.assertEqual(transport.aborted, 0)
