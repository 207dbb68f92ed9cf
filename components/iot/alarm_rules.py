"""
Alarm rules and alarm states in the client database (schema ``iot_alarms``).

- ``iot_alarm_rule``: one row per rule: ``id``, ``source`` (an IoT source's
  topic URI), ``kind`` (``above``, ``below`` or ``silent``), ``threshold``
  (the value for above/below, the seconds for silent), ``hysteresis`` (how far
  back past the threshold a value must go to clear) and ``created_ms``.
- ``iot_alarm``: the last known state of each rule's alarm (``raised`` or
  ``cleared``), the value and times of its last change, its ``seq`` on
  ``iot.alarm`` and who acknowledged it since it was last raised. The
  evaluator writes it before it publishes, so a restarted node neither raises
  an alarm again nor forgets one.
- ``iot_alarm_seq``: one row, the last ``seq`` given to a change. A change is
  written only if the alarm's row is still the one its evaluator last knew
  (:meth:`AlarmStore.change`), so evaluators sharing the database (linked
  nodes, router workers) store and publish each change once.
"""

import json
import math

from components.db.migrations import Migration, SchemaOnDemand
from components.core.errors import InvalidArgument, NotFound
from components.db.sql_cursor import POSTGRESQL
from components.iot.history import MAX_SOURCE, kind_of

SCHEMA = "iot_alarms"
KINDS = ("above", "below", "silent")
MAX_SILENT = 366 * 86400.0

_ALARMS = """CREATE TABLE IF NOT EXISTS iot_alarm (
        rule_id BIGINT PRIMARY KEY,
        source VARCHAR(255) NOT NULL,
        state VARCHAR(16) NOT NULL,
        value TEXT NOT NULL,
        raised_ts BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        acked_by VARCHAR(255),
        acked_ts BIGINT
    )"""
_RULE_COLUMNS = """source VARCHAR(255) NOT NULL,
        kind VARCHAR(16) NOT NULL,
        threshold DOUBLE PRECISION NOT NULL,
        hysteresis DOUBLE PRECISION NOT NULL DEFAULT 0,
        created_ms BIGINT NOT NULL"""
_SQLITE = ["CREATE TABLE IF NOT EXISTS iot_alarm_rule (id INTEGER PRIMARY KEY AUTOINCREMENT, "
           + _RULE_COLUMNS + ")", _ALARMS]
_POSTGRESQL = ["CREATE TABLE IF NOT EXISTS iot_alarm_rule (id BIGSERIAL PRIMARY KEY, " + _RULE_COLUMNS + ")",
               _ALARMS]

_SEQ = ["CREATE TABLE IF NOT EXISTS iot_alarm_seq (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL)",
        "INSERT INTO iot_alarm_seq (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM iot_alarm"]

MIGRATIONS = [Migration(1, "IoT alarm rules and the state of each rule's alarm", _SQLITE, _POSTGRESQL),
              Migration(2, "one seq for the alarm changes of every evaluator on the database", _SEQ, _SEQ)]


def check_rule(source, kind, threshold, hysteresis=0.0):
    """The rule ``(source, kind, threshold, hysteresis)`` with floats, or InvalidArgument naming the field."""
    if not isinstance(source, str) or len(source) > MAX_SOURCE or kind_of(source) is None:
        raise InvalidArgument("source must be an IoT topic (iot.serial.reader, iot.odata.value or "
                              "iot.device.<name>), got {!r}".format(str(source)[:80]), field="source")
    if kind not in KINDS:
        raise InvalidArgument("kind must be one of {}".format(", ".join(KINDS)), field="kind")
    for name, number in (("threshold", threshold), ("hysteresis", hysteresis)):
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise InvalidArgument("{} must be a finite number".format(name), field=name)
    if hysteresis < 0:
        raise InvalidArgument("hysteresis must not be negative", field="hysteresis")
    if kind == "silent" and not 0 < threshold <= MAX_SILENT:
        raise InvalidArgument("silent-for must be above 0 and at most {:.0f} seconds".format(MAX_SILENT),
                              field="threshold")
    if kind == "silent" and hysteresis:
        raise InvalidArgument("a silent rule has no hysteresis", field="hysteresis")
    return source, kind, float(threshold), float(hysteresis)


def condition(rule):
    """A rule in words: ``above 80 (hysteresis 2)``, ``below 10``, ``silent for 30 s``."""
    if rule["kind"] == "silent":
        return "silent for {:g} s".format(rule["threshold"])
    text = "{} {:g}".format(rule["kind"], rule["threshold"])
    return text + (" (hysteresis {:g})".format(rule["hysteresis"]) if rule["hysteresis"] else "")


def _rule(row):
    rule_id, source, kind, threshold, hysteresis, created_ms = row
    rule = {"id": rule_id, "source": source, "kind": kind, "threshold": threshold, "hysteresis": hysteresis,
            "created_ms": created_ms}
    rule["condition"] = condition(rule)
    return rule


def _add(cursor, source, kind, threshold, hysteresis, now_ms):
    row = cursor.execute("INSERT INTO iot_alarm_rule (source, kind, threshold, hysteresis, created_ms) "
                         "VALUES (?, ?, ?, ?, ?) RETURNING id",
                         (source, kind, threshold, hysteresis, now_ms)).fetchone()
    return _rule((row[0], source, kind, threshold, hysteresis, now_ms))


def _rules(cursor):
    return [_rule(row) for row in cursor.execute("SELECT id, source, kind, threshold, hysteresis, created_ms "
                                                 "FROM iot_alarm_rule ORDER BY id").fetchall()]


def _remove(cursor, rule_id):
    row = cursor.execute("SELECT id, source, kind, threshold, hysteresis, created_ms FROM iot_alarm_rule "
                         "WHERE id = ?", (rule_id,)).fetchone()
    if row is None:
        raise NotFound("no alarm rule {}".format(rule_id))
    cursor.execute("DELETE FROM iot_alarm_rule WHERE id = ?", (rule_id,))
    return _rule(row)


_COLUMNS = "rule_id, source, state, value, raised_ts, ts, seq, acked_by, acked_ts"


def _row(alarm, seq):
    return (alarm["rule"], alarm["source"], alarm["state"], json.dumps(alarm["value"]), alarm["raised_ts"],
            alarm["ts"], seq, alarm["acked_by"], alarm["acked_ts"])


def _next_seq(cursor, at_least):
    greatest = "GREATEST" if cursor.dialect == POSTGRESQL else "MAX"
    return cursor.execute("UPDATE iot_alarm_seq SET seq = {}(seq + 1, ?) WHERE id = 1 RETURNING seq".format(
        greatest), (at_least,)).fetchone()[0]


def _change(cursor, alarm, base_seq):
    seq = _next_seq(cursor, alarm["seq"])
    if base_seq is None:
        cursor.execute("INSERT INTO iot_alarm ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (rule_id) DO NOTHING".format(_COLUMNS), _row(alarm, seq))
    else:
        cursor.execute("UPDATE iot_alarm SET source = ?, state = ?, value = ?, raised_ts = ?, ts = ?, "
                       "seq = ?, acked_by = ?, acked_ts = ? WHERE rule_id = ? AND seq = ?",
                       _row(alarm, seq)[1:] + (alarm["rule"], base_seq))
    if cursor.rowcount == 1:
        return True, seq
    stored = _alarms(cursor, alarm["rule"])
    return False, stored[0] if stored else None


def _forget(cursor, rule_id):
    cursor.execute("DELETE FROM iot_alarm WHERE rule_id = ?", (rule_id,))


def _alarms(cursor, rule_id=None):
    where, params = ("", ()) if rule_id is None else (" WHERE rule_id = ?", (rule_id,))
    rows = cursor.execute("SELECT {} FROM iot_alarm{} ORDER BY rule_id".format(_COLUMNS, where),
                          params).fetchall()
    return [{"rule": rule_id, "source": source, "state": state, "value": json.loads(value),
             "raised_ts": raised_ts, "ts": ts, "seq": seq, "acked_by": acked_by, "acked_ts": acked_ts}
            for rule_id, source, state, value, raised_ts, ts, seq, acked_by, acked_ts in rows]


class AlarmStore:
    """The alarm tables of ``db`` (:class:`components.db.database.Database`), migrated on first use."""

    def __init__(self, db):
        self.db = db
        self.schema = SchemaOnDemand(db, SCHEMA, MIGRATIONS)

    def add(self, source, kind, threshold, hysteresis, now_ms):
        """Store a new rule (checked by :func:`check_rule`); fire with it as a dict (``id`` set)."""
        return self.schema.run(_add, *check_rule(source, kind, threshold, hysteresis), now_ms)

    def rules(self):
        """Every rule by id, each ``{"id", "source", "kind", "threshold", "hysteresis", "created_ms",
        "condition"}``."""
        return self.schema.run(_rules)

    def remove(self, rule_id):
        """Delete rule ``rule_id``; fire with it, or fail with NotFound."""
        return self.schema.run(_remove, rule_id)

    def change(self, alarm, base_seq):
        """
        Write a change of one rule's alarm (a dict as
        :class:`components.iot.alarm_logic.Evaluator` emits it) if its row's
        seq is still ``base_seq`` (None: no row yet). Fires with ``(True,
        seq)``, the change's seq (at least ``alarm["seq"]``, above any given
        before), or ``(False, stored)`` with the row that is there instead
        (None: none) when another evaluator changed it first.
        """
        return self.schema.run(_change, alarm, base_seq)

    def forget(self, rule_id):
        """Drop the alarm state of a removed rule."""
        return self.schema.run(_forget, rule_id)

    def alarms(self):
        """Every stored alarm state, by rule id."""
        return self.schema.run(_alarms)
