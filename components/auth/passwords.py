"""
Password hashes in Django's ``pbkdf2_sha256$<iterations>$<salt>$<base64 hash>``
format, so a Django application's ``auth_user`` table and ours are
interchangeable.
"""

import base64
import hashlib
import hmac
import secrets
import string

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 1_000_000  # Django 5.2's default
_SALT_ALPHABET = string.ascii_letters + string.digits
UNUSABLE_PREFIX = "!"


def _derive(password, salt, iterations):
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), iterations)
    return base64.b64encode(digest).decode("ascii")


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


def check_password(password, encoded):
    """True when ``password`` matches ``encoded``; compares in constant time."""
    if not isinstance(password, str) or not isinstance(encoded, str):
        return False
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != ALGORITHM:
        # still spend the time, so an unusable hash is not distinguishable by timing
        _derive(password or "x", "timing-equaliser", 1000)
        return False
    _, iterations, salt, expected = parts
    try:
        iterations = int(iterations)
    except ValueError:
        return False
    if iterations < 1 or iterations > 10_000_000:
        return False
    return hmac.compare_digest(_derive(password, salt, iterations).encode(), expected.encode())


def dummy_check(password, iterations=DEFAULT_ITERATIONS):
    """Burn the time of one real check, for unknown usernames."""
    _derive(password if isinstance(password, str) else "x", "dummy-salt-value", iterations)
    return False
