"""
The hub's view of a Django login: its login-session id (``sid`` in the
tokens minted under it), derived from the Django session key without
revealing it, and the record that it ended (a Django logout), after which
the router refuses those tokens at join and ends the sessions opened with
them (:mod:`components.auth.session_revocation`).
"""

import hashlib
import time

from components.auth import credentials
from components.django_hub.hub_cursor import hub_cursor

# keeps a Django session's id apart from any hub_session's (both become login_id of a SHA-256)
_DOMAIN = "django-session:"


def login_sid(session_key):
    """The ``sid`` of the Django session ``session_key``: 32 hex characters, a one-way function of the key."""
    if not isinstance(session_key, str) or not session_key:
        raise ValueError("a Django session key is required")
    return credentials.login_id(hashlib.sha256((_DOMAIN + session_key).encode("utf-8")).hexdigest())


def credential_version(alias, username):
    """The user's current credential version (``cv``), 0 before its first change."""
    with hub_cursor(alias) as cursor:
        return credentials.version_of(cursor, username)[0]


def end_login(alias, session_key, username, token_ttl, clock=time.time):
    """
    Record that the Django session ``session_key`` ended: the tokens minted
    under it are refused for their longest possible life (``token_ttl`` plus
    the hub's margin for verifier leeway). Idempotent.
    """
    expires_ms = int((clock() + token_ttl + credentials.LOGOUT_MARGIN) * 1000)
    with hub_cursor(alias) as cursor:
        credentials.revoke_login(cursor, login_sid(session_key), username, expires_ms)
