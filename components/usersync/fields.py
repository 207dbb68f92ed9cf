"""
The user fields that travel from the master to the clients, and the rules a
value must meet (Django's ``auth_user``: username characters and lengths,
email syntax, field lengths). Text fields also refuse what no database
column takes or what no name or address holds: control characters (NUL and
the other C0 characters except tab) and unpaired surrogates, which
PostgreSQL would refuse only after the change had been accepted.
"""

import re

from components.core.errors import InvalidArgument

DEFAULT_FIELDS = ("username", "first_name", "last_name", "email", "is_active")
# every column a client may receive; password, last_login, date_joined never travel
SYNCABLE = ("username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser")
BOOLEANS = frozenset(("is_active", "is_staff", "is_superuser"))
LENGTHS = {"username": 150, "first_name": 150, "last_name": 150, "email": 254}

USERNAME = re.compile(r"^[\w.@+-]+\Z")
_EMAIL_USER = re.compile(
    r"(^[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*\Z"
    r'|^"([\001-\010\013\014\016-\037!#-\[\]-\177]|\\[\001-\011\013\014\016-\177])*"\Z)',
    re.IGNORECASE)
_EMAIL_DOMAIN = re.compile(
    r"((?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+)(?:[A-Z0-9-]{2,63}(?<!-))\Z", re.IGNORECASE)
_EMAIL_LITERAL = re.compile(r"\[[0-9a-f:.]+\]\Z", re.IGNORECASE)
# NUL and the C0 controls except tab
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")


class FieldError(InvalidArgument):
    """A value breaks a field rule; ``field`` names the field (also in the WAMP error's kwargs)."""

    def __init__(self, field, message):
        InvalidArgument.__init__(self, "{}: {}".format(field, message), field=field)
        self.field = field


def parse_fields(text):
    """
    The tracked fields from a comma-separated setting (empty: the defaults).
    ``username`` is always tracked: it identifies the user everywhere.
    """
    names = [name.strip() for name in (text or "").split(",") if name.strip()]
    if not names:
        return DEFAULT_FIELDS
    unknown = [name for name in names if name not in SYNCABLE]
    if unknown:
        raise ValueError("cannot track {} (choose from {})".format(", ".join(map(repr, unknown)), ", ".join(SYNCABLE)))
    if "username" not in names:
        names.insert(0, "username")
    return tuple(dict.fromkeys(names))


def check_characters(field, value):
    """``value`` (a string) if it has no control character and is valid Unicode, else FieldError."""
    if CONTROL.search(value):
        raise FieldError(field, "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(field, "must be valid Unicode text (no unpaired surrogates)")
    return value


def check_username(value):
    if not isinstance(value, str):
        raise FieldError("username", "must be a string")
    check_characters("username", value)
    if not 1 <= len(value) <= LENGTHS["username"] or not USERNAME.match(value):
        raise FieldError("username", "must be 1-150 letters, digits or @.+-_")
    return value


def check_email(value):
    """Django's EmailValidator in short; the empty string is allowed (the field is optional)."""
    check_text("email", value)
    if value == "":
        return value
    user, _, domain = value.rpartition("@")
    if not user or not domain or not _EMAIL_USER.match(user):
        raise FieldError("email", "is not a valid email address")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise FieldError("email", "is not a valid email address")
    if not (_EMAIL_DOMAIN.match(ascii_domain) or _EMAIL_LITERAL.match(domain)):
        raise FieldError("email", "is not a valid email address")
    return value


def check_text(field, value):
    if not isinstance(value, str):
        raise FieldError(field, "must be a string")
    if len(value) > LENGTHS[field]:
        raise FieldError(field, "must have at most {} characters".format(LENGTHS[field]))
    return check_characters(field, value)


def check_bool(field, value):
    if not isinstance(value, bool):
        raise FieldError(field, "must be true or false")
    return value


def check_value(field, value, strict_email=True):
    """Validate one syncable field; email syntax only when ``strict_email``."""
    if field == "username":
        return check_username(value)
    if field in BOOLEANS:
        return check_bool(field, value)
    if field == "email" and strict_email:
        return check_email(value)
    if field in LENGTHS:
        return check_text(field, value)
    raise FieldError(field, "is not a user field")


def clean_user(user, strict_email=False):
    """
    The syncable fields of ``user`` (a dict) after :func:`check_value`, the
    rest dropped (fields newer masters may add are never stored); FieldError
    names the first field a client could not store. The master runs it on
    every event before relaying it, a client on every message it receives.
    """
    clean = {}
    for field, value in user.items():
        if field in SYNCABLE:
            clean[field] = check_value(field, value, strict_email=strict_email)
    if "username" not in clean:
        raise FieldError("username", "is missing")
    return clean
