"""
The json_decode patch: WAMP JSON without a ``\\u0000`` escape is decoded by
the C scanner with exactly autobahn's result; anything else by autobahn.
"""

import json
import random

import txaio
from twisted.trial import unittest

txaio.use_twisted()  # before autobahn's serializer module binds txaio's clock

from autobahn.wamp.serializer import JsonObjectSerializer, JsonSerializer  # noqa: E402

from components.node.patches import json_decode


# autobahn's own decoding, also when a worker of this test process installed the patch already
AUTOBAHN_UNSERIALIZE = getattr(JsonObjectSerializer.unserialize, "__wrapped__", JsonObjectSerializer.unserialize)


class Autobahn(JsonObjectSerializer):
    """autobahn's serializer as it ships, whether or not the patch is installed in this process."""

    unserialize = AUTOBAHN_UNSERIALIZE


def patched_class():
    """A fresh subclass of autobahn's serializer with the patch installed on it (autobahn's own untouched)."""
    class Patched(JsonObjectSerializer):
        unserialize = AUTOBAHN_UNSERIALIZE
    json_decode.install(Patched)
    return Patched


def random_value(rng, depth=0):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.randint(-10 ** 20, 10 ** 20)
    if kind == 1:
        return rng.uniform(-1e9, 1e9)
    if kind == 2:
        return "".join(rng.choice("ab\"\\\n\té€😀/\x01 0") for _ in range(rng.randrange(12)))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.randbytes(rng.randrange(6))  # autobahn's binary strings
    if kind == 5:
        return ""
    if kind in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {"k{}".format(index): random_value(rng, depth + 1) for index in range(rng.randrange(5))}


class JsonDecodeTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.fast, self.autobahn = patched_class()(), Autobahn()

    def assertSameDecoding(self, payload, batched=False):
        fast = patched_class()(batched=batched)
        slow = Autobahn(batched=batched)
        self.assertEqual(fast.unserialize(payload), slow.unserialize(payload), payload[:200])

    def test_random_messages_decode_alike(self):
        rng = random.Random(20261207)
        for _ in range(400):
            message = [rng.randrange(1, 70), rng.randrange(10 ** 6), {}, "app.shop.x", random_value(rng, 2)]
            self.assertSameDecoding(self.autobahn.serialize(message))

    def test_binary_strings_go_to_autobahn(self):
        payload = self.autobahn.serialize([16, 1, {}, "app.x.y", [b"\x00\x01bytes"], {"raw": b"\xff"}])
        self.assertIn(json_decode.BINARY_ESCAPE, payload)
        self.assertEqual(self.fast.unserialize(payload), [[16, 1, {}, "app.x.y", [b"\x00\x01bytes"],
                                                           {"raw": b"\xff"}]])

    def test_batched(self):
        batched = Autobahn(batched=True)
        payload = b"".join(batched.serialize([48, index, {}, "time.get", ["é"]]) for index in range(3))
        self.assertSameDecoding(payload, batched=True)
        self.assertRaises(Exception, patched_class()(batched=True).unserialize, b"[1]")

    def test_malformed_payloads_fail_alike(self):
        for payload in (b"[1,", b"\xff\xfe", b'["\x01"]', b"", b"[1] [2]", b"{\"a\":}"):
            with self.assertRaises(ValueError, msg=payload):
                self.fast.unserialize(payload)
            with self.assertRaises(ValueError, msg=payload):
                self.autobahn.unserialize(payload)

    def test_options_keep_autobahn_s_decoder(self):
        cls = patched_class()
        hexed = cls(use_binary_hex_encoding=True)
        self.assertEqual(hexed.unserialize(b'["0x00ff"]'), [[b"\x00\xff"]])

    def test_wamp_messages_through_the_wamp_serializer(self):
        serializer = JsonSerializer()
        serializer._serializer = self.fast
        (message,) = serializer.unserialize(json.dumps([48, 7, {}, "time.get", [1, "x"], {"k": 2}]).encode())
        self.assertEqual((message.request, message.procedure, message.args, message.kwargs),
                         (7, "time.get", [1, "x"], {"k": 2}))

    def test_unicode_digits_are_not_json(self):
        """The one difference: autobahn's Python scanner read non-ASCII digits in numbers, JSON does not."""
        payload = "[1\u0661]".encode("utf-8")
        self.assertEqual(self.autobahn.unserialize(payload), [[11]])
        self.assertRaises(ValueError, self.fast.unserialize, payload)

    def test_install_on_autobahn_is_idempotent_and_keeps_autobahn_s_own(self):
        original = JsonObjectSerializer.unserialize
        self.addCleanup(setattr, JsonObjectSerializer, "unserialize", original)
        json_decode.install()
        self.assertTrue(getattr(JsonObjectSerializer.unserialize, json_decode.PATCHED, False))
        self.assertFalse(json_decode.install())
        self.assertIs(JsonObjectSerializer.unserialize.__wrapped__, AUTOBAHN_UNSERIALIZE)
