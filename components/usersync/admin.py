"""
What an admin may send to ``master.users.save``: a profile of the user
fields (Django's rules; no control characters in any text field) and an
optional password (the same character rule; hashed, never stored as sent).
"""

from components.auth.directory import ADMIN_FIELDS
from components.usersync.fields import FieldError, check_characters, check_value


def clean_profile(profile):
    """Validate an admin's ``profile`` dict; return ``(fields, password or None)`` or raise FieldError."""
    if not isinstance(profile, dict):
        raise FieldError("profile", "must be an object")
    # str(): keys of a MessagePack or CBOR map need not be strings
    unknown = sorted(str(key)[:80] for key in profile if key not in ADMIN_FIELDS and key != "password")
    if unknown:
        raise FieldError(unknown[0], "is not a user field")
    if "username" not in profile:
        raise FieldError("username", "is required")
    fields = {field: check_value(field, value) for field, value in profile.items() if field != "password"}
    password = profile.get("password")
    if password is not None and (not isinstance(password, str) or not 8 <= len(password) <= 4096):
        raise FieldError("password", "must be a string of at least 8 characters")
    if password is not None:
        check_characters("password", password)
    return fields, password
