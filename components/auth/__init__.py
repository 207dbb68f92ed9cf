"""
Who may do what: tokens, passwords, the user directory, login sessions and
the ``/auth`` resource, the WAMP authenticators and the key generator.
"""

# the dynamic ticket authenticator of /ws (role "authenticator")
AUTHENTICATE = "reactive.auth.authenticate"
# the dynamic cryptosign authenticator of the router-to-router link (/rlink)
PEER_AUTHENTICATE = "reactive.auth.peer"

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
