"""
End-to-end encrypted payloads: only the publishing component and the user's
own browser can read or alter them (see ``envelope`` for the format and
``keys`` for per-user data keys wrapped under a key-encryption key).
"""

# end-to-end encrypted payloads: the browser engine's error for a state it refused to show
# (kwargs.code: auth_failed, unknown_key, malformed, not_encrypted, replayed, nonce_reuse, ...; see web/js/e2e.js)
E2E_REFUSED = "reactive.error.e2e.refused"
