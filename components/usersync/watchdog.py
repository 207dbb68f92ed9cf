"""
The capture watchdog on the master: every ``USERSYNC_TRIGGER_CHECK``
seconds (default 10) it looks whether the user table and every hub trigger
on it are still there. Django's ``migrate auth zero`` then ``migrate``, a
drop and re-create of the table or a restore from a dump without triggers
remove them silently; later writes would then never leave the master.

- trigger missing: logged (naming the table and the triggers), the triggers
  reinstalled, and the gap resynced (a ``bump`` snapshot, see
  :mod:`snapshot`), all in one check;
- table missing: logged once, and checked again until it is back, then
  repaired as above.

While something is missing the watchdog keeps a small JSON file
(:data:`STATE_FILE`) in the node directory naming it; ``/health/ready``
(:mod:`components.ops.health`) reads it and answers 503 naming the table
and the triggers. The file is removed once the triggers are back.
"""

import json
import os

from twisted.internet import defer, task
from twisted.logger import Logger

from components.auth import directory
from components.db.database import POSTGRESQL

STATE_FILE = "usersync-capture.json"


def trigger_state(cursor, table, expected):
    """None when ``table`` does not exist, else the names in ``expected`` that are not triggers on it."""
    if directory.columns_of(cursor, table) is None:
        return None
    if cursor.dialect == POSTGRESQL:
        rows = cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(?)"
                              " AND NOT tgisinternal", (table,)).fetchall()
    else:
        rows = cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                              " AND tbl_name = ? COLLATE NOCASE", (table,)).fetchall()
    present = {name for (name,) in rows}
    return [name for name in expected if name not in present]


def write_state(path, state):
    """Write ``state`` (a dict) to ``path`` atomically, or remove the file for None."""
    if state is None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        return
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(state, handle, sort_keys=True)
    os.replace(temporary, path)


def read_state(path):
    """The state a watchdog wrote at ``path``, or None (no file, or unreadable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


class CaptureWatch:
    """
    Checks ``table`` in ``db`` every ``interval`` seconds for the trigger
    names ``expected`` (a list for the database's dialect); on a loss runs
    ``repair()`` (a Deferred: reinstall, then queue the gap snapshot, firing
    with a text that says what it queued) and logs both. ``state_path``: the
    file /health/ready reads (None: none written).
    """

    log = Logger()

    def __init__(self, db, reactor, table, expected, repair, interval=10.0, state_path=None):
        self.db = db
        self.reactor = reactor
        self.table = table
        self.expected = list(expected)
        self.repair = repair
        self.interval = interval
        self.state_path = state_path
        self.missing = []
        self.table_missing = False
        self.repairs = 0
        self.loop = None

    def start(self):
        self.loop = task.LoopingCall(self.check)
        self.loop.clock = self.reactor
        self.loop.start(self.interval, now=False).addErrback(
            lambda failure: self.log.failure("usersync watchdog stopped", failure=failure))

    def stop(self):
        if self.loop is not None and self.loop.running:
            self.loop.stop()

    def _state(self, missing, table_missing):
        self.missing, self.table_missing = missing, table_missing
        if self.state_path is None:
            return
        state = None
        if table_missing:
            state = {"table": self.table, "table_missing": True, "missing": self.expected}
        elif missing:
            state = {"table": self.table, "table_missing": False, "missing": missing}
        try:
            write_state(self.state_path, state)
        except OSError as exc:
            self.log.warn("usersync watchdog: cannot write {path}: {error}", path=self.state_path, error=exc)

    @defer.inlineCallbacks
    def check(self):
        """One look (and repair when needed); never fails (a database error is logged, retried next time)."""
        try:
            missing = yield self.db.run(trigger_state, self.table, self.expected)
        except Exception as exc:
            self.log.warn("usersync watchdog: cannot check the triggers on {table}: {error}",
                          table=self.table, error=exc)
            return
        if missing is None:
            if not self.table_missing:
                self.log.error("usersync watchdog: the user table {table} is gone; its changes are not "
                               "captured until it is back (then its triggers are reinstalled and the gap "
                               "resynced)",
                               table=self.table)
            self._state(list(self.expected), True)
            return
        if not missing and not self.table_missing:
            if self.missing:
                self._state([], False)
            return
        lost = missing or list(self.expected)
        self._state(lost, False)
        self.log.error("usersync watchdog: triggers {names} missing on {table} (the table was dropped and "
                       "re-created, or restored); reinstalling them and resyncing the gap",
                       names=", ".join(lost), table=self.table)
        try:
            report = yield self.repair()
        except Exception as exc:
            self.log.error("usersync watchdog: repair of {table} failed ({error}); trying again in "
                           "{interval}s", table=self.table, error=exc, interval=self.interval)
            return
        self.repairs += 1
        self._state([], False)
        self.log.info("usersync watchdog: triggers on {table} reinstalled; {report}", table=self.table,
                      report=report)
