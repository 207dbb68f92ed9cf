"""
``POST <include>/token``: for the user of the Django session, exactly what
the hub's ``POST /auth/token`` answers for a ``hub_session`` cookie:
``{"token", "expires_in", "username", "role", "first_name"}``, the token
signed with the hub's keys and carrying the same claims (``sub``, ``role``:
``admin`` for superusers else ``user``, ``iss``, ``aud``, ``iat``, ``nbf``,
``exp``, ``jti``, ``cv``: the user's credential version, ``sid``: the Django
session's login id).

Refusals, all JSON ``{"error", "message"}`` except Django's own CSRF page:

- not POST: 405 (``Allow: POST``);
- another origin (:mod:`components.django_hub.origin`): 403 ``reactive.error.not_authorized``;
- no valid CSRF token (Django's CSRF machinery, ``X-CSRFToken`` header): 403 from ``CSRF_FAILURE_VIEW``;
- no logged-in, active user: 401 ``reactive.error.auth.login_required``;
- ``E2E_ENCRYPTION`` on: 503 ``reactive.error.unavailable`` (the app does not hand out end-to-end keys;
  ``manage.py check`` says so first);
- the hub's tables cannot be read: 503 ``reactive.error.unavailable``.
"""

import logging

from django.contrib.auth import HASH_SESSION_KEY, get_user_model
from django.db import DatabaseError
from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from components.auth import AUTH_LOGIN_REQUIRED
from components.auth.token_signing import role_of
from components.core import error_uris
from components.django_hub import logins
from components.django_hub.conf import hub_settings
from components.django_hub.origin import foreign_origin

log = logging.getLogger(__name__)


def _answer(status, body, headers=None):
    response = JsonResponse(body, status=status)
    add_never_cache_headers(response)
    patch_vary_headers(response, ("Cookie",))
    response["X-Content-Type-Options"] = "nosniff"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _refuse(status, uri, message, headers=None):
    """An error answer in the hub's one body shape (:func:`components.core.error_uris.body`)."""
    return _answer(status, error_uris.body(uri, message), headers)


# not exempt at all: _issue is csrf_protect'ed, after the method and origin checks (answered in JSON)
@csrf_exempt
def token(request):
    """The token view: method and origin first, then Django's CSRF check, then the session's user."""
    if request.method != "POST":
        return _refuse(405, error_uris.INVALID_ARGUMENT, "use POST", {"Allow": "POST"})
    reason = foreign_origin(request)
    if reason is not None:
        log.warning("hub token refused: %s", reason)
        return _refuse(403, error_uris.NOT_AUTHORIZED, reason)
    return _issue(request)


def _current_user(request, alias):
    """The session's user read again, or None when it is gone, inactive or its password moved."""
    fresh = get_user_model()._default_manager.using(alias).filter(pk=request.user.pk).first()
    if fresh is None or not fresh.is_active:
        return None
    stored = request.session.get(HASH_SESSION_KEY)
    if stored is not None and not constant_time_compare(stored, fresh.get_session_auth_hash()):
        return None
    return fresh


def _version_and_user(request, alias, username):
    """
    ``(credential version, user)`` (user None: refused). The version is read
    first, then the user: a change committed in between is either seen in
    the user (refused here) or moves the version past the token's (refused
    at join). A rename seen in the user is read once more under the new name.
    """
    for _ in range(2):
        version = logins.credential_version(alias, username)
        fresh = _current_user(request, alias)
        if fresh is None or fresh.get_username() == username:
            return version, fresh
        username = fresh.get_username()
    return version, None


@csrf_protect
def _issue(request):
    user = getattr(request, "user", None)
    session_key = request.session.session_key if hasattr(request, "session") else None
    if user is None or not user.is_authenticated or not user.is_active or not session_key:
        return _refuse(401, AUTH_LOGIN_REQUIRED, "not logged in")
    config = hub_settings()
    if config.e2e:
        log.error("E2E_ENCRYPTION is on: this view does not hand out end-to-end keys; browsers must get their"
                  " tokens from the hub's /auth/token (or turn E2E_ENCRYPTION off in settings.HUB)")
        return _refuse(503, error_uris.UNAVAILABLE,
                       "end-to-end encryption is on: get tokens from the hub's /auth/token")
    try:
        version, fresh = _version_and_user(request, config.database, user.get_username())
    except DatabaseError as exc:
        log.error("hub token for %s: cannot read the hub's tables in database %r (%s); the hub node creates"
                  " them on its first start on this database", user.get_username(), config.database, exc)
        return _refuse(503, error_uris.UNAVAILABLE, error_uris.DATABASE_UNAVAILABLE)
    if fresh is None:
        return _refuse(401, AUTH_LOGIN_REQUIRED, "not logged in")
    username = fresh.get_username()
    role = role_of({"is_superuser": bool(getattr(fresh, "is_superuser", False))})
    claims = {"sid": logins.login_sid(session_key), "cv": version}
    signed = config.issuer.issue(username, role, extra_claims=claims)
    return _answer(200, {"token": signed, "expires_in": config.ttl, "username": username, "role": role,
                         "first_name": getattr(fresh, "first_name", "") or ""})
