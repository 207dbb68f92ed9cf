"""
A Django logout ends the hub login too: on ``user_logged_out`` the Django
session's ``sid`` is recorded as revoked (before Django flushes the
session). If that cannot be written the logout fails (the error propagates
and the Django session stays), as the hub's own ``/auth/logout`` answers 503
instead of pretending: a logout that leaves valid tokens behind is not one.

A password change, deactivation, rename or deletion needs nothing here: the
hub's triggers on the user table move the user's credential version in the
same transaction, which revokes every earlier token.
"""

import logging

from django.contrib.auth.signals import user_logged_out

from components.django_hub import logins
from components.django_hub.conf import hub_settings

log = logging.getLogger(__name__)
DISPATCH_UID = "components.django_hub.logout"


def on_logout(sender, request=None, user=None, **kwargs):
    """Receiver of ``user_logged_out``: revoke the tokens of the ending Django session."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if user is None or not key:
        return
    config = hub_settings()
    try:
        logins.end_login(config.database, key, user.get_username(), config.ttl)
    except Exception:
        log.exception("logout of %s: cannot record the hub login as ended in database %r; its tokens would"
                      " keep joining, so the logout fails", user.get_username(), config.database)
        raise
    log.info("logout of %s: its hub tokens are revoked", user.get_username())


def connect():
    user_logged_out.connect(on_logout, dispatch_uid=DISPATCH_UID)
