"""
Signing the hub's JWTs: the keys from the settings (``JWT_SECRET``, or
``JWT_PUBLIC_KEY_FILE`` + ``JWT_PRIVATE_KEY_FILE``, else a development
secret in the node directory), :class:`TokenIssuer` with the claims of the
contract, and the role a directory user's token carries. PyJWT and
cryptography only, so the Django app signs with it too; verifying is
:mod:`components.auth.tokens`.
"""

import os
import secrets
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from components.auth import auth_settings
from components.core.devsecrets import dev_secret
from components.core.settings import KeyConfigError, key_setting

ROLES = ("user", "admin", "device")
DEFAULT_TTL = auth_settings.JWT_TTL.default
DEV_SECRET_FILE = os.path.join("secrets", "jwt_secret")
JWT_KEY_FIX = ("set JWT_SECRET (at least 32 random bytes) or JWT_PUBLIC_KEY_FILE (and JWT_PRIVATE_KEY_FILE where "
               "tokens are issued; `reactive-hub keys DIR` makes the files)")
MIN_SECRET_BYTES = auth_settings.MIN_SECRET_BYTES


class Keys:
    """The pinned algorithm and the keys to sign (may be None) and verify with."""

    def __init__(self, algorithm, verification_key, signing_key=None):
        self.algorithm = algorithm
        self.verification_key = verification_key
        self.signing_key = signing_key

    @property
    def can_sign(self):
        return self.signing_key is not None


def _algorithm_for(public_key):
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise KeyConfigError("RSA keys must have at least 2048 bits")
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise KeyConfigError("EC keys must use the P-256 curve (ES256)")
        return "ES256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise KeyConfigError("unsupported public key type {}".format(type(public_key).__name__))


def _pem(path, name, load):
    """The key ``load`` reads from the PEM file ``path`` (setting ``name``); KeyConfigError naming it otherwise."""
    try:
        with open(path, "rb") as handle:
            return load(handle.read())
    except (OSError, ValueError, TypeError) as error:
        raise KeyConfigError("{} {} cannot be used as a PEM key: {}".format(name, path, error))


def load_keys(settings):
    """
    Keys from the settings: ``JWT_PUBLIC_KEY_FILE`` (+ optional
    ``JWT_PRIVATE_KEY_FILE`` to sign) for RS256/ES256/EdDSA, else
    ``JWT_SECRET`` for HS256, else a dev secret kept in the node directory.
    """
    public_file = key_setting(settings, auth_settings.JWT_PUBLIC_KEY_FILE)
    if public_file:
        public_key = _pem(public_file, "JWT_PUBLIC_KEY_FILE", serialization.load_pem_public_key)
        algorithm = _algorithm_for(public_key)
        private_key = None
        private_file = key_setting(settings, auth_settings.JWT_PRIVATE_KEY_FILE)
        if private_file:
            private_key = _pem(private_file, "JWT_PRIVATE_KEY_FILE",
                               lambda data: serialization.load_pem_private_key(data, password=None))
            if _algorithm_for(private_key.public_key()) != algorithm:
                raise KeyConfigError("JWT_PRIVATE_KEY_FILE does not match JWT_PUBLIC_KEY_FILE")
        return Keys(algorithm, public_key, private_key)
    secret = key_setting(settings, auth_settings.JWT_SECRET)
    if not secret:
        secret = dev_secret(settings, DEV_SECRET_FILE, "the JWT key", JWT_KEY_FIX)
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise KeyConfigError("JWT_SECRET must be at least {} bytes".format(MIN_SECRET_BYTES))
    return Keys("HS256", secret, secret)


class TokenIssuer:
    """
    Signs tokens with the claims of the contract: sub, role, iss, aud, iat,
    exp, plus ``cv`` (the user's credential version) and ``sid`` (the login
    session) when given in ``extra_claims`` (see :mod:`components.auth.credentials`).
    """

    def __init__(self, keys, issuer="reactive", audience="reactive", ttl=DEFAULT_TTL, clock=time.time):
        if not keys.can_sign:
            raise KeyConfigError("no signing key: set JWT_PRIVATE_KEY_FILE or JWT_SECRET")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.clock = clock

    def issue(self, sub, role, ttl=None, extra_claims=None):
        if role not in ROLES:
            raise ValueError("role must be one of {}".format(", ".join(ROLES)))
        if not isinstance(sub, str) or not sub:
            raise ValueError("sub must be a non-empty string")
        now = int(self.clock())
        claims = dict(extra_claims or {})
        claims.update({"sub": sub, "role": role, "iss": self.issuer, "aud": self.audience,
                       "iat": now, "nbf": now, "exp": now + int(ttl if ttl is not None else self.ttl),
                       "jti": secrets.token_urlsafe(12)})
        return jwt.encode(claims, self.keys.signing_key, algorithm=self.keys.algorithm)


def from_settings(settings):
    """``(keys, issuer, audience, ttl)`` from the JWT_* settings, with the contract's defaults."""
    keys = load_keys(settings)
    issuer = settings.get(auth_settings.JWT_ISSUER)
    audience = settings.get(auth_settings.JWT_AUDIENCE)
    ttl = key_setting(settings, auth_settings.JWT_TTL)
    return keys, issuer, audience, ttl


def role_of(user):
    """``admin`` for superusers, ``user`` otherwise."""
    return "admin" if user["is_superuser"] else "user"
