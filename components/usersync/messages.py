"""
The wire format of a user change on SNS and SQS, and the strict parser the
client bridge runs on every message before it touches its database.

A change is one JSON object::

    {"type": "user.changed", "action": "insert" | "update" | "delete",
     "version": 7, "ts": 1767225600000,
     "user": {"username": "alice", "first_name": "Alice", ...}}

A revocation (:mod:`components.usersync.revocation_sync`) has the same shape,
with action ``credential`` (``user``: username, version, changed_ms) or
``logout`` (``user``: username, sid, expires_ms); it parses to a
:class:`~components.usersync.revocation_sync.Revocation`.

``version`` increases with every change of that username on the master, so
a client keeps whichever it has seen with the highest version. The body may
arrive raw (``RawMessageDelivery``) or inside an SNS notification envelope.

Every message is signed by the master (:mod:`components.usersync.message_signing`):
:func:`dumps` signs at the one point where messages are serialized, and
:func:`parse` verifies before it looks at anything else; a message that is
not signed by a trusted key, or whose version is beyond ``MAX_VERSION``, is
:class:`Refused`.
"""

import json
import math
from collections import namedtuple

from components.usersync import revocation_sync, message_signing
from components.usersync.fields import DEFAULT_FIELDS, FieldError, check_value

TYPE = "user.changed"
ACTIONS = ("insert", "update", "delete")
MAX_BYTES = 64 * 1024
# versions count one per change of a user on the master, so none comes near this: the largest integer
# every consumer represents exactly (a page's JavaScript ``seq``); anything beyond was not issued by a master
MAX_VERSION = 2 ** 53 - 1
MAX_TS = 2 ** 62

Change = namedtuple("Change", "action version username user ts seq epoch", defaults=(None, None))
Change.__doc__ = ("One validated change: ``user`` holds the syncable fields that came with it; ``seq`` and"
                  " ``epoch`` its place in the master's sequence (None in a message without one).")

# the master's control messages (convergence.py): a snapshot's end marker (an outbox row, numbered like
# every event) and the relay's beacon (how far the master got; not numbered)
SYNC = "user.sync"
SYNCED = "synced"
BEACON = "beacon"
Sync = namedtuple("Sync", "kind epoch seq covers high reply ts")
Sync.__doc__ = ("A validated control message: ``synced`` (``seq``, ``covers``: the highest number its snapshot"
                " supersedes) or ``beacon`` (``high``: the highest number sent, ``reply``: the request queue).")
# several events in one message (encode_pack): at most this many
PACK = "user.pack"
MAX_PACK = 100
# a client's request for a snapshot (requests.py): plain JSON on the master's request queue, never applied
REQUEST = "user.sync_request"
MAX_EPOCH = 64
MAX_URL = 1024


class MessageError(ValueError):
    """The message cannot be applied; the text says why."""


class Refused(MessageError):
    """Not a message of the master (no valid signature, an impossible version): dead-lettered at once."""


def dumps(message, signer):
    """The signed body of ``message`` (a dict): the one place where sync messages are serialized."""
    return json.dumps(signer.sign(message), separators=(",", ":"), sort_keys=True)


def event(action, version, user, ts, seq=None, epoch=None):
    """
    The message object of one outbox event, with its ``seq`` and ``epoch``
    when numbered; the outbox row of a snapshot's end marker (action
    ``synced``, ``user`` = ``{"covers": n}``) becomes a ``user.sync``.
    """
    if action == SYNCED:
        message = {"type": SYNC, "kind": SYNCED, "covers": user["covers"], "ts": ts}
    else:
        message = {"type": TYPE, "action": action, "version": version, "ts": ts, "user": user}
    if seq is not None:
        message.update(seq=seq, epoch=epoch)
    return message


def encode(action, version, user, ts, signer, seq=None, epoch=None):
    """The signed message body for one outbox event (see :func:`event`)."""
    return dumps(event(action, version, user, ts, seq, epoch), signer)


def encode_pack(events, signer):
    """
    The signed body of several events (:func:`event` objects) in one
    message, ``{"type": "user.pack", "events": [...]}``: one publish, one
    signature and one receive for up to ``MAX_PACK`` events (a snapshot's,
    or a burst's); a client applies them as if they came one by one.
    """
    return dumps({"type": PACK, "events": list(events)}, signer)


def beacon(epoch, high, reply, ts, signer):
    """The signed beacon: the master ``epoch`` sent everything up to ``high``; ask for snapshots at ``reply``."""
    return dumps({"type": SYNC, "kind": BEACON, "epoch": epoch, "high": high, "reply": reply or "", "ts": ts},
                 signer)


def attributes(action, version, username):
    """SNS/SQS message attributes: filterable without parsing the body."""
    found = {
        "action": {"DataType": "String", "StringValue": action},
        "version": {"DataType": "Number", "StringValue": str(version)},
    }
    if username:  # a control message names no user (and SNS refuses an empty value)
        found["username"] = {"DataType": "String", "StringValue": username}
    return found


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
    except message_signing.SignatureRefused as exc:
        raise Refused(str(exc))


def _refuse_beyond(version, what):
    if version > MAX_VERSION:
        raise Refused("{} {} is beyond any version a master issues".format(what, version))


def parse_items(body, verifier, tracked=DEFAULT_FIELDS):
    """
    Like :func:`parse`, for a body that may be a pack (:func:`encode_pack`):
    the list of its items, each validated as :func:`parse` validates a
    single message (one invalid event makes the whole pack invalid).
    """
    data = verified(body, verifier)
    if data.get("type") != PACK:
        return [_item(data, tracked)]
    events = data.get("events")
    if not isinstance(events, list) or not 0 < len(events) <= MAX_PACK or \
            not all(isinstance(item, dict) and item.get("type") != PACK for item in events):
        raise MessageError("events must be a list of 1-{} event objects".format(MAX_PACK))
    return [_item(item, tracked) for item in events]


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
    return _item(verified(body, verifier), tracked)


def _item(data, tracked):
    """The Change, Revocation or Sync of one verified message object (see :func:`parse`)."""
    if data.get("type") == SYNC:
        return _sync(data)
    if data.get("type") != TYPE:
        raise MessageError("type must be {!r}".format(TYPE))
    seq, epoch = _sequence(data, required=False)
    action = data.get("action")
    if action not in ACTIONS and action not in revocation_sync.ACTIONS:
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
    if action in revocation_sync.ACTIONS:
        try:
            facts = revocation_sync.parse_facts(action, user)
        except ValueError as exc:
            raise MessageError(str(exc))
        if action == revocation_sync.CREDENTIAL:
            _refuse_beyond(facts["version"], "credential version")
        return revocation_sync.Revocation(action, version, facts["username"], facts, int(ts), seq, epoch)
    clean = {}
    for field, value in user.items():
        if field not in tracked:
            continue  # not synced here, or newer than this client: never stored
        try:
            # email syntax is the master's business: a client stores what the master holds
            clean[field] = check_value(field, value, strict_email=False)
        except FieldError as exc:
            raise MessageError("user.{}".format(exc))
    return Change(action, version, clean["username"], clean, int(ts), seq, epoch)


def _count(data, name, minimum=0):
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_VERSION:
        raise MessageError("{} must be an integer from {} to {}".format(name, minimum, MAX_VERSION))
    return value


def _sequence(data, required):
    """``(seq, epoch)`` of a numbered message, ``(None, None)`` for one without (unless ``required``)."""
    if "seq" not in data and "epoch" not in data and not required:
        return None, None
    epoch = data.get("epoch")
    if not isinstance(epoch, str) or not 0 < len(epoch) <= MAX_EPOCH or not epoch.isascii() \
            or not epoch.isprintable():
        raise MessageError("epoch must be 1-{} printable ASCII characters".format(MAX_EPOCH))
    return (_count(data, "seq", 1) if "seq" in data or required else None), epoch


def _sync(data):
    """The :class:`Sync` of a validated ``user.sync`` message."""
    kind = data.get("kind")
    ts = data.get("ts", 0)
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts <= MAX_TS:
        raise MessageError("ts must be a non-negative integer")
    if kind == SYNCED:
        seq, epoch = _sequence(data, required=True)
        return Sync(SYNCED, epoch, seq, _count(data, "covers"), None, None, ts)
    if kind == BEACON:
        _, epoch = _sequence(dict(data, seq=1), required=True)
        reply = data.get("reply", "")
        if not isinstance(reply, str) or len(reply) > MAX_URL or not reply.isascii() or not reply.isprintable() \
                or (reply and not reply.startswith(("https://", "http://"))):
            raise MessageError("reply must be an http(s) URL")
        return Sync(BEACON, epoch, None, None, _count(data, "high"), reply, ts)
    raise MessageError("unknown sync kind {!r}".format(kind))


def request(client, epoch, mark, high, reason):
    """A client's snapshot request (plain JSON: it asks, it changes nothing)."""
    return json.dumps({"type": REQUEST, "client": client, "epoch": epoch, "mark": mark, "high": high,
                       "reason": reason}, separators=(",", ":"), sort_keys=True)


def parse_request(body):
    """``{"client", "mark", "high", "reason"}`` of a snapshot request (values made printable), else MessageError."""
    data = unwrap(body)
    if data.get("type") != REQUEST:
        raise MessageError("not a snapshot request")
    found = {}
    for name, limit in (("client", 80), ("reason", 200), ("epoch", MAX_EPOCH)):
        value = data.get(name)
        found[name] = value[:limit] if isinstance(value, str) and value.isprintable() else "?"
    for name in ("mark", "high"):
        value = data.get(name)
        found[name] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return found
