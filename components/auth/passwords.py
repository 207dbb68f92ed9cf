"""
Password hashes in Django's formats, so a Django application's user table
and ours are interchangeable. The hub writes ``pbkdf2_sha256`` at Django's
iteration count and verifies every hasher Django ships:

    pbkdf2_sha256$<iterations>$<salt>$<base64 hash>      pbkdf2_sha1$...
    argon2$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>  (argon2-cffi)
    bcrypt_sha256$$2b$<cost>$<salt+hash>                  bcrypt$$2b$...  (bcrypt)
    scrypt$<n>$<salt>$<r>$<p>$<base64 hash>

A refused login costs the same whatever the reason: an unknown user, an
unusable password (a leading ``!``) and a hash the hub cannot verify each
spend one ``pbkdf2_sha256`` derivation at the default iteration count, as
a wrong password against the hub's own (and Django's default) format does.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
import string

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 1_000_000  # Django 5.2's default
_SALT_ALPHABET = string.ascii_letters + string.digits
UNUSABLE_PREFIX = "!"
MAX_ITERATIONS = 10_000_000

# what checking a password found
MATCH = "match"
MISMATCH = "mismatch"
UNUSABLE = "unusable"          # no usable password (Django's set_unusable_password, a replica user)
UNSUPPORTED = "unsupported"    # a hash format the hub cannot verify
MALFORMED = "malformed"        # a known format with broken fields


def _derive(password, salt, iterations, digest="sha256"):
    derived = hashlib.pbkdf2_hmac(digest, password.encode("utf-8"), salt.encode("utf-8"), iterations)
    return base64.b64encode(derived).decode("ascii")


def make_password(password, salt=None, iterations=DEFAULT_ITERATIONS):
    """Hash ``password`` with a random 22-character salt (as Django does)."""
    if not isinstance(password, str) or password == "":
        raise ValueError("password must be a non-empty string")
    salt = salt or "".join(secrets.choice(_SALT_ALPHABET) for _ in range(22))
    if "$" in salt:
        raise ValueError("salt must not contain '$'")
    return "{}${}${}${}".format(ALGORITHM, iterations, salt, _derive(password, salt, iterations))


def make_unusable_password():
    """A value that never matches, like Django's ``set_unusable_password``."""
    return UNUSABLE_PREFIX + secrets.token_urlsafe(30)


class _Malformed(ValueError):
    pass


def _pbkdf2(digest):
    def verify(password, fields):
        if len(fields) != 3:
            raise _Malformed()
        iterations, salt, expected = fields
        try:
            iterations = int(iterations)
        except ValueError:
            raise _Malformed()
        if not 1 <= iterations <= MAX_ITERATIONS:
            raise _Malformed()
        return hmac.compare_digest(_derive(password, salt, iterations, digest).encode(), expected.encode())
    return verify


def _argon2(password, fields):
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
    try:
        return PasswordHasher().verify("$" + "$".join(fields), password)
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError, ValueError):
        raise _Malformed()


def _bcrypt(prehash):
    def verify(password, fields):
        import bcrypt
        # bcrypt$<empty>$2b$12$... : the stored data is "$2b$12$..."
        data = "$".join(fields)
        if not data.startswith("$2"):
            raise _Malformed()
        secret = password.encode("utf-8")
        if prehash:
            secret = binascii.hexlify(hashlib.sha256(secret).digest())
        try:
            return bcrypt.checkpw(secret, data.encode("ascii"))
        except ValueError:
            raise _Malformed()
    return verify


def _scrypt(password, fields):
    if len(fields) != 5:
        raise _Malformed()
    n, salt, r, p, expected = fields
    try:
        n, r, p = int(n), int(r), int(p)
        derived = hashlib.scrypt(password.encode("utf-8"), salt=salt.encode("utf-8"), n=n, r=r, p=p,
                                 maxmem=256 * n * r + 1024 * 1024, dklen=64)
    except ValueError:
        raise _Malformed()
    return hmac.compare_digest(base64.b64encode(derived).decode("ascii").encode(), expected.encode())


HASHERS = {
    "pbkdf2_sha256": _pbkdf2("sha256"),
    "pbkdf2_sha1": _pbkdf2("sha1"),
    "argon2": _argon2,
    "bcrypt_sha256": _bcrypt(prehash=True),
    "bcrypt": _bcrypt(prehash=False),
    "scrypt": _scrypt,
}


def algorithm_of(encoded):
    """The hasher name of ``encoded`` (the text before the first ``$``), or None for an unusable value."""
    if not isinstance(encoded, str) or not encoded or encoded.startswith(UNUSABLE_PREFIX) or "$" not in encoded:
        return None
    return encoded.split("$", 1)[0]


def verify(password, encoded, equalise=None):
    """
    Check ``password`` against ``encoded``: one of MATCH, MISMATCH,
    UNUSABLE, UNSUPPORTED, MALFORMED. Every outcome but a real verification
    spends ``equalise(password)`` (by default :func:`dummy_check`), so all
    refusals cost about the same.
    """
    equalise = equalise or dummy_check
    if not isinstance(password, str):
        equalise("x")
        return MISMATCH
    algorithm = algorithm_of(encoded)
    if algorithm is None:
        equalise(password)
        return UNUSABLE
    hasher = HASHERS.get(algorithm)
    if hasher is None:
        equalise(password)
        return UNSUPPORTED
    try:
        return MATCH if hasher(password, encoded.split("$")[1:]) else MISMATCH
    except _Malformed:
        equalise(password)
        return MALFORMED


def check_password(password, encoded):
    """True when ``password`` matches ``encoded`` (any supported Django hasher); compares in constant time."""
    return verify(password, encoded) == MATCH


def dummy_check(password, iterations=DEFAULT_ITERATIONS):
    """Burn the time of one real check of the hub's own format, for refusals without one."""
    _derive(password if isinstance(password, str) else "x", "dummy-salt-value", iterations)
    return False
