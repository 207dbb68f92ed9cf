"""
How deeply a serialized message nests, found without decoding it and
without recursion: a linear pass over the bytes that stops at the first
level past the limit.

A decoder that recurses per level (the JSON decoder autobahn uses is the
pure-Python one) turns a 200 KB ``[[[[...]]]]`` into a RecursionError and
a traceback as long as the nesting; :func:`check` refuses such a message
before any decoder sees it. ``check(serializer, payload, limit)`` raises
:class:`NestingError` naming the reason when the message nests deeper than
``limit`` containers (arrays, maps, objects; CBOR tags and indefinite-length
strings count as a level too) or when the walk cannot go on (a string or
container that ends early); otherwise it returns ``None``. Anything else
about the message is left to the decoder.

``containers`` (optional) bounds the cost of a message that is wide rather
than deep: one holding more containers than that is refused too
(:class:`TooManyContainers`), whatever its depth, before a decoder spends
time on it (a 1 MB frame of 349,000 empty JSON arrays, or of a million empty
MessagePack arrays, took the decoder 0.6-1.3 s).

A message with no more container openings than both bounds (counted over
all its bytes, so an upper bound) is passed after a single count in C. Only
larger ones are examined: JSON entirely in C (its strings removed by one
regular expression, its brackets turned into +1/-1 steps and summed by
``itertools.accumulate``), MessagePack and CBOR by a walk over their item
headers that stops at the first level past ``limit``, at the first
container past ``containers``, or at a container announcing more items than
bytes remain. Every step of a walk consumes at least one byte, so its cost
is bounded by the message size, and by ``containers``.
"""

import struct
from itertools import accumulate, islice


class NestingError(ValueError):
    """A message that nests too deeply or cannot be walked; ``str()`` is the reason."""


class TooManyContainers(NestingError):
    """A message holding more containers than the bound it was checked against."""


# backslash pairs, then escaped quotes (what is left of an escape is not a quote): removed, in C, left to
# right as a JSON scanner pairs them. Backslashes outside strings are not JSON: the decoder stops there.
_JSON_ESCAPED = (b"\\\\", b'\\"')
_JSON_OPENERS = (b"[", b"{")
# outside strings: an opening bracket one step up (byte 0x01), a closing one a step down (0xff as a signed byte)
_JSON_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_JSON_NOT_BRACKETS = bytes(value for value in range(256) if value not in b"[]{}")
_UP = 1


def _too_deep(limit):
    return NestingError("nested deeper than {} levels".format(limit))


def _too_many(containers):
    return TooManyContainers("more than {} containers".format(containers))


def _within(openings, limit, containers):
    """True when ``openings`` (an upper bound of the containers) cannot break either bound."""
    return openings <= limit and (containers is None or openings <= containers)


def check_json(payload, limit, containers=None):
    """Refuse JSON text ``payload`` (bytes) nesting deeper than ``limit`` arrays and objects, or holding more
    than ``containers`` of them."""
    if _within(sum(payload.count(opener) for opener in _JSON_OPENERS), limit, containers):
        return None
    if b'"' in payload:
        for escaped in _JSON_ESCAPED:
            payload = payload.replace(escaped, b"")
        pieces = payload.split(b'"')
        if len(pieces) % 2 == 0:
            raise NestingError("a string never ends")
        payload = b"".join(pieces[::2])  # what lies outside strings
    steps = payload.translate(_JSON_STEPS, _JSON_NOT_BRACKETS)
    if containers is not None and steps.count(_UP) > containers:
        raise _too_many(containers)
    levels = list(accumulate(memoryview(steps).cast("b")))
    if levels and min(levels) < 0:
        raise NestingError("a bracket closes more than was opened")
    if levels and max(levels) > limit:
        raise _too_deep(limit)
    return None


def _bytes_counter(values):
    """A function counting the bytes of a payload that are among ``values``."""
    others = bytes(value for value in range(256) if value not in set(values))

    def count(payload):
        return len(payload.translate(None, others))

    return count


# MessagePack: every byte value's (fixed bytes after it, bytes of a length after those, items it holds).
# Items: None for a scalar, or (per element, element count or None when the length field holds it).
def _msgpack_table():
    table = {}
    for value in range(0x00, 0x80):
        table[value] = (0, 0, None)                                # positive fixint
    for value in range(0x80, 0x90):
        table[value] = (0, 0, (2, value & 0x0F))                   # fixmap
    for value in range(0x90, 0xA0):
        table[value] = (0, 0, (1, value & 0x0F))                   # fixarray
    for value in range(0xA0, 0xC0):
        table[value] = (value & 0x1F, 0, None)                     # fixstr
    for value in range(0xE0, 0x100):
        table[value] = (0, 0, None)                                # negative fixint
    table.update({
        0xC0: (0, 0, None), 0xC2: (0, 0, None), 0xC3: (0, 0, None),               # nil, false, true
        0xC4: (0, 1, None), 0xC5: (0, 2, None), 0xC6: (0, 4, None),               # bin 8/16/32
        0xC7: (1, 1, None), 0xC8: (1, 2, None), 0xC9: (1, 4, None),               # ext 8/16/32 (type after length)
        0xCA: (4, 0, None), 0xCB: (8, 0, None),                                    # float 32/64
        0xCC: (1, 0, None), 0xCD: (2, 0, None), 0xCE: (4, 0, None), 0xCF: (8, 0, None),  # uint
        0xD0: (1, 0, None), 0xD1: (2, 0, None), 0xD2: (4, 0, None), 0xD3: (8, 0, None),  # int
        0xD4: (2, 0, None), 0xD5: (3, 0, None), 0xD6: (5, 0, None), 0xD7: (9, 0, None),  # fixext (type + data)
        0xD8: (17, 0, None),
        0xD9: (0, 1, None), 0xDA: (0, 2, None), 0xDB: (0, 4, None),               # str 8/16/32
        0xDC: (0, 2, (1, None)), 0xDD: (0, 4, (1, None)),                         # array 16/32
        0xDE: (0, 2, (2, None)), 0xDF: (0, 4, (2, None)),                         # map 16/32
    })
    return table


_MSGPACK = _msgpack_table()  # 0xC1 is never used: absent
_msgpack_containers = _bytes_counter([value for value, entry in _MSGPACK.items() if entry[2] is not None])
_TRUNCATED = "the message ends inside an item"


def _length(payload, position, size):
    if position + size > len(payload):
        raise NestingError(_TRUNCATED)
    return int.from_bytes(payload[position:position + size], "big")


def check_msgpack(payload, limit, containers=None):
    """Refuse MessagePack ``payload`` nesting deeper than ``limit`` arrays and maps, or holding more than
    ``containers`` of them."""
    if _within(_msgpack_containers(payload), limit, containers):
        return None
    size = len(payload)
    position = 0
    budget = size if containers is None else containers  # containers still allowed
    remaining = [1]  # items still to read at each open level; the first entry is the message itself
    while remaining:
        if remaining[-1] == 0:
            remaining.pop()
            continue
        remaining[-1] -= 1
        if position >= size:
            raise NestingError(_TRUNCATED)
        entry = _MSGPACK.get(payload[position])
        if entry is None:
            raise NestingError("byte 0xc1 is not MessagePack")
        fixed, length_bytes, holds = entry
        position += 1
        length = _length(payload, position, length_bytes) if length_bytes else 0
        position += length_bytes
        if holds is None:
            position += fixed + length
            if position > size:
                raise NestingError(_TRUNCATED)
            continue
        if len(remaining) > limit:
            raise _too_deep(limit)
        budget -= 1
        if budget < 0:
            raise _too_many(containers)
        per_element, count = holds
        items = per_element * (length if count is None else count)
        if items > size - position:  # every item takes a byte at least
            raise NestingError(_TRUNCATED)
        remaining.append(items)
    return None


_INDEFINITE = -1
_BREAK = 0xFF
# CBOR: arrays, maps, tags (major types 4-6) and indefinite-length byte and text strings hold items
_cbor_containers = _bytes_counter(list(range(0x80, 0xDC)) + [0x5F, 0x7F])


def check_cbor(payload, limit, containers=None):
    """Refuse CBOR ``payload`` nesting deeper than ``limit`` arrays, maps, tags and indefinite strings, or
    holding more than ``containers`` of them."""
    if _within(_cbor_containers(payload), limit, containers):
        return None
    size = len(payload)
    position = 0
    budget = size if containers is None else containers  # containers still allowed
    remaining = [1]  # items still to read at each open level (_INDEFINITE: up to a break byte)
    while remaining:
        left = remaining[-1]
        if left == 0:
            remaining.pop()
            continue
        if position >= size:
            raise NestingError(_TRUNCATED)
        initial = payload[position]
        position += 1
        if initial == _BREAK:
            if left != _INDEFINITE:
                raise NestingError("a break byte outside an indefinite-length item")
            remaining.pop()
            continue
        if left != _INDEFINITE:
            remaining[-1] = left - 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            argument = info
        elif info < 28:
            length_bytes = 1 << (info - 24)
            argument = _length(payload, position, length_bytes)
            position += length_bytes
        elif info == 31 and major in (2, 3, 4, 5):
            argument = None
        else:
            raise NestingError("reserved CBOR header byte 0x{:02x}".format(initial))
        if major in (2, 3) and argument is not None:
            position += argument
            if position > size:
                raise NestingError(_TRUNCATED)
            continue
        if major < 2 or major == 7:
            continue
        if len(remaining) > limit:
            raise _too_deep(limit)
        budget -= 1
        if budget < 0:
            raise _too_many(containers)
        if argument is None:
            remaining.append(_INDEFINITE)
            continue
        items = argument * 2 if major == 5 else 1 if major == 6 else argument
        if items > size - position:  # every item takes a byte at least
            raise NestingError(_TRUNCATED)
        remaining.append(items)
    return None


_SCANNERS = {"json": check_json, "msgpack": check_msgpack, "cbor": check_cbor}
_FRAME_LENGTH = struct.Struct("!L")
SERIALIZERS = tuple(sorted(_SCANNERS))


def _length_prefixed(payload):
    """The messages of a batched MessagePack or CBOR payload (each after its 4-byte length)."""
    position, size = 0, len(payload)
    while position < size:
        if position + 4 > size:
            raise NestingError("a batch ends inside a length prefix")
        (length,) = _FRAME_LENGTH.unpack_from(payload, position)
        position += 4
        if position + length > size:
            raise NestingError("a batch ends inside a message")
        yield payload[position:position + length]
        position += length


# messages one batched frame may carry: the router handles a frame's messages in one go, and 45,000 small CALLs
# in one 1 MiB JSON batch held it for 2.4 s (hub.js and autobahn.js never batch)
MAX_BATCH = 100
# what ends each message of a batched JSON payload (autobahn's separator; never inside JSON text)
JSON_BATCH_END = b"\x18"


def check(serializer, payload, limit, batched=False, containers=None):
    """
    Refuse ``payload`` of ``serializer`` (``json``, ``msgpack``, ``cbor``)
    nesting deeper than ``limit`` or holding more than ``containers``
    containers (None: no such bound); a serializer this module does not walk
    is refused too. Batched JSON is examined whole (its separators lie outside
    strings and brackets); batched MessagePack and CBOR message by message; a
    batch of more than ``MAX_BATCH`` messages is refused.
    """
    scanner = _SCANNERS.get(serializer)
    if scanner is None:
        raise NestingError("serializer {!r} has no depth check".format(serializer))
    if batched:
        # at most MAX_BATCH + 1 binary messages are listed: enough to refuse a longer batch
        messages = [payload] if serializer == "json" else list(islice(_length_prefixed(payload), MAX_BATCH + 1))
        count = payload.count(JSON_BATCH_END) if serializer == "json" else len(messages)
        if count > MAX_BATCH:
            raise NestingError("more than {} messages in one batch".format(MAX_BATCH))
        for message in messages:
            scanner(message, limit, containers)
        return None
    return scanner(payload, limit, containers)
