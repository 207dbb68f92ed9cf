"""
JWTs for the hub: loading keys, issuing tokens and verifying them with the
algorithm pinned, ``exp`` required and ``iss``/``aud``/``nbf`` checked.
Every refusal is a :class:`TokenError` with an error URI and a plain reason.
"""

import math
import os
import secrets
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from components.auth import (AUTH_EXPIRED, AUTH_INVALID_TOKEN, AUTH_NOT_YET_VALID, AUTH_NO_TOKEN, AUTH_UNKNOWN_ROLE,
                             AUTH_WRONG_AUDIENCE, AUTH_WRONG_ISSUER, AuthRefused, auth_settings)
from components.core import errors
from components.core.devsecrets import dev_secret
from components.core.settings import KeyConfigError, key_setting

ROLES = ("user", "admin", "device")
DEFAULT_TTL = auth_settings.JWT_TTL.default
DEFAULT_LEEWAY = auth_settings.JWT_LEEWAY.default
DEV_SECRET_FILE = os.path.join("secrets", "jwt_secret")
JWT_KEY_FIX = ("set JWT_SECRET (at least 32 random bytes) or JWT_PUBLIC_KEY_FILE (and JWT_PRIVATE_KEY_FILE where "
               "tokens are issued; `reactive-hub keys DIR` makes the files)")
MIN_SECRET_BYTES = auth_settings.MIN_SECRET_BYTES


class TokenError(AuthRefused):
    """A token was refused: ``uri`` is one of ``components.auth.AUTH_*``, ``reason`` says why."""

    def __init__(self, uri, reason):
        AuthRefused.__init__(self, reason, uri=uri)
        self.reason = reason


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


class TokenVerifier:
    """Verifies tokens against pinned keys; ``verify`` returns the claims or raises TokenError."""

    def __init__(self, keys, issuer="reactive", audience="reactive", leeway=DEFAULT_LEEWAY, clock=time.time):
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.clock = clock

    def verify(self, token):
        if token is None or token == "":
            raise TokenError(AUTH_NO_TOKEN, "no token presented")
        if not isinstance(token, str):
            raise TokenError(AUTH_INVALID_TOKEN, "token must be a string")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenError(AUTH_INVALID_TOKEN, "token is not a JWT")
        if header.get("alg") != self.keys.algorithm:
            raise TokenError(AUTH_INVALID_TOKEN, "token algorithm {!r} is not accepted (expected {})".format(
                header.get("alg"), self.keys.algorithm))
        try:
            claims = jwt.decode(
                token, self.keys.verification_key, algorithms=[self.keys.algorithm],
                audience=self.audience, issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"],
                         "verify_exp": False, "verify_nbf": False, "verify_iat": False})
        except jwt.InvalidSignatureError:
            raise TokenError(AUTH_INVALID_TOKEN, "bad signature")
        except jwt.InvalidAudienceError:
            raise TokenError(AUTH_WRONG_AUDIENCE, "wrong audience")
        except jwt.InvalidIssuerError:
            raise TokenError(AUTH_WRONG_ISSUER, "wrong issuer")
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(AUTH_INVALID_TOKEN, "missing claim {!r}".format(exc.claim))
        except jwt.InvalidTokenError as exc:
            raise TokenError(AUTH_INVALID_TOKEN, "invalid token: {}".format(exc))
        self._check_times(claims)
        if claims.get("role") not in ROLES:
            raise TokenError(AUTH_UNKNOWN_ROLE, "unknown role {!r}".format(claims.get("role")))
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenError(AUTH_INVALID_TOKEN, "sub must be a non-empty string")
        if "cv" in claims and (isinstance(claims["cv"], bool) or not isinstance(claims["cv"], int)
                               or claims["cv"] < 0):
            raise TokenError(AUTH_INVALID_TOKEN, "claim 'cv' must be a non-negative integer")
        if "sid" in claims and (not isinstance(claims["sid"], str) or not 0 < len(claims["sid"]) <= 64):
            raise TokenError(AUTH_INVALID_TOKEN, "claim 'sid' must be a string of 1-64 characters")
        return claims

    def _check_times(self, claims):
        now = self.clock()
        for name in ("exp", "iat", "nbf"):
            if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], (int, float))
                                   or not math.isfinite(claims[name])):
                raise TokenError(AUTH_INVALID_TOKEN, "claim {!r} must be a finite number".format(name))
        if claims["exp"] <= now - self.leeway:
            raise TokenError(AUTH_EXPIRED, "token expired")
        if "nbf" in claims and claims["nbf"] > now + self.leeway:
            raise TokenError(AUTH_NOT_YET_VALID, "token not yet valid")
        if claims["iat"] > now + self.leeway:
            raise TokenError(AUTH_NOT_YET_VALID, "token issued in the future")


def from_settings(settings):
    """``(keys, issuer, audience, ttl)`` from the JWT_* settings, with the contract's defaults."""
    keys = load_keys(settings)
    issuer = settings.get(auth_settings.JWT_ISSUER)
    audience = settings.get(auth_settings.JWT_AUDIENCE)
    ttl = key_setting(settings, auth_settings.JWT_TTL)
    return keys, issuer, audience, ttl
