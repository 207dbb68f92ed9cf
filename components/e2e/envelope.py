"""
The envelope of an encrypted payload, version 1:

    {"e2e": 1, "alg": "A256GCM", "kid": "<key id>", "nonce": "<b64url 12 bytes>",
     "ct": "<b64url ciphertext || 16-byte tag>"}

The plaintext is the UTF-8 JSON of the value. The associated data binds the
envelope to where it belongs, so a ciphertext moved to another topic,
replayed as another (newer) state, or relabelled with another key id fails
to open:

    "reactive-e2e/1\\n" + alg + "\\n" + kid + "\\n" + topic + "\\n" + str(seq)

A decimal ``seq`` without leading zeros; ``topic`` as published.
"""

import base64
import json
import os
import re
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
ALGORITHM = "A256GCM"
NONCE_BYTES = 12
KEY_BYTES = 32
MAX_CIPHERTEXT = 1024 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class EnvelopeError(ValueError):
    """An envelope was refused; ``code`` says why (malformed, unknown_key, auth_failed, replayed, ...)."""

    def __init__(self, code, message):
        ValueError.__init__(self, message)
        self.code = code


def b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text, what):
    if not isinstance(text, str) or not text or len(text) > 2 * MAX_CIPHERTEXT:
        raise EnvelopeError("malformed", "{} must be a base64url string".format(what))
    if not _B64URL.fullmatch(text):
        raise EnvelopeError("malformed", "{} is not base64url".format(what))
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise EnvelopeError("malformed", "{} is not base64url".format(what))


def seal_bytes(key, data, aad):
    """``data`` at rest: base64url(random 96-bit nonce + AES-256-GCM ciphertext) under ``key``, bound to ``aad``."""
    nonce = os.urandom(12)
    return b64encode(nonce + AESGCM(key).encrypt(nonce, data, aad))


def open_bytes(key, sealed, aad, what):
    """
    The ``data`` :func:`seal_bytes` sealed; EnvelopeError (naming ``what``)
    when ``sealed`` is no base64url, InvalidTag when ``key`` or ``aad`` differ.
    """
    blob = b64decode(sealed, what)
    return AESGCM(key).decrypt(blob[:12], blob[12:], aad)


def associated_data(kid, topic, seq, alg=ALGORITHM):
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise EnvelopeError("malformed", "seq must be a non-negative integer")
    if not isinstance(topic, str) or not topic:
        raise EnvelopeError("malformed", "topic must be a non-empty string")
    return "reactive-e2e/{}\n{}\n{}\n{}\n{}".format(VERSION, alg, kid, topic, seq).encode("utf-8")


def is_envelope(value):
    return isinstance(value, dict) and "e2e" in value and "ct" in value


def seal(key, kid, topic, seq, value, nonce=None):
    """Encrypt ``value`` (JSON-serialisable) for ``topic``/``seq`` under ``key`` (32 bytes)."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
        raise EnvelopeError("bad_key", "data keys are 32 bytes")
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    ciphertext = AESGCM(bytes(key)).encrypt(nonce, plaintext, associated_data(kid, topic, seq))
    return {"e2e": VERSION, "alg": ALGORITHM, "kid": kid, "nonce": b64encode(nonce), "ct": b64encode(ciphertext)}


def parse(envelope):
    """Check the envelope's shape; return ``(kid, nonce, ciphertext)``."""
    if not isinstance(envelope, dict):
        raise EnvelopeError("malformed", "envelope must be an object")
    version = envelope.get("e2e")
    if isinstance(version, bool) or version != VERSION:
        raise EnvelopeError("unsupported_version", "unsupported envelope version {!r}".format(envelope.get("e2e")))
    if envelope.get("alg") != ALGORITHM:
        raise EnvelopeError("unsupported_algorithm", "unsupported algorithm {!r}".format(envelope.get("alg")))
    kid = envelope.get("kid")
    if not isinstance(kid, str) or not 1 <= len(kid) <= 64:
        raise EnvelopeError("malformed", "kid must be a short string")
    nonce = b64decode(envelope.get("nonce"), "nonce")
    if len(nonce) != NONCE_BYTES:
        raise EnvelopeError("malformed", "nonce must be 12 bytes")
    ciphertext = b64decode(envelope.get("ct"), "ct")
    if len(ciphertext) < 16:
        raise EnvelopeError("malformed", "ciphertext is truncated")
    return kid, nonce, ciphertext


def open_envelope(key, topic, seq, envelope):
    """Decrypt and authenticate; return the value, or raise EnvelopeError (``auth_failed`` on any tampering)."""
    kid, nonce, ciphertext = parse(envelope)
    try:
        plaintext = AESGCM(bytes(key)).decrypt(nonce, ciphertext, associated_data(kid, topic, seq))
    except InvalidTag:
        raise EnvelopeError("auth_failed", "envelope failed authentication (tampered, wrong key, topic or seq)")
    return json.loads(plaintext.decode("utf-8"))


class NonceGuard:
    """
    Remembers the last ``size`` (kid, nonce) pairs seen and refuses a nonce
    that comes back: a replayed envelope, or (worse) a sender reusing nonces.
    """

    def __init__(self, size=10000):
        self.size = size
        self._seen = OrderedDict()

    def check(self, envelope):
        kid, nonce, ciphertext = parse(envelope)
        key = (kid, nonce)
        if key in self._seen:
            code = "replayed" if self._seen[key] == ciphertext else "nonce_reuse"
            raise EnvelopeError(code, "nonce seen before ({})".format(code.replace("_", " ")))
        self._seen[key] = ciphertext
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
