"""
Unit tests of JWT verification: every refusal, with an injected clock.
"""

import base64
import json
import os
import stat
import tempfile

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from components.auth import (AUTH_EXPIRED, AUTH_INVALID_TOKEN, AUTH_NOT_YET_VALID, AUTH_NO_TOKEN, AUTH_UNKNOWN_ROLE,
                             AUTH_WRONG_AUDIENCE, AUTH_WRONG_ISSUER, tokens)
from components.core.settings import Settings

SECRET = "s" * 40
NOW = 1_800_000_000


def _hs_keys():
    return tokens.Keys("HS256", SECRET, SECRET)


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class VerifierTests(SynchronousTestCase):
    """TokenVerifier accepts good tokens and refuses each bad one with its own reason."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.issuer = tokens.TokenIssuer(_hs_keys(), ttl=60, clock=self.clock.seconds)
        self.verifier = tokens.TokenVerifier(_hs_keys(), leeway=5, clock=self.clock.seconds)

    def claims(self, **overrides):
        claims = {"sub": "alice", "role": "user", "iss": "reactive", "aud": "reactive", "iat": NOW, "exp": NOW + 60}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def assertRefused(self, token, uri):
        with self.assertRaises(tokens.TokenError) as caught:
            self.verifier.verify(token)
        self.assertEqual(caught.exception.uri, uri)
        self.assertTrue(caught.exception.reason)

    def test_valid(self):
        """An issued token verifies and yields sub and role."""
        claims = self.verifier.verify(self.issuer.issue("alice", "admin"))
        self.assertEqual((claims["sub"], claims["role"]), ("alice", "admin"))
        self.assertEqual(claims["exp"], NOW + 60)

    def test_no_token(self):
        """None and the empty string are refused as no_token."""
        self.assertRefused(None, AUTH_NO_TOKEN)
        self.assertRefused("", AUTH_NO_TOKEN)

    def test_garbage(self):
        """Strings that are not JWTs, and non-strings, are refused."""
        for garbage in ("abc", "a.b.c", "....", "eyJ.eyJ.x"):
            self.assertRefused(garbage, AUTH_INVALID_TOKEN)
        self.assertRefused(12345, AUTH_INVALID_TOKEN)

    def test_bad_signature(self):
        """A token signed with another secret is refused."""
        self.assertRefused(jwt.encode(self.claims(), "t" * 40, algorithm="HS256"), AUTH_INVALID_TOKEN)

    def test_tampered_payload(self):
        """Changing the payload of a signed token breaks the signature."""
        header, _, signature = self.issuer.issue("alice", "user").split(".")
        forged = header + "." + _b64(self.claims(role="admin")) + "." + signature
        self.assertRefused(forged, AUTH_INVALID_TOKEN)

    def test_alg_none(self):
        """An unsigned token (alg none) is refused."""
        self.assertRefused(_b64({"alg": "none", "typ": "JWT"}) + "." + _b64(self.claims()) + ".",
                           AUTH_INVALID_TOKEN)

    def test_hs256_signed_with_rsa_public_key(self):
        """On an RS256 hub, an HS256 token using the public key as HMAC secret is refused."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        verifier = tokens.TokenVerifier(tokens.Keys("RS256", private.public_key()), clock=self.clock.seconds)
        header = _b64({"alg": "HS256", "typ": "JWT"})
        payload = _b64(self.claims())
        import hashlib
        import hmac
        signature = base64.urlsafe_b64encode(hmac.new(public_pem, (header + "." + payload).encode(),
                                                      hashlib.sha256).digest()).rstrip(b"=").decode()
        with self.assertRaises(tokens.TokenError) as caught:
            verifier.verify(header + "." + payload + "." + signature)
        self.assertEqual(caught.exception.uri, AUTH_INVALID_TOKEN)
        self.assertIn("HS256", caught.exception.reason)

    def test_expired(self):
        """A token is refused once exp is more than the leeway in the past."""
        token = self.issuer.issue("alice", "user")
        self.clock.advance(60 + 4)
        self.verifier.verify(token)
        self.clock.advance(2)
        self.assertRefused(token, AUTH_EXPIRED)

    def test_missing_exp(self):
        """A token without exp is refused."""
        self.assertRefused(jwt.encode(self.claims(exp=None), SECRET, "HS256"), AUTH_INVALID_TOKEN)

    def test_non_numeric_exp(self):
        """A token whose exp is not a number is refused."""
        self.assertRefused(jwt.encode(self.claims(exp="tomorrow"), SECRET, "HS256"), AUTH_INVALID_TOKEN)

    def test_non_finite_times(self):
        """NaN or infinite exp/iat/nbf is refused (a NaN iat would defeat every time comparison)."""
        for name in ("exp", "iat", "nbf"):
            for value in (float("nan"), float("inf")):
                self.assertRefused(jwt.encode(self.claims(**{name: value}), SECRET, "HS256"), AUTH_INVALID_TOKEN)

    def test_not_yet_valid(self):
        """nbf beyond the leeway is refused; within the leeway it is accepted."""
        self.assertRefused(jwt.encode(self.claims(nbf=NOW + 30), SECRET, "HS256"), AUTH_NOT_YET_VALID)
        self.verifier.verify(jwt.encode(self.claims(nbf=NOW + 3), SECRET, "HS256"))

    def test_issued_in_future(self):
        """iat far in the future is refused."""
        self.assertRefused(jwt.encode(self.claims(iat=NOW + 600, exp=NOW + 900), SECRET, "HS256"),
                           AUTH_NOT_YET_VALID)

    def test_wrong_issuer(self):
        """Another issuer is refused."""
        self.assertRefused(jwt.encode(self.claims(iss="other"), SECRET, "HS256"), AUTH_WRONG_ISSUER)

    def test_wrong_audience(self):
        """Another audience is refused."""
        self.assertRefused(jwt.encode(self.claims(aud="other"), SECRET, "HS256"), AUTH_WRONG_AUDIENCE)

    def test_unknown_role(self):
        """Roles other than user, admin, device are refused, as is a missing role."""
        for role in ("backend", "authenticator", "root", None):
            self.assertRefused(jwt.encode(self.claims(role=role), SECRET, "HS256"), AUTH_UNKNOWN_ROLE)

    def test_empty_sub(self):
        """A token without a subject is refused."""
        self.assertRefused(jwt.encode(self.claims(sub=""), SECRET, "HS256"), AUTH_INVALID_TOKEN)


class AsymmetricKeyTests(SynchronousTestCase):
    """Public-key files pick the pinned algorithm; private keys must match them."""

    def write_pem(self, key, private=False):
        handle, path = tempfile.mkstemp(suffix=".pem")
        os.close(handle)
        if private:
            data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        else:
            data = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        with open(path, "wb") as out:
            out.write(data)
        self.addCleanup(os.remove, path)
        return path

    def test_algorithms(self):
        """RSA -> RS256, P-256 -> ES256, Ed25519 -> EdDSA; tokens signed with the private key verify."""
        for key, algorithm in ((rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
                               (ec.generate_private_key(ec.SECP256R1()), "ES256"),
                               (ed25519.Ed25519PrivateKey.generate(), "EdDSA")):
            environ = {"JWT_PUBLIC_KEY_FILE": self.write_pem(key), "JWT_PRIVATE_KEY_FILE": self.write_pem(key, True)}
            keys = tokens.load_keys(Settings({}, environ, tempfile.gettempdir()))
            self.assertEqual(keys.algorithm, algorithm)
            token = tokens.TokenIssuer(keys).issue("dev-1", "device")
            self.assertEqual(tokens.TokenVerifier(keys).verify(token)["sub"], "dev-1")

    def test_public_key_only_cannot_sign(self):
        """A node with only the public key verifies but refuses to issue."""
        key = ec.generate_private_key(ec.SECP256R1())
        keys = tokens.load_keys(Settings({}, {"JWT_PUBLIC_KEY_FILE": self.write_pem(key)}, tempfile.gettempdir()))
        self.assertFalse(keys.can_sign)
        self.assertRaises(tokens.KeyConfigError, tokens.TokenIssuer, keys)

    def test_mismatched_private_key(self):
        """A private key of another type than the public key is refused."""
        public = ec.generate_private_key(ec.SECP256R1())
        private = ed25519.Ed25519PrivateKey.generate()
        self.assertRaises(tokens.KeyConfigError, tokens.load_keys,
                          Settings({}, {"JWT_PUBLIC_KEY_FILE": self.write_pem(public),
                           "JWT_PRIVATE_KEY_FILE": self.write_pem(private, True)}, tempfile.gettempdir()))

    def test_small_rsa_key_refused(self):
        """RSA keys under 2048 bits are refused."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self.assertRaises(tokens.KeyConfigError, tokens.load_keys,
                          Settings({}, {"JWT_PUBLIC_KEY_FILE": self.write_pem(key)}, tempfile.gettempdir()))


class SecretTests(SynchronousTestCase):
    """Where HS256 secrets come from."""

    def test_dev_secret_created_once_with_mode_0600(self):
        """Without JWT_SECRET a random secret is created in the node dir (0600) and reused."""
        directory = tempfile.mkdtemp()
        first = tokens.load_keys(Settings({}, {}, directory))
        path = os.path.join(directory, tokens.DEV_SECRET_FILE)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        second = tokens.load_keys(Settings({}, {}, directory))
        self.assertEqual(first.signing_key, second.signing_key)
        self.assertGreaterEqual(len(first.signing_key), 48)
        other = tokens.load_keys(Settings({}, {}, tempfile.mkdtemp()))
        self.assertNotEqual(first.signing_key, other.signing_key)

    def test_short_secret_refused(self):
        """A JWT_SECRET under 32 bytes is refused."""
        self.assertRaises(tokens.KeyConfigError, tokens.load_keys, Settings({}, {"JWT_SECRET": "short"}, tempfile.mkdtemp()))

    def test_settings_defaults(self):
        """from_settings gives the contract's defaults and checks JWT_TTL."""
        keys, issuer, audience, ttl = tokens.from_settings(Settings({}, {"JWT_SECRET": SECRET}, tempfile.mkdtemp()))
        self.assertEqual((keys.algorithm, issuer, audience, ttl), ("HS256", "reactive", "reactive", 900))
        self.assertRaises(tokens.KeyConfigError, tokens.from_settings,
                          Settings({}, {"JWT_SECRET": SECRET, "JWT_TTL": "soon"}, tempfile.mkdtemp()))

    def test_issuer_refuses_unknown_role(self):
        """The issuer will not mint a token with a role outside the contract."""
        self.assertRaises(ValueError, tokens.TokenIssuer(_hs_keys()).issue, "alice", "backend")
