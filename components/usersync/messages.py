"""
The wire format of a user change on SNS and SQS, and the strict parser the
client bridge runs on every message before it touches its database.

A change is one JSON object::

    {"type": "user.changed", "action": "insert" | "update" | "delete",
     "version": 7, "ts": 1767225600000,
     "user": {"username": "alice", "first_name": "Alice", ...}}

A revocation (:mod:`components.usersync.revocations`) has the same shape,
with action ``credential`` (``user``: username, version, changed_ms) or
``logout`` (``user``: username, sid, expires_ms); it parses to a
:class:`~components.usersync.revocations.Revocation`.

``version`` increases with every change of that username on the master, so
a client keeps whichever it has seen with the highest version. The body may
arrive raw (``RawMessageDelivery``) or inside an SNS notification envelope.
"""

import json
import math
from collections import namedtuple

from components.usersync import revocations
from components.usersync.fields import SYNCABLE, FieldError, check_value

TYPE = "user.changed"
ACTIONS = ("insert", "update", "delete")
MAX_BYTES = 64 * 1024
MAX_VERSION = 2 ** 62

Change = namedtuple("Change", "action version username user ts")
Change.__doc__ = "One validated change: ``user`` holds the syncable fields that came with it."


class MessageError(ValueError):
    """The message cannot be applied; the text says why."""


def encode(action, version, user, ts):
    """The message body for one outbox event."""
    return json.dumps({"type": TYPE, "action": action, "version": version, "ts": ts, "user": user},
                      separators=(",", ":"), sort_keys=True)


def attributes(action, version, username):
    """SNS/SQS message attributes: filterable without parsing the body."""
    return {
        "action": {"DataType": "String", "StringValue": action},
        "version": {"DataType": "Number", "StringValue": str(version)},
        "username": {"DataType": "String", "StringValue": username},
    }


def unwrap(body):
    """The decoded change object of a raw or SNS-enveloped body."""
    if not isinstance(body, str):
        raise MessageError("body is not text")
    if len(body.encode("utf-8")) > MAX_BYTES:
        raise MessageError("body larger than {} bytes".format(MAX_BYTES))
    data = _json(body)
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        if not isinstance(data["Message"], str):
            raise MessageError("SNS envelope without a text Message")
        data = _json(data["Message"])
    if not isinstance(data, dict):
        raise MessageError("body is not a JSON object")
    return data


def _json(text):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise MessageError("body is not JSON: {}".format(exc))


def parse(body):
    """
    Validate one message body and return its :class:`Change`, or raise
    MessageError: every field value meets the rules of
    :mod:`components.usersync.fields` (so no control character or unpaired
    surrogate reaches a client's database, which PostgreSQL would refuse
    only at the commit), ``ts`` is a finite number.
    """
    data = unwrap(body)
    if data.get("type") != TYPE:
        raise MessageError("type must be {!r}".format(TYPE))
    action = data.get("action")
    if action not in ACTIONS and action not in revocations.ACTIONS:
        raise MessageError("unknown action {!r}".format(action))
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise MessageError("version must be a positive integer")
    ts = data.get("ts", 0)
    # abs() first: a huge integer is too large for isfinite()
    if (not isinstance(ts, (int, float)) or isinstance(ts, bool) or abs(ts) > MAX_VERSION
            or not math.isfinite(ts)):
        raise MessageError("ts must be a finite number")
    user = data.get("user")
    if not isinstance(user, dict):
        raise MessageError("user must be an object")
    if "username" not in user:
        raise MessageError("user.username is missing")
    if action in revocations.ACTIONS:
        try:
            facts = revocations.parse_facts(action, user)
        except ValueError as exc:
            raise MessageError(str(exc))
        return revocations.Revocation(action, version, facts["username"], facts, int(ts))
    clean = {}
    for field, value in user.items():
        if field not in SYNCABLE:
            continue  # tolerate fields newer masters may add; never store them
        try:
            # email syntax is the master's business: a client stores what the master holds
            clean[field] = check_value(field, value, strict_email=False)
        except FieldError as exc:
            raise MessageError("user.{}".format(exc))
    return Change(action, version, clean["username"], clean, int(ts))
