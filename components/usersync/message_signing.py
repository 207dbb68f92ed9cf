"""
Signatures on user-sync messages: only the master's messages are applied.

The master signs every message it sends with its Ed25519 private key; a
client holds only public keys, so a compromised client (or anyone who can
send to a queue) cannot forge one. A signed message is the usual JSON
object with two more keys:

- ``kid``: the signing key's id (the first 16 hex digits of the SHA-256 of
  the raw public key), so a client holding several keys during a rotation
  knows which one to use;
- ``sig``: base64url (no padding) of the Ed25519 signature of
  :func:`canonical` of the object without ``sig``.

:func:`canonical` is ``DOMAIN`` followed by the object as JSON with sorted
keys, no whitespace, ASCII escapes and no NaN: every key of the message is
covered (kind, action, version, timestamp, user fields or credential facts,
key id, and whatever a newer master adds such as sequence numbers). The
client re-derives the bytes from the object it parsed, so what it verifies
is exactly what it then applies.

Keys are PEM files (PKCS#8 private key, SubjectPublicKeyInfo public keys):
``USERSYNC_SIGNING_KEY_FILE`` on the master, ``USERSYNC_VERIFY_KEY_FILES``
(comma-separated: the new and the old key during a rotation) on clients;
``python -m components.auth.keygen DIR`` writes ``usersync.key`` and
``usersync.pub``. Without them a node uses a dev key pair it creates in its
node directory (``secrets/usersync_signing.key``), which the dev node's
master and client share.
"""

import base64
import binascii
import hashlib
import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from components.auth.keygen import private_pem
from components.core.devsecrets import refuse_dev_file, require_development
from components.core.secretfiles import read_or_create_secret
from components.core.settings import KeyConfigError, key_setting
from components.usersync import usersync_settings

DOMAIN = b"reactive-usersync/1\n"
KEY_ID = "kid"
SIGNATURE = "sig"
SIGNATURE_BYTES = 64
DEV_KEY_FILE = os.path.join("secrets", "usersync_signing.key")
SIGNING_KEY_SETTING = usersync_settings.USERSYNC_SIGNING_KEY_FILE.name
VERIFY_KEYS_SETTING = usersync_settings.USERSYNC_VERIFY_KEY_FILES.name
_DECLARED = {SIGNING_KEY_SETTING: usersync_settings.USERSYNC_SIGNING_KEY_FILE,
             VERIFY_KEYS_SETTING: usersync_settings.USERSYNC_VERIFY_KEY_FILES}


class SignatureRefused(ValueError):
    """A message is not signed by a trusted key; the text says why."""


def canonical(message):
    """The signed bytes of ``message`` (a dict): ``DOMAIN`` + canonical JSON of every key but ``sig``."""
    unsigned = {key: value for key, value in message.items() if key != SIGNATURE}
    return DOMAIN + json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                               allow_nan=False).encode("ascii")


def key_id(public_key):
    """The id of an Ed25519 public key: 16 hex digits of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text):
    if not isinstance(text, str) or not text.isascii():
        raise SignatureRefused("signature is not base64url text")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (ValueError, binascii.Error):
        raise SignatureRefused("signature is not base64url text")


class Signer:
    """The master's side: ``sign(message)`` returns the message with ``kid`` and ``sig``."""

    def __init__(self, private_key):
        if not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise KeyConfigError("the user-sync signing key must be an Ed25519 private key")
        self.private_key = private_key
        self.kid = key_id(private_key.public_key())

    def sign(self, message):
        signed = dict(message)
        signed.pop(SIGNATURE, None)
        signed[KEY_ID] = self.kid
        signed[SIGNATURE] = _b64encode(self.private_key.sign(canonical(signed)))
        return signed


class Verifier:
    """A client's side: ``verify(message)`` returns it without ``sig`` or raises SignatureRefused."""

    def __init__(self, public_keys):
        self.keys = {}
        for public_key in public_keys:
            if not isinstance(public_key, ed25519.Ed25519PublicKey):
                raise KeyConfigError("user-sync verification keys must be Ed25519 public keys")
            self.keys[key_id(public_key)] = public_key
        if not self.keys:
            raise KeyConfigError("no user-sync verification key")

    def verify(self, message):
        if SIGNATURE not in message:
            raise SignatureRefused("unsigned")
        kid = message.get(KEY_ID)
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise SignatureRefused("signed by an unknown key {!r}".format(kid)[:120])
        signature = _b64decode(message[SIGNATURE])
        if len(signature) != SIGNATURE_BYTES:
            raise SignatureRefused("signature has the wrong length")
        try:
            signed = canonical(message)
        except (TypeError, ValueError):  # a float NaN or infinity cannot have been signed
            raise SignatureRefused("message has no canonical form")
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            raise SignatureRefused("bad signature (key {})".format(kid))
        return {key_name: value for key_name, value in message.items() if key_name != SIGNATURE}


def _read(path, what):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise KeyConfigError("{} {}: {}".format(what, path, exc.strerror or exc))


def _load(path, setting, loader, kind, key_type):
    """The Ed25519 key in the PEM file ``path``, else KeyConfigError naming ``setting``."""
    try:
        key = loader(_read(path, setting))
    except (ValueError, TypeError) as exc:
        raise KeyConfigError("{} {} is not a PEM {} key: {}".format(setting, path, kind, exc))
    if not isinstance(key, key_type):
        raise KeyConfigError("{} {} is not an Ed25519 key".format(setting, path))
    return key


def load_private_key(path):
    return _load(path, SIGNING_KEY_SETTING, lambda data: serialization.load_pem_private_key(data, password=None),
                 "private", ed25519.Ed25519PrivateKey)


def load_public_key(path):
    return _load(path, VERIFY_KEYS_SETTING, serialization.load_pem_public_key, "public", ed25519.Ed25519PublicKey)


def dev_private_key(node_directory):
    """The node directory's dev key pair (created on first use, mode 0600; race-free across workers)."""
    path = os.path.join(node_directory, DEV_KEY_FILE)
    read_or_create_secret(path, make=lambda: private_pem(ed25519.Ed25519PrivateKey.generate()).decode("ascii"))
    return load_private_key(path)


def signer_from(settings):
    """The master's Signer: ``USERSYNC_SIGNING_KEY_FILE``, else the node directory's dev key."""
    path = key_setting(settings, usersync_settings.USERSYNC_SIGNING_KEY_FILE)
    fix = "set {} (`reactive-hub keys DIR` makes usersync.key)".format(SIGNING_KEY_SETTING)
    if not path:
        require_development(settings, "the user-sync signing key", fix)
    else:
        refuse_dev_file(settings, path, DEV_KEY_FILE, "the user-sync signing key", fix)
    return Signer(load_private_key(path) if path else dev_private_key(settings.node_directory))


def verifier_from(settings):
    """A client's Verifier: every key in ``USERSYNC_VERIFY_KEY_FILES``, else the dev key's public half."""
    paths = key_setting(settings, usersync_settings.USERSYNC_VERIFY_KEY_FILES)
    if paths:
        return Verifier([load_public_key(path) for path in paths])
    require_development(settings, "the user-sync verify key", "set {} to the master's public key (`reactive-hub "
                        "keys DIR` makes usersync.pub)".format(VERIFY_KEYS_SETTING))
    return Verifier([dev_private_key(settings.node_directory).public_key()])


def uses_dev_key(settings, name):
    """True when ``name`` (one of the two settings) is unset, so the node directory's dev key is used."""
    return not settings.get(_DECLARED[name])
