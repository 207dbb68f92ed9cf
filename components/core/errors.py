"""
Every error URI of the hub, and the domain errors that carry them.

Components raise domain errors; nothing translates them by hand. Each domain
error is an ``ApplicationError`` whose URI is declared on its class, so a
WAMP procedure that raises one answers the caller with that URI, the message
as the first argument and the error's keyword details (``field``,
``retry_after``) as kwargs. Feature errors subclass the family they belong
to (a bad profile field is an :class:`InvalidArgument`, a database that is
down is :class:`Unavailable`), which is the whole mapping. ``str()`` of a
domain error is its message, for logs, HTTP answers and command lines.
"""

from autobahn.wamp.exception import ApplicationError

INVALID_ARGUMENT = "reactive.error.invalid_argument"
NOT_FOUND = "reactive.error.not_found"
UNAVAILABLE = "reactive.error.unavailable"
RATE_LIMITED = "reactive.error.rate_limited"
NOT_AUTHORIZED = "reactive.error.not_authorized"
INTERNAL = "reactive.error.internal"
# a session asked for more subscriptions or registrations than the router holds for one session
SESSION_LIMIT = "reactive.error.session_limit"

# authentication refusals (the reason follows in the error message)
AUTH_NO_TOKEN = "reactive.error.auth.no_token"
AUTH_INVALID_TOKEN = "reactive.error.auth.invalid_token"
AUTH_EXPIRED = "reactive.error.auth.expired"
AUTH_NOT_YET_VALID = "reactive.error.auth.not_yet_valid"
AUTH_WRONG_ISSUER = "reactive.error.auth.wrong_issuer"
AUTH_WRONG_AUDIENCE = "reactive.error.auth.wrong_audience"
AUTH_UNKNOWN_ROLE = "reactive.error.auth.unknown_role"
AUTH_TOKEN_EXPIRED_SESSION = "reactive.error.auth.session_expired"
AUTH_UNSUPPORTED = "reactive.error.auth.unsupported"
AUTH_LOGIN_REQUIRED = "reactive.error.auth.login_required"
AUTH_BAD_CREDENTIALS = "reactive.error.auth.bad_credentials"
# the directory changed since the token was issued (rights, password, account, logout): refused at join,
# and the close reason of the sessions that were open with it
AUTH_REVOKED = "reactive.error.auth.revoked"
# one authid (user, admin or device) already holds SESSION_MAX_PER_AUTHID sessions: the new join is refused
AUTH_TOO_MANY_SESSIONS = "reactive.error.auth.too_many_sessions"

# the device HTTP bridge (/publish)
DEVICE_REPLAYED = "reactive.error.device.replayed"

# end-to-end encrypted payloads: the browser engine's error for a state it refused to show
# (kwargs.code: auth_failed, unknown_key, malformed, not_encrypted, replayed, nonce_reuse, ...; see web/js/e2e.js)
E2E_REFUSED = "reactive.error.e2e.refused"

# a component that could not start leaves the realm with this reason
COMPONENT_FAILED = UNAVAILABLE


class HubError(ApplicationError):
    """
    A domain error with its WAMP URI: ``uri`` on the class (or passed in,
    for families such as token refusals), ``message`` as the only argument,
    keyword details as WAMP kwargs.
    """

    uri = INTERNAL

    def __init__(self, message, uri=None, **details):
        ApplicationError.__init__(self, uri or self.uri, message, **details)
        self.uri = self.error
        self.message = message

    def __str__(self):
        return self.message


def _family(name, uri, doc):
    """A domain error family: a :class:`HubError` subclass whose instances carry ``uri``."""
    return type(name, (HubError,), {"uri": uri, "__doc__": doc, "__module__": __name__})


InvalidArgument = _family("InvalidArgument", INVALID_ARGUMENT, "Bad input: nothing was changed.")
NotFound = _family("NotFound", NOT_FOUND, "The named thing does not exist.")
Unavailable = _family("Unavailable", UNAVAILABLE,
                      "A service the hub needs (database, queue, a source) cannot be used right now.")
RateLimited = _family("RateLimited", RATE_LIMITED, "Too many requests; ``retry_after`` (seconds) is in the details.")
NotAuthorized = _family("NotAuthorized", NOT_AUTHORIZED, "The caller may not do this.")
AuthRefused = _family("AuthRefused", AUTH_INVALID_TOKEN,
                      "A login or token was refused; ``uri`` is one of the ``AUTH_*`` URIs.")
