"""
Error URIs the hub raises as ``ApplicationError``; clients match on these.
"""

INVALID_ARGUMENT = "reactive.error.invalid_argument"
NOT_FOUND = "reactive.error.not_found"
UNAVAILABLE = "reactive.error.unavailable"
RATE_LIMITED = "reactive.error.rate_limited"
NOT_AUTHORIZED = "reactive.error.not_authorized"
CONFLICT = "reactive.error.conflict"

# authentication refusals (the reason follows in the error message)
AUTH_NO_TOKEN = "reactive.error.auth.no_token"
AUTH_INVALID_TOKEN = "reactive.error.auth.invalid_token"
AUTH_EXPIRED = "reactive.error.auth.expired"
AUTH_NOT_YET_VALID = "reactive.error.auth.not_yet_valid"
AUTH_WRONG_ISSUER = "reactive.error.auth.wrong_issuer"
AUTH_WRONG_AUDIENCE = "reactive.error.auth.wrong_audience"
AUTH_UNKNOWN_ROLE = "reactive.error.auth.unknown_role"
AUTH_TOKEN_EXPIRED_SESSION = "reactive.error.auth.session_expired"

# the device HTTP bridge (/publish)
DEVICE_REPLAYED = "reactive.error.device.replayed"

# end-to-end encrypted payloads: the browser engine's error for a state it refused to show
# (kwargs.code: auth_failed, unknown_key, malformed, not_encrypted, replayed, nonce_reuse, ...; see web/js/e2e.js)
E2E_REFUSED = "reactive.error.e2e.refused"
