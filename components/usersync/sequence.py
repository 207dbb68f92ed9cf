"""
The master's message sequence, so that a client can tell what it missed.

Every event the relay sends carries ``seq``: one counter per master outbox,
assigned at the first send attempt in claim order and kept for resends (a
resend carries the same number), and ``epoch``: the outbox's random id, so
a client notices a different master (a restored or replaced database) and
starts over. A client that holds every number up to the highest one it
knows of holds every change; a hole is a lost message (see
:mod:`convergence`). ``high`` is the highest number SNS has accepted,
announced in the relay's beacons.

Before a number is given, every event is screened with the clients' own
rules (:func:`screen`): an event no client could store (a username Django's
ORM took but the hub's rules refuse, a control character in a name) is not
relayed but refused on the master at once: kept in the outbox with the
reason (``refused``), counted (``refused_total``), and handed back to the
relay to log, instead of dead-lettering on every client after its receive
count ran out.
"""

import json
import uuid

from components.db.migrations import Migration
from components.usersync import messages, revocation_sync
from components.usersync.fields import FieldError, clean_user

_STATE = """CREATE TABLE IF NOT EXISTS usersync_relay_state (
    id INTEGER PRIMARY KEY,
    epoch VARCHAR(40) NOT NULL,
    next_seq BIGINT NOT NULL,
    high BIGINT NOT NULL,
    refused_total BIGINT NOT NULL DEFAULT 0)"""

MIGRATION = Migration(
    3, "message sequence numbers and refused events",
    sqlite=["ALTER TABLE usersync_outbox ADD COLUMN seq BIGINT NULL",
            "ALTER TABLE usersync_outbox ADD COLUMN refused TEXT NULL", _STATE],
    postgresql=["ALTER TABLE usersync_outbox ADD COLUMN IF NOT EXISTS seq BIGINT NULL",
                "ALTER TABLE usersync_outbox ADD COLUMN IF NOT EXISTS refused TEXT NULL", _STATE])

# the outbox row of a snapshot's end marker (see snapshot.py): no user, its own action
MARKER = messages.SYNCED


def state(cursor):
    """``(epoch, next_seq, high, refused_total)`` of this outbox, created on first use."""
    cursor.execute("INSERT INTO usersync_relay_state (id, epoch, next_seq, high, refused_total)"
                   " VALUES (1, ?, 1, 0, 0) ON CONFLICT (id) DO NOTHING", (uuid.uuid4().hex,))
    epoch, next_seq, high, refused = cursor.execute(
        "SELECT epoch, next_seq, high, refused_total FROM usersync_relay_state WHERE id = 1").fetchone()
    return epoch, int(next_seq), int(high), int(refused)


def epoch(cursor):
    return state(cursor)[0]


def assigned(cursor):
    """The highest number given so far: every event under it was committed before this was read."""
    return state(cursor)[1] - 1


def high(cursor):
    """``(epoch, highest number SNS accepted)``."""
    found = state(cursor)
    return found[0], found[2]


def check_event(action, payload):
    """None when a client can store the event, else ``(field, reason)``."""
    if action == MARKER:
        return None
    if action in revocation_sync.ACTIONS:
        try:
            revocation_sync.parse_facts(action, payload)
        except ValueError as exc:
            return "user", str(exc)
        return None
    try:
        clean_user(payload)
    except FieldError as exc:
        return exc.field, str(exc)
    return None


def screen(cursor, rows, now_ms):
    """
    Split claimed outbox rows: the storable ones are returned; each other
    one is settled as refused (``sent_ms`` set, so it is never claimed again
    and is purged with the sent ones; ``refused`` holds the reason) and
    listed as ``(username, action, version, field, reason)`` in the second
    value.
    """
    good, refusals = [], []
    for row in rows:
        try:
            found = check_event(row[2], json.loads(row[4]))
        except ValueError:
            found = ("payload", "not JSON")
        if found is None:
            good.append(row)
            continue
        field, reason = found
        cursor.execute("UPDATE usersync_outbox SET sent_ms = ?, refused = ?, attempts = attempts + 1 WHERE id = ?",
                       (now_ms, "{}: {}".format(field, reason)[:500], row[0]))
        refusals.append((row[1], row[2], int(row[3]), field, reason))
    if refusals:
        state(cursor)
        cursor.execute("UPDATE usersync_relay_state SET refused_total = refused_total + ? WHERE id = 1",
                       (len(refusals),))
    return good, refusals


def number(cursor, rows):
    """
    ``rows`` (outbox rows) with their sequence number and the epoch appended: the one a
    row got at an earlier attempt, else the next ones of the counter (taken
    under its row lock, so concurrent relays on PostgreSQL never share one).
    """
    if not rows:
        return []
    marks = ", ".join("?" for _ in rows)
    known = dict(cursor.execute("SELECT id, seq FROM usersync_outbox WHERE id IN ({}) AND seq IS NOT NULL".format(
        marks), [row[0] for row in rows]).fetchall())
    fresh = [row for row in rows if row[0] not in known]
    if fresh:
        state(cursor)
        cursor.execute("UPDATE usersync_relay_state SET next_seq = next_seq + ? WHERE id = 1", (len(fresh),))
        first = int(cursor.execute("SELECT next_seq FROM usersync_relay_state WHERE id = 1").fetchone()[0]) - len(fresh)
        for offset, row in enumerate(fresh):
            known[row[0]] = first + offset
            cursor.execute("UPDATE usersync_outbox SET seq = ? WHERE id = ?", (first + offset, row[0]))
    current = epoch(cursor)
    return [tuple(row) + (int(known[row[0]]), current) for row in rows]


def note_sent(cursor, seqs):
    """Raise ``high`` to the highest of ``seqs`` (numbers SNS accepted)."""
    if seqs:
        top = max(seqs)
        cursor.execute("UPDATE usersync_relay_state SET high = ? WHERE id = 1 AND high < ?", (top, top))


def refusals(cursor):
    """
    ``(refused_total, refused events still in the outbox, the newest one's
    (username, action, reason) or None)``; None where no relay ever ran.
    """
    row = cursor.execute("SELECT refused_total FROM usersync_relay_state WHERE id = 1").fetchone()
    if row is None:
        return None
    total = int(row[0])
    kept = cursor.execute("SELECT COUNT(*) FROM usersync_outbox WHERE refused IS NOT NULL").fetchone()[0]
    newest = cursor.execute("SELECT username, action, refused FROM usersync_outbox WHERE refused IS NOT NULL"
                            " ORDER BY id DESC LIMIT 1").fetchone()
    return total, int(kept), (tuple(newest) if newest else None)
