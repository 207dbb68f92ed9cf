"""
JWTs for the hub: verifying them with the algorithm pinned, ``exp``
required and ``iss``/``aud``/``nbf`` checked. Every refusal is a
:class:`TokenError` with an error URI and a plain reason. Loading keys and
issuing tokens are :mod:`components.auth.token_signing` (read here too).
"""

import math
import time

import jwt

from components.auth import (AUTH_EXPIRED, AUTH_INVALID_TOKEN, AUTH_NOT_YET_VALID, AUTH_NO_TOKEN, AUTH_UNKNOWN_ROLE,
                             AUTH_WRONG_AUDIENCE, AUTH_WRONG_ISSUER, auth_settings)
from components.auth.auth_refused import AuthRefused
from components.auth.token_signing import (  # noqa: F401 - signing is read as tokens.<NAME> too
    DEFAULT_TTL, DEV_SECRET_FILE, JWT_KEY_FIX, MIN_SECRET_BYTES, ROLES, Keys, TokenIssuer, from_settings,
    load_keys)
from components.core.settings import KeyConfigError  # noqa: F401 - read as tokens.KeyConfigError

DEFAULT_LEEWAY = auth_settings.JWT_LEEWAY.default


class TokenError(AuthRefused):
    """A token was refused: ``uri`` is one of ``components.auth.AUTH_*``, ``reason`` says why."""

    def __init__(self, uri, reason):
        AuthRefused.__init__(self, reason, uri=uri)
        self.reason = reason


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
