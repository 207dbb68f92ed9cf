"""
End-to-end encrypted payloads: only the publishing component and the user's
own browser can read or alter them (see ``envelope`` for the format and
``keys`` for per-user data keys wrapped under a key-encryption key).
"""
