"""
Malformed WAMP messages over the wire (components/node/patches/frame_depth.py):
a message nested deeper than WAMP_MAX_DEPTH, in JSON, MessagePack or CBOR,
or one that does not decode, sent right after the WebSocket upgrade, closes
that connection at once with one line in the node log, while /health keeps
answering; on a router worker and on a proxy worker facing the clients.
"""

import json
import re
import struct
import time

import treq
from twisted.internet import defer
from twisted.trial import unittest

from components.core import nesting
from tests.support.clients import connect, token
from tests.support.node import shared_node
from tests.support.polling import eventually
from tests.support.rawjoin import count, join
from tests.support.rawjoin import hello as hello_for
from tests.support.rawwebsocket import OPCODE_BINARY, frame, health_latencies, open_websocket, proxied_node

# under WAMP_PREAUTH_MAX_BYTES (16 KiB), so walked before the welcome
DEEP = b"[" * 8000 + b"]" * 8000
DEEP_BINARY = 16000
# the first attack frame: over 16 KiB before the welcome, refused unread
ATTACK = b"[" * 100000 + b"]" * 100000
# 1 MB, wide and shallow: a million empty arrays took the decoder 0.6-1.3 s each
WIDE = {b"wamp.2.msgpack": b"\xdd" + struct.pack("!I", 1000000) + b"\x90" * 1000000,
        b"wamp.2.cbor": b"\x9a" + struct.pack("!I", 1000000) + b"\x80" * 1000000,
        b"wamp.2.json": b"[" + b",".join([b"[]"] * 349000) + b"]"}
TOO_LARGE = "more than 16384 bytes before authentication"
# a 1 MB frame refused unread: the connection closes well within this (decoding it took 0.6-1.3 s)
QUICK = 0.5
REFUSED = "refused a WAMP message"
LEFT_OUT = re.compile(r"(\d+) more (?:such lines|lines like the last one) left out")
# /health must answer well within this while a refused frame is handled
HEALTH_LIMIT = 2.0
# what ends each message of a batched JSON frame
BATCH_END = b"\x18"


def hello(details):
    """A JSON HELLO for realm ``reactive`` asking for ticket authentication, with ``details`` merged in."""
    return json.dumps([1, "reactive", dict({"authmethods": ["ticket"], "roles": {"caller": {}}}, **details)]).encode()


def nested(depth):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


class RefusalChecks:
    """Send one frame on a fresh WebSocket and check the refusal: quick close, one log line, /health on time."""

    @defer.inlineCallbacks
    def assertRefusedAtOnce(self, node, payload, subprotocol=b"wamp.2.json", opcode=1, reason=None, within=5.0):
        offset = len(node.log_text())
        client = yield open_websocket(node.port, subprotocol=subprotocol)
        self.assertEqual(client.status, 101)
        sent = time.monotonic()
        client.send(payload, opcode)
        latencies = yield health_latencies(node, lambda: not client.open)
        self.assertFalse(client.open, "the connection is still open {:.1f} s after the frame".format(
            time.monotonic() - sent))
        self.assertLess(client.closed_at - sent, within)
        self.assertLess(max(latencies), HEALTH_LIMIT, latencies)
        yield eventually(lambda: REFUSED in node.log_text()[offset:], timeout=10,
                         message="no refusal line in the node log")
        text = node.log_text()[offset:]
        self.assertNotIn("Traceback", text)
        refusals = [line for line in text.splitlines() if REFUSED in line]
        self.assertEqual(len(refusals), 1, refusals)
        self.assertIn("{} bytes".format(len(payload)), refusals[0])
        self.assertIn("tcp4:127.0.0.1:", refusals[0])
        self.assertLess(len(refusals[0]), 400)
        if reason is not None:
            self.assertIn(reason, refusals[0])
        # Crossbar's own few lines for the connection (and a proxy's for each /health), no more
        self.assertLess(len(text), 20000, text[:2000])
        return refusals[0]


class RouterWorkerTests(RefusalChecks, unittest.TestCase):
    """The dev node: the router worker faces the clients."""

    timeout = 180

    @defer.inlineCallbacks
    def test_nested_json_frame(self):
        """A 16 KB ``[[[...]]]`` frame: the connection closes within 5 s, /health answers within 2 s
        meanwhile, and the log has one line naming the peer, the size and the depth, no traceback."""
        node = yield shared_node()
        yield self.assertRefusedAtOnce(node, DEEP, reason="nested deeper than 64 levels")

    @defer.inlineCallbacks
    def test_large_frames_before_authentication(self):
        """The 200 KB deep frame and 1 MB wide ones (a million empty MessagePack or CBOR arrays, 349,000
        empty JSON arrays) sent before HELLO are refused unread: closed within 0.5 s, /health on time, one
        line naming the pre-authentication size."""
        node = yield shared_node()
        yield self.assertRefusedAtOnce(node, ATTACK, reason=TOO_LARGE, within=QUICK)
        for subprotocol, payload in WIDE.items():
            opcode = 1 if subprotocol == b"wamp.2.json" else OPCODE_BINARY
            yield self.assertRefusedAtOnce(node, payload, subprotocol, opcode, reason=TOO_LARGE, within=QUICK)

    @defer.inlineCallbacks
    def test_large_frame_refused_at_its_header(self):
        """Only the header and the first 64 KB of a 1 MB frame before HELLO: the connection is closed within
        0.5 s, without waiting for the rest, with the line naming the announced size."""
        node = yield shared_node()
        offset = len(node.log_text())
        payload = WIDE[b"wamp.2.msgpack"]
        client = yield open_websocket(node.port, subprotocol=b"wamp.2.msgpack")
        self.addCleanup(client.abort)
        sent = time.monotonic()
        client.transport.write(frame(payload, OPCODE_BINARY)[:65536])
        yield eventually(lambda: not client.open, timeout=10, message="the connection waits for the whole frame")
        self.assertLess(client.closed_at - sent, QUICK)
        yield eventually(lambda: REFUSED in node.log_text()[offset:], timeout=10, message="no refusal line")
        yield node.logged("({} bytes, msgpack): {}".format(len(payload), TOO_LARGE), offset)

    @defer.inlineCallbacks
    def test_pre_authentication_size_is_the_setting(self):
        """A HELLO just over WAMP_PREAUTH_MAX_BYTES is refused; one just under it is answered (CHALLENGE)."""
        node = yield shared_node("preauth", env={"WAMP_PREAUTH_MAX_BYTES": "2048"})
        padded = hello({"x": "a" * 2000})
        self.assertGreater(len(padded), 2048)
        yield self.assertRefusedAtOnce(node, padded, reason="more than 2048 bytes before authentication")
        client = yield open_websocket(node.port)
        self.addCleanup(client.abort)
        client.send(hello({"x": "a" * 1900}))
        yield eventually(lambda: b'"ticket"' in client.received or not client.open, timeout=10,
                         message="no CHALLENGE for a HELLO within the size")
        self.assertTrue(client.open)

    @defer.inlineCallbacks
    def test_nested_msgpack_and_cbor_frames(self):
        """The same nesting in MessagePack and CBOR (arrays and CBOR tags) is refused the same way."""
        node = yield shared_node()
        for subprotocol, payload in ((b"wamp.2.msgpack", b"\x91" * DEEP_BINARY + b"\x00"),
                                     (b"wamp.2.cbor", b"\x81" * DEEP_BINARY + b"\x00"),
                                     (b"wamp.2.cbor", b"\xc6" * DEEP_BINARY + b"\x00")):
            yield self.assertRefusedAtOnce(node, payload, subprotocol, OPCODE_BINARY,
                                           reason="nested deeper than 64 levels")

    @defer.inlineCallbacks
    def test_the_bound_is_the_setting(self):
        """A HELLO whose details nest 65 levels is refused; one nesting 60 levels is answered (CHALLENGE)."""
        node = yield shared_node()
        yield self.assertRefusedAtOnce(node, hello({"x": nested(63)}), reason="nested deeper than 64 levels")
        client = yield open_websocket(node.port)
        self.addCleanup(client.abort)
        client.send(hello({"x": nested(58)}))
        yield eventually(lambda: b'"ticket"' in client.received or not client.open, timeout=10,
                         message="no CHALLENGE for a HELLO within the bound")
        self.assertTrue(client.open)

    @defer.inlineCallbacks
    def test_undecodable_frames(self):
        """Truncated JSON, MessagePack and CBOR, and a reserved MessagePack byte: one line each, no traceback."""
        node = yield shared_node()
        yield self.assertRefusedAtOnce(node, b'[1, "reactive", {"authmethods": ["ticket"')
        for subprotocol, payload in ((b"wamp.2.msgpack", b"\x93\x01\xa8reactive"), (b"wamp.2.msgpack", b"\xc1"),
                                     (b"wamp.2.cbor", b"\x83\x01\x68reactive")):
            yield self.assertRefusedAtOnce(node, payload, subprotocol, OPCODE_BINARY)

    @defer.inlineCallbacks
    def test_flood_does_not_stall_others(self):
        """60 deep frames on 60 connections from one address, 15 at a time: /health answers each time
        within 2 s, a user joins and calls meanwhile, and the log keeps to a few lines a second that still
        count every refusal."""
        node = yield shared_node("flood")
        offset = len(node.log_text())
        started = time.monotonic()
        latencies = []
        for _wave in range(4):
            clients = yield defer.gatherResults([open_websocket(node.port) for _ in range(15)])
            for client in clients:
                self.assertEqual(client.status, 101)
                client.send(DEEP)
            latencies += yield health_latencies(node, lambda: not any(client.open for client in clients))
            self.assertFalse(any(client.open for client in clients))
        user = yield connect(self, node, "flood_bystander")
        answer = yield user.session.call("time.get")
        self.assertIn("value", answer)
        self.assertLess(max(latencies), HEALTH_LIMIT, latencies)
        elapsed = time.monotonic() - started

        def counted():
            lines = node.log_text()[offset:].splitlines()
            return (sum(REFUSED in line for line in lines)
                    + sum(int(number) for number in LEFT_OUT.findall("\n".join(lines))))
        yield eventually(lambda: counted() == 60, timeout=10, message="not every refusal is counted in the log")
        text = node.log_text()[offset:]
        self.assertNotIn("Traceback", text)
        refusals = [line for line in text.splitlines() if REFUSED in line]
        # a burst of 20 lines, then 5 a second
        self.assertLessEqual(len(refusals), 20 + 5 * elapsed + 1)

    @defer.inlineCallbacks
    def test_wide_message_after_authentication(self):
        """A joined session's CALL holding 1,000 empty arrays is answered; one holding 100,001 (300 KB, over
        WAMP_MAX_CONTAINERS) closes the connection with one line naming the bound."""
        node = yield shared_node()
        client = yield open_websocket(node.port)
        self.addCleanup(client.abort)
        yield join(client, "wide_caller")
        client.send(json.dumps([48, 1, {}, "time.get", [[]] * 1000]).encode())
        yield eventually(lambda: count(client, b"[50,1,") + count(client, b"[8,48,1,") or not client.open,
                         timeout=10, message="no answer to a CALL within the bound")
        self.assertTrue(client.open)
        offset = len(node.log_text())
        client.send(json.dumps([48, 2, {}, "time.get", [[]] * 100001]).encode())
        yield eventually(lambda: not client.open, timeout=10, message="a CALL over the bound was taken")
        yield eventually(lambda: REFUSED in node.log_text()[offset:], timeout=10, message="no refusal line")
        yield node.logged("more than 100000 containers", offset)

    @defer.inlineCallbacks
    def test_batch_bound_after_authentication(self):
        """A joined session on wamp.2.json.batched: a frame of MAX_BATCH CALLs is answered; one of MAX_BATCH + 1
        closes the connection with one line naming the bound."""
        node = yield shared_node()
        client = yield open_websocket(node.port, subprotocol=b"wamp.2.json.batched")
        self.addCleanup(client.abort)
        client.send(hello_for("batcher") + BATCH_END)
        yield eventually(lambda: count(client, b'[4,"ticket"') or not client.open, timeout=10, message="no CHALLENGE")
        client.send(json.dumps([5, token("batcher"), {}]).encode() + BATCH_END)
        yield eventually(lambda: count(client, b"[2,") or not client.open, timeout=10, message="no WELCOME")
        self.assertTrue(client.open)

        def calls(first, number):
            return b"".join(json.dumps([48, request, {}, "time.get"]).encode() + BATCH_END
                            for request in range(first, first + number))
        client.send(calls(1, nesting.MAX_BATCH))
        yield eventually(lambda: count(client, b"[50,") + count(client, b"[8,48,") >= nesting.MAX_BATCH
                         or not client.open, timeout=15, message="the batch of CALLs was not answered")
        self.assertTrue(client.open)
        offset = len(node.log_text())
        client.send(calls(1000, nesting.MAX_BATCH + 1))
        yield eventually(lambda: not client.open, timeout=10, message="a batch over the bound was taken")
        yield node.logged("messages in one batch", offset)

    @defer.inlineCallbacks
    def test_wide_flood_does_not_stall_others(self):
        """Four waves of six 1 MB wide MessagePack frames from one address before HELLO: every connection
        closes and /health answers each time within 2 s (decoding them stalled it 0.8 s at the median, 4.9 s
        at worst)."""
        node = yield shared_node("flood")
        latencies = []
        for _wave in range(4):
            clients = yield defer.gatherResults([open_websocket(node.port, subprotocol=b"wamp.2.msgpack")
                                                 for _ in range(6)])
            for client in clients:
                self.assertEqual(client.status, 101)
                client.send(WIDE[b"wamp.2.msgpack"], OPCODE_BINARY)
            latencies += yield health_latencies(node, lambda: not any(client.open for client in clients))
            self.assertFalse(any(client.open for client in clients))
        self.assertLess(max(latencies), HEALTH_LIMIT, latencies)


class ProxyWorkerTests(RefusalChecks, unittest.TestCase):
    """The production client node: a proxy worker faces the clients and hands sessions to the router."""

    timeout = 240

    @defer.inlineCallbacks
    def test_nested_frame_at_the_proxy(self):
        """The attack frame sent to a proxy worker is refused there: closed at once, one line, /health
        (served through the proxy) on time; JSON and CBOR."""
        node = yield proxied_node("wire-proxied")
        line = yield self.assertRefusedAtOnce(node, DEEP, reason="nested deeper than 64 levels")
        self.assertIn("[Proxy", line)
        yield self.assertRefusedAtOnce(node, WIDE[b"wamp.2.msgpack"], b"wamp.2.msgpack", OPCODE_BINARY,
                                       reason=TOO_LARGE, within=QUICK)
        yield self.assertRefusedAtOnce(node, b"\x81" * DEEP_BINARY + b"\x00", b"wamp.2.cbor", OPCODE_BINARY,
                                       reason="nested deeper than 64 levels")
        response = yield treq.get(node.http + "/health", persistent=False, timeout=5)
        self.assertEqual(response.code, 200)
        yield response.content()
