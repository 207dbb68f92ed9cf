"""
A raw WebSocket client for tests that speak to a real node below WAMP: it
performs the HTTP upgrade, sends frames exactly as given (a deeply nested
message, a HELLO, nothing at all) and reports when the server closes the
connection. No autobahn on the client side, so no client library refuses or
reshapes what the test means to send.
"""

import base64
import os
import struct
import time

from twisted.internet import defer, protocol, reactor

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8


def frame(payload, opcode=OPCODE_TEXT):
    """One final, masked client frame carrying ``payload``."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload)) if size < 4096 else _mask(
        payload, mask)
    return head + mask + masked


def _mask(payload, mask):
    """XOR ``payload`` with the repeated 4-byte ``mask`` (fast for large payloads)."""
    repeated = (mask * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


class RawWebSocket(protocol.Protocol):
    """
    The client side of one WebSocket connection. ``upgraded`` fires with the
    HTTP status of the upgrade answer (101 when accepted); ``closed`` fires
    with the monotonic time the connection ended; ``received`` keeps every
    byte after the upgrade answer.
    """

    def __init__(self, path=b"/ws", subprotocol=b"wamp.2.json", headers=b"", host_header=b"127.0.0.1"):
        self.path, self.host_header = path, host_header
        self.subprotocol = subprotocol
        self.headers = headers
        self.upgraded = defer.Deferred()
        self.closed = defer.Deferred()
        self.status = None
        self.answer = b""
        self.received = b""
        self.closed_at = None

    def connectionMade(self):
        key = base64.b64encode(os.urandom(16))
        self.transport.write(
            b"GET " + self.path + b" HTTP/1.1\r\nHost: " + self.host_header +
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Protocol: " + self.subprotocol + b"\r\n" + self.headers + b"\r\n")

    def dataReceived(self, data):
        if self.status is not None:
            self.received += data
            return
        self.answer += data
        head, separator, rest = self.answer.partition(b"\r\n\r\n")
        if not separator:
            return
        self.status = int(head.split(b" ", 2)[1])
        self.received = rest
        self.upgraded.callback(self.status)

    def send(self, payload, opcode=OPCODE_TEXT):
        """Send ``payload`` as one frame."""
        self.transport.write(frame(payload, opcode))

    def abort(self):
        if self.closed_at is None:
            self.transport.abortConnection()

    def connectionLost(self, reason):
        self.closed_at = time.monotonic()
        if not self.upgraded.called:
            self.upgraded.callback(self.status)
        self.closed.callback(self.closed_at)

    @property
    def open(self):
        return self.closed_at is None


@defer.inlineCallbacks
def open_websocket(port, host="127.0.0.1", **options):
    """Connect to ``host:port`` and upgrade; fire with the :class:`RawWebSocket` once the answer's head is read."""
    client = yield protocol.ClientCreator(reactor, RawWebSocket, **options).connectTCP(host, port, timeout=10)
    yield client.upgraded
    return client


@defer.inlineCallbacks
def health_latencies(node, done, minimum=3, timeout=15.0):
    """
    GET ``node``'s /health one request after another until ``done()`` is true
    and at least ``minimum`` answers arrived (or ``timeout`` seconds passed);
    fire with the seconds each took (a request taking over 5 s fails).
    """
    import treq
    latencies = []
    deadline = time.monotonic() + timeout
    while (not done() or len(latencies) < minimum) and time.monotonic() < deadline:
        started = time.monotonic()
        response = yield treq.get(node.http + "/health", persistent=False, timeout=5)
        yield response.content()
        latencies.append(time.monotonic() - started)
    return latencies


def proxied_node(name, env=None):
    """
    A started node with the production client topology (one proxy worker
    facing clients on ``node.port``, the router behind it, no containers),
    once its proxy answers /health; shared per test process and ``name``
    (tests.support.node.shared_node).
    """
    import json

    from components.node import topology
    from tests.support.clients import status_of
    from tests.support.node import RouterNode, free_port, shared_node
    from tests.support.polling import eventually

    def build():
        node = RouterNode(name=name, env=env)
        config = topology.client_config(port=node.port, internal_port=free_port(), proxies=1, containers=0)
        with open(os.path.join(node.directory, "config.json"), "w") as handle:
            json.dump(config, handle, indent=2)
        return node

    @defer.inlineCallbacks
    def start(node):
        yield node.start(timeout=90)
        try:
            yield eventually(lambda: status_of(node.http + "/health"), check=lambda code: code == 200,
                             timeout=60, interval=0.1)
        except AssertionError:
            raise AssertionError("the proxy worker never answered /health:\n" + node.log_tail())
    return shared_node("proxied-" + name, build=build, start=start)
