"""
A master database restored from a backup, made safe for clients that saw
what came after the backup (``reactive-hub sync restored``).

The restored database has forgotten the versions it issued after the
backup, and would issue them again: a client that applied the lost ones
would take the next changes of those users (a deactivation included) as
not newer, and its place in the master's message sequence would be ahead
of the master. So, in one transaction:

- the version floor (:func:`components.auth.credentials.version_floor`)
  rises to the highest version the database knows plus :data:`STEP`
  (2**32), above anything a client can hold unless 4 billion changes of one
  user were lost;
- every credential version moves above the floor and every login session
  ends: tokens issued before the restore to the users it knows are refused
  everywhere, as the logouts and password changes after the backup are
  lost;
- the relay numbers its messages in a new epoch from 1 (its count of
  refused events is kept), and events not yet sent lose their old numbers;

and the triggers are installed again with the new floor; then a snapshot
is queued at every user's next version, above the floor: each client takes
the restored state, names deleted since the backup included. A name the
restored database never knew (created after the backup) stays on the
clients that saw it, and a token issued to it before the crash stays valid
there until it expires (``JWT_TTL``): there is no credential version of it
to move. Created again on the master, its profile lands above the floor
and replaces the first one's there. If the command fails midway (the
snapshot commits in batches), run it again before the node starts.
"""

import uuid

from twisted.internet import defer

from components.auth import credentials
from components.usersync import master, sequence, snapshot

STEP = 2 ** 32


def _highest_version(cursor):
    found = [credentials.version_floor(cursor)]
    for table in ("usersync_version", "hub_credential"):
        row = cursor.execute("SELECT MAX(version) FROM {}".format(table)).fetchone()
        found.append(int(row[0] or 0))
    return max(found)


def raise_floor(cursor, table, step=STEP):
    """
    The restore's transaction: the floor raised, credential versions moved
    above it, login sessions ended, a new epoch; fires with
    ``(floor, former epoch or None, credential versions moved)``.
    """
    floor = credentials.raise_version_floor(cursor, _highest_version(cursor) + step)
    moved = credentials.revoke_everyone(cursor, table)
    row = cursor.execute("SELECT epoch FROM usersync_relay_state WHERE id = 1").fetchone()
    # a new epoch counted from 1; the count of refused events (a metric) is kept
    cursor.execute("UPDATE usersync_relay_state SET epoch = ?, next_seq = 1, high = 0 WHERE id = 1",
                   (uuid.uuid4().hex,))
    cursor.execute("UPDATE usersync_outbox SET seq = NULL WHERE sent_ms IS NULL")
    return floor, (row[0] if row else None), moved


@defer.inlineCallbacks
def restored(db, user_table, fields, include_staff, batch=snapshot.BATCH, progress=None):
    """
    Make the master database ``db`` safe after a restore (the module's
    steps); fires with ``{"floor", "former_epoch", "epoch",
    "credentials_moved", "users", "gone", "credentials", "logouts"}``.
    """
    def raise_and_install(cursor):
        found = raise_floor(cursor, user_table.name)
        master.install(cursor, user_table, fields, include_staff, True)
        return found
    floor, former, moved = yield db.run(raise_and_install)
    totals = yield snapshot.run(db, user_table.name, fields, include_staff, bump=True, batch=batch,
                                progress=progress)
    epoch = yield db.run(sequence.epoch)
    return dict(totals, floor=floor, former_epoch=former, epoch=epoch, credentials_moved=moved)
