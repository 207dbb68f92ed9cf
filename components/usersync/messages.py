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

Every message is signed by the master (:mod:`components.usersync.signing`):
:func:`dumps` signs at the one point where messages are serialized, and
:func:`parse` verifies before it looks at anything else; a message that is
not signed by a trusted key, or whose version is beyond ``MAX_VERSION``, is
:class:`Refused`.
"""

import json
import math
from collections import namedtuple

from components.usersync import revocations, signing
from components.usersync.fields import DEFAULT_FIELDS, FieldError, check_value

TYPE = "user.changed"
ACTIONS = ("insert", "update", "delete")
MAX_BYTES = 64 * 1024
# versions count one per change of a user on the master, so none comes near this: the largest integer
# every consumer represents exactly (a page's JavaScript ``seq``); anything beyond was not issued by a master
MAX_VERSION = 2 ** 53 - 1
MAX_TS = 2 ** 62

Change = namedtuple("Change", "action version username user ts")
Change.__doc__ = "One validated change: ``user`` holds the syncable fields that came with it."


class MessageError(ValueError):
    """The message cannot be applied; the text says why."""


class Refused(MessageError):
    """Not a message of the master (no valid signature, an impossible version): dead-lettered at once."""


def dumps(message, signer):
    """The signed body of ``message`` (a dict): the one place where sync messages are serialized."""
    return json.dumps(signer.sign(message), separators=(",", ":"), sort_keys=True)


def encode(action, version, user, ts, signer):
    """The signed message body for one outbox event."""
    return dumps({"type": TYPE, "action": action, "version": version, "ts": ts, "user": user}, signer)


def attributes(action, version, username):
    """SNS/SQS message attributes: filterable without parsing the body."""
    return {
        "action": {"DataType": "String", "StringValue": action},
        "version": {"DataType": "Number", "StringValue": str(version)},
        "username": {"DataType": "String", "StringValue": username},
    }


def unwrap(body):
    """
    The decoded message object of a raw or SNS-enveloped body; Refused when
    it is none (nothing a master sends fails here).
    """
    if not isinstance(body, str):
        raise Refused("body is not text")
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise Refused("body larger than {} bytes".format(MAX_BYTES))
    data = _json(body)
    if isinstance(data, dict) and data.get("Type") == "Notification" and "Message" in data:
        if not isinstance(data["Message"], str):
            raise Refused("SNS envelope without a text Message")
        data = _json(data["Message"])
    if not isinstance(data, dict):
        raise Refused("body is not a JSON object")
    return data


def _json(text):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise Refused("body is not JSON: {}".format(exc))


def verified(body, verifier):
    """The message object of ``body`` once ``verifier`` found the master's signature on it, else Refused."""
    data = unwrap(body)
    try:
        return verifier.verify(data)
    except signing.SignatureRefused as exc:
        raise Refused(str(exc))


def _refuse_beyond(version, what):
    if version > MAX_VERSION:
        raise Refused("{} {} is beyond any version a master issues".format(what, version))


def parse(body, verifier, tracked=DEFAULT_FIELDS):
    """
    Verify and validate one message body and return its :class:`Change`
    (or Revocation): Refused unless the master's signature is on it
    (``verifier``) and its versions are at most ``MAX_VERSION``;
    MessageError unless every field value meets the rules of
    :mod:`components.usersync.fields` (so no control character or unpaired
    surrogate reaches a client's database, which PostgreSQL would refuse
    only at the commit) and ``ts`` is a finite number. The change keeps
    only the ``tracked`` fields (this client's ``USERSYNC_FIELDS``): a flag
    such as ``is_superuser`` is stored only where it is configured.
    """
    data = verified(body, verifier)
    if data.get("type") != TYPE:
        raise MessageError("type must be {!r}".format(TYPE))
    action = data.get("action")
    if action not in ACTIONS and action not in revocations.ACTIONS:
        raise MessageError("unknown action {!r}".format(action))
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MessageError("version must be a positive integer")
    _refuse_beyond(version, "version")
    ts = data.get("ts", 0)
    # abs() first: a huge integer is too large for isfinite()
    if (not isinstance(ts, (int, float)) or isinstance(ts, bool) or abs(ts) > MAX_TS
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
        if action == revocations.CREDENTIAL:
            _refuse_beyond(facts["version"], "credential version")
        return revocations.Revocation(action, version, facts["username"], facts, int(ts))
    clean = {}
    for field, value in user.items():
        if field not in tracked:
            continue  # not synced here, or newer than this client: never stored
        try:
            # email syntax is the master's business: a client stores what the master holds
            clean[field] = check_value(field, value, strict_email=False)
        except FieldError as exc:
            raise MessageError("user.{}".format(exc))
    return Change(action, version, clean["username"], clean, int(ts))
