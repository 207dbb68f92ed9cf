"""
Unit tests of components.core.nesting: the depth of JSON, MessagePack and
CBOR messages found by a linear walk of their bytes, never by decoding.
"""

import json
import random
import struct
import time

import cbor2
import msgpack
from twisted.trial import unittest

from components.core import nesting
from components.core.nesting import NestingError, check, check_cbor, check_json, check_msgpack


# a bound that a linear scan meets on a loaded shared machine and a quadratic one misses by far (100,000
# brackets walked pairwise are minutes); the speeds themselves are benchmark material
QUICK = 2.0


def nested(depth, leaf=1, kind=list):
    """``depth`` containers one inside the other (lists, or dicts keyed "k") around ``leaf``."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind is list else {"k": value}
    return value


def depth_of(value):
    """The container depth of a decoded value (iteratively, to check the scanners against)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            level += 1
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level) for child in children)
    return deepest


def random_value(rng, budget):
    """A random JSON-like value of at most ``budget`` nodes, with strings full of brackets and escapes."""
    choice = rng.random()
    if budget <= 1 or choice < 0.3:
        return rng.choice([0, -7, 2 ** 40, 1.5, True, None, "", "[{", "]]}}", '\\"[', 'a"b', "\\", "é[ü]",
                           "\u2028{", "\x00[", "x" * rng.randint(0, 300)])
    size = rng.randint(0, 4)
    if choice < 0.65:
        return [random_value(rng, budget // (size + 1)) for _ in range(size)]
    return {"k{}[{}".format(index, '"' * index): random_value(rng, budget // (size + 1)) for index in range(size)}


ENCODERS = {
    "json": lambda value: json.dumps(value).encode("utf-8"),
    "msgpack": lambda value: msgpack.packb(value, use_bin_type=True),
    "cbor": cbor2.dumps,
}
SCANNERS = {"json": check_json, "msgpack": check_msgpack, "cbor": check_cbor}


class AgreementTests(unittest.SynchronousTestCase):
    """Each scanner's verdict agrees with the depth of the decoded value, for every serializer."""

    def assertVerdict(self, name, value, limit):
        payload = ENCODERS[name](value)
        if depth_of(value) > limit:
            self.assertRaises(NestingError, SCANNERS[name], payload, limit)
        else:
            self.assertIsNone(SCANNERS[name](payload, limit), (name, value))

    def test_random_values(self):
        """Random values with bracket- and quote-laden strings: refused exactly when deeper than the limit."""
        rng = random.Random(19)
        for _ in range(400):
            value = random_value(rng, rng.randint(1, 200))
            for limit in (0, 1, 2, 3, 5):
                for name in SCANNERS:
                    self.assertVerdict(name, value, limit)

    def test_exact_limit(self):
        """A message exactly ``limit`` deep passes; one level more is refused; lists and maps alike."""
        for name in SCANNERS:
            for kind in (list, dict):
                self.assertVerdict(name, nested(64, kind=kind), 64)
                self.assertVerdict(name, nested(65, kind=kind), 64)
                self.assertVerdict(name, [nested(3, kind=kind)] * 100, 4)
                self.assertVerdict(name, [nested(4, kind=kind)] * 100, 4)

    def test_wide_messages_pass(self):
        """Many containers side by side (more openings than the limit, shallow) pass."""
        value = [[index, {"a": [index]}] for index in range(5000)]
        for name, encode in ENCODERS.items():
            self.assertIsNone(SCANNERS[name](encode(value), 4))


class JsonTests(unittest.SynchronousTestCase):
    """The JSON walk skips strings whatever they hold and stops at the first level past the limit."""

    def test_brackets_inside_strings_do_not_count(self):
        """Brackets in strings, after escaped quotes and escaped backslashes, are text, not nesting."""
        self.assertIsNone(check_json(b'["' + b"[" * 1000 + b'"]', 2))
        self.assertIsNone(check_json(b'["\\"' + b"[" * 1000 + b'", "{{{{"]', 2))
        self.assertIsNone(check_json(b'["\\\\", "' + b"{" * 1000 + b'"]', 2))
        self.assertIsNone(check_json(b'{"a\\u005b\\"[[[[": "]]]]\\\\\\"[["}', 1))

    def test_escaped_quote_does_not_end_a_string(self):
        """After an escaped quote the string goes on: the brackets behind it are still text."""
        self.assertIsNone(check_json(b'["\\"]' + b"[" * 100 + b'"]', 1))

    def test_brackets_after_an_escaped_backslash_count(self):
        """``"\\\\"`` ends at its second quote: the brackets after it are nesting again."""
        self.assertRaises(NestingError, check_json, b'["\\\\", ' + b"[" * 10 + b"]" * 10 + b"]", 5)

    def test_the_attack_frame(self):
        """100,000 opening and closing brackets are refused at the 65th, in one linear pass."""
        payload = b"[" * 100000 + b"]" * 100000
        started = time.monotonic()
        with self.assertRaises(NestingError) as caught:
            check_json(payload, 64)
        self.assertLess(time.monotonic() - started, QUICK)
        self.assertEqual(str(caught.exception), "nested deeper than 64 levels")

    def test_unterminated_string(self):
        """A string that never ends (even one made of escaped quotes) is refused, in linear time."""
        self.assertRaises(NestingError, check_json, b'[' * 100 + b'"abc', 64)
        payload = b"[" * 100 + b'"' + b'\\"' * 300000
        started = time.monotonic()
        self.assertRaises(NestingError, check_json, payload, 64)
        self.assertLess(time.monotonic() - started, QUICK)

    def test_more_closing_than_opening(self):
        """More closing than opening brackets (before the limit is checked) is refused."""
        self.assertRaises(NestingError, check_json, b"]" * 70 + b"[" * 70, 64)


class BinaryTests(unittest.SynchronousTestCase):
    """The MessagePack and CBOR walks read item headers only and refuse what cannot be walked."""

    def test_deep_msgpack_and_cbor(self):
        """The attack frame's MessagePack and CBOR forms are refused at once."""
        for name, payload in (("msgpack", b"\x91" * 100000 + b"\x00"), ("cbor", b"\x81" * 100000 + b"\x00"),
                              ("cbor", b"\xc6" * 100000 + b"\x00"), ("cbor", b"\x9f" * 100000),
                              ("msgpack", b"\xdc\x00\x01" * 50000 + b"\x00"),
                              ("msgpack", b"\x81\xa1k" * 50000 + b"\x00")):
            started = time.monotonic()
            with self.assertRaises(NestingError) as caught:
                SCANNERS[name](payload, 64)
            self.assertEqual(str(caught.exception), "nested deeper than 64 levels", name)
            self.assertLess(time.monotonic() - started, QUICK)

    def test_container_bytes_inside_strings_do_not_count(self):
        """Strings and binaries full of container header bytes are skipped by their length."""
        blob = bytes(range(256)) * 50
        for name, encode in ENCODERS.items():
            if name == "json":
                continue
            self.assertIsNone(SCANNERS[name](encode([blob, blob.decode("latin-1"), [[blob]]]), 3))

    def test_truncated_and_invalid(self):
        """A message that ends inside an item, a claimed length past the end, and reserved bytes are refused."""
        # an array of 101 items, 100 of them empty arrays (more container bytes than the limit: walked), then
        # the 101st: missing, or broken
        msgpack_wide, cbor_wide = b"\xdc\x00\x65" + b"\x90" * 100, b"\x98\x65" + b"\x80" * 100
        for name, payload in (("msgpack", msgpack_wide), ("msgpack", msgpack_wide + b"\xdb\xff\xff\xff\xff"),
                              ("msgpack", msgpack_wide + b"\xc1"), ("msgpack", msgpack_wide + b"\xcd\x01"),
                              ("cbor", cbor_wide), ("cbor", cbor_wide + b"\x7a\xff\xff\xff\xff"),
                              ("cbor", cbor_wide + b"\x1c"), ("cbor", cbor_wide + b"\xff"),
                              ("cbor", cbor_wide + b"\x19\x01")):
            self.assertRaises(NestingError, SCANNERS[name], payload, 64)
        self.assertIsNone(check_msgpack(msgpack_wide + b"\x00", 64))
        self.assertIsNone(check_cbor(cbor_wide + b"\x00", 64))

    def test_indefinite_lengths(self):
        """CBOR indefinite arrays, maps and strings end at their break byte."""
        payload = b"\x9f" + b"\x9f\x01\xff" * 100 + b"\xbf\x61k\x5f\x41\x00\xff\xff" + b"\xff"
        self.assertEqual(cbor2.loads(payload)[0], [1])
        self.assertIsNone(check_cbor(payload, 3))
        self.assertRaises(NestingError, check_cbor, payload, 2)


class ContainerCountTests(unittest.SynchronousTestCase):
    """``containers`` bounds how many arrays and maps a message may hold, however shallow; cheaply."""

    def test_bound_is_exact(self):
        """As many containers as the bound pass, one more is refused; strings full of brackets do not count."""
        for name, encode in ENCODERS.items():
            at_bound = encode([[] for _ in range(99)] + ["[{" * 500])
            self.assertIsNone(SCANNERS[name](at_bound, 64, containers=100))
            with self.assertRaises(nesting.TooManyContainers) as caught:
                SCANNERS[name](encode([[] for _ in range(100)]), 64, containers=100)
            self.assertEqual(str(caught.exception), "more than 100 containers")
            self.assertRaises(nesting.TooManyContainers, check, name, encode([{} for _ in range(100)]), 64,
                              containers=100)

    def test_wide_megabyte_frames_are_refused_quickly(self):
        """The attack frames (1 MB of empty arrays) are refused by one linear pass (decoding them took 0.6-1.3 s);
        a 1 MB frame that is one string passes just as quickly."""
        count = 1000000
        frames = (("json", b"[" + b",".join([b"[]"] * 349000) + b"]"),
                  ("msgpack", b"\xdd" + struct.pack("!I", count) + b"\x90" * count),
                  ("cbor", b"\x9a" + struct.pack("!I", count) + b"\x80" * count))
        for name, payload in frames:
            started = time.monotonic()
            self.assertRaises(nesting.TooManyContainers, check, name, payload, 64, containers=100000)
            self.assertLess(time.monotonic() - started, QUICK, name)
        started = time.monotonic()
        self.assertIsNone(check("json", b'["' + b"[" * 1000000 + b'"]', 64, containers=100000))
        self.assertLess(time.monotonic() - started, QUICK)

    def test_a_container_announcing_more_items_than_bytes_is_truncated(self):
        """A MessagePack or CBOR header announcing more items than bytes remain is refused at once."""
        for name, payload in (("msgpack", b"\xdd" + struct.pack("!I", 10 ** 9) + b"\x90" * 100),
                              ("cbor", b"\x9a" + struct.pack("!I", 10 ** 9) + b"\x80" * 100)):
            with self.assertRaises(NestingError) as caught:
                check(name, payload, 64, containers=1000)
            self.assertEqual(str(caught.exception), "the message ends inside an item")


class CheckTests(unittest.SynchronousTestCase):
    """``check`` picks the walk by serializer name and splits batched binary payloads."""

    def test_serializers(self):
        self.assertEqual(nesting.SERIALIZERS, ("cbor", "json", "msgpack"))
        for name, encode in ENCODERS.items():
            self.assertIsNone(check(name, encode(nested(10)), 10))
            self.assertRaises(NestingError, check, name, encode(nested(11)), 10)

    def test_unknown_serializer_is_refused(self):
        """A serializer without a walk (ubjson, flatbuffers) is refused rather than passed unchecked."""
        self.assertRaises(NestingError, check, "ubjson", b"[]", 64)

    def test_batched(self):
        """Batched MessagePack and CBOR are walked message by message; a broken length prefix is refused."""
        for name in ("msgpack", "cbor"):
            messages = [ENCODERS[name](nested(3)), ENCODERS[name](nested(70))]
            batch = b"".join(struct.pack("!L", len(message)) + message for message in messages)
            self.assertIsNone(check(name, batch[:len(messages[0]) + 4], 64, batched=True))
            self.assertRaises(NestingError, check, name, batch, 64, batched=True)
            self.assertRaises(NestingError, check, name, batch[:-1], 64, batched=True)
            self.assertRaises(NestingError, check, name, b"\x00\x00", 64, batched=True)
        batch = json.dumps(nested(3)).encode() + b"\x18" + json.dumps(nested(70)).encode() + b"\x18"
        self.assertRaises(NestingError, check, "json", batch, 64, batched=True)

    def test_batch_size_is_bounded(self):
        """At most MAX_BATCH messages in one batched frame, for every serializer."""
        call = [48, 1, {}, "nope.x"]
        for name, encode in ENCODERS.items():
            for count, refused in ((nesting.MAX_BATCH, False), (nesting.MAX_BATCH + 1, True)):
                if name == "json":
                    batch = b"".join(json.dumps(call).encode() + b"\x18" for _ in range(count))
                else:
                    message = encode(call)
                    batch = (struct.pack("!L", len(message)) + message) * count
                if refused:
                    with self.assertRaises(NestingError, msg=name) as caught:
                        check(name, batch, 64, batched=True)
                    self.assertIn("messages in one batch", str(caught.exception))
                else:
                    self.assertIsNone(check(name, batch, 64, batched=True), name)
