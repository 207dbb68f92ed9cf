"""
WAMP JSON is decoded by the standard library's C scanner, not by the pure
Python one, unless the text can hold one of autobahn's binary strings.

autobahn's ``JsonObjectSerializer`` decodes with a ``JSONDecoder`` subclass
that turns a string starting with ``"\\x00"`` into bytes (its convention for
binary values in JSON). To do that it replaces the decoder's string parser,
which makes ``json`` fall back to ``scanner.py_make_scanner``: every value
of every message is scanned in Python, about 20 times slower than the C
scanner. A logged-in client could make the router spend 0.3 s decoding one
1 MiB frame of numbers, and every browser's every message paid the same
factor. A ``"\\x00"`` can only reach a JSON string as the escape
``\\u0000``, so for a payload without that text (and the serializer's
default options: no hex binaries, no decimals) ``json.loads`` gives what
autobahn's decoder gives, with one difference: the C scanner takes only
ASCII digits in a number, as JSON (RFC 8259) says, where the Python
scanner's pattern also took other Unicode digits (``[1\\u0661]`` was
``[11]``; it is now refused as not JSON). ``install()`` wraps
``unserialize`` to take that path; any other payload goes to autobahn's own
(kept as the replacement's ``__wrapped__``).
"""

import json

from components.core.nesting import JSON_BATCH_END
from components.node.patches import PatchUnavailable, replacement, unpatched

NAME = "json_decode"
SECURITY = False
WORKERS = ("router", "proxy", "container")
SUMMARY = ("WAMP JSON without a \\u0000 escape is decoded by the C scanner (autobahn's binary-string hook forced "
           "the pure Python one, ~20x slower)")
UPSTREAM = "docs/upstream/json_decode.patch"
VERIFIED = {"autobahn": "26.11.1"}

PATCHED = "_reactive_hub_c_scanner"
# the only way a JSON text can put autobahn's binary marker "\x00" at the start of a string
BINARY_ESCAPE = b"\\u0000"
OPTIONS = ("_use_binary_hex_encoding", "_use_decimal_from_str", "_use_decimal_from_float")


def c_scanned(unserialize):
    """``JsonObjectSerializer.unserialize`` decoding with ``json.loads`` when no string can be binary."""

    def unserialize_c(self, payload):
        if BINARY_ESCAPE in payload or any(getattr(self, option, True) for option in OPTIONS):
            return unserialize(self, payload)
        chunks = payload.split(JSON_BATCH_END)[:-1] if self._batched else [payload]
        if not chunks:
            return unserialize(self, payload)
        return [json.loads(chunk.decode("utf8")) for chunk in chunks]

    unserialize_c.__wrapped__ = unserialize
    return replacement(unserialize_c, c_scanned, PATCHED)


def install(cls=None):
    """Wrap ``unserialize`` of autobahn's ``JsonObjectSerializer`` (or ``cls``); True if patched now."""
    if cls is None:
        try:
            from autobahn.wamp.serializer import JsonObjectSerializer as cls
        except ImportError as error:
            raise PatchUnavailable(str(error))
        import inspect
        try:
            init = inspect.getsource(cls.__init__)
        except (OSError, TypeError):
            raise PatchUnavailable("cannot read JsonObjectSerializer.__init__ for its options")
        missing = [option for option in OPTIONS + ("_batched",) if "self.{} =".format(option) not in init]
        if missing:
            raise PatchUnavailable("JsonObjectSerializer no longer sets {}".format(", ".join(missing)))
    if not callable(getattr(cls, "unserialize", None)):
        raise PatchUnavailable("{} has no unserialize".format(cls.__name__))
    original = unpatched(cls, "unserialize", PATCHED)
    if original is None:
        return False
    cls.unserialize = c_scanned(original)
    return True
