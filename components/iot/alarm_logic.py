"""
The alarm rules at work, on an injected clock (no I/O): :class:`Evaluator`
is handed the rules and every state of the IoT sources, and calls
``emit(event)`` for each change of an alarm, with its own ``seq`` and ``ts``.

- ``above X``: raised by a reading above X, cleared by one at or below
  ``X - hysteresis``; ``below X``: raised below X, cleared at or above
  ``X + hysteresis``. Readings are numbers or numeric text (OData's
  ``"42"``); other values and states marked ``stale`` (or ``live: false``)
  are no readings.
- ``silent for S``: raised when no reading came for S seconds (counted from
  the last reading, or from when the evaluator got the rule), cleared by the
  next reading.

An event is ``{"source", "rule", "condition", "state": "raised"|"cleared",
"change": "raised"|"cleared"|"acked"|"removed", "value", "ts", "seq",
"raised_ts", "acked_by", "acked_ts"}``. An acknowledgement republishes the
alarm (``change: "acked"``); a removed rule's raised alarm is cleared
(``change: "removed"``). An alarm is listed by :meth:`Evaluator.listed`
while raised, and after it cleared until it is acknowledged.

Evaluators sharing a database (:mod:`components.iot.alarm_sync`) tell it
which changes were stored (:meth:`Evaluator.written`) and hand it the
changes another evaluator stored first (:meth:`Evaluator.adopt`).
"""

import math

from components.core.errors import NotFound
from components.core.state import epoch_ms

RAISED = "raised"
CLEARED = "cleared"


def reading(state):
    """The number a source's state carries, else None (stale, not live, not numeric)."""
    if not isinstance(state, dict) or state.get("stale") is True or state.get("live") is False:
        return None
    value = state.get("value")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def is_fresh(state):
    """Whether a state is a reading for a silence rule (any state not marked stale or offline)."""
    return isinstance(state, dict) and state.get("stale") is not True and state.get("live") is not False


def crossed(rule, value, raised):
    """The new raised/not raised of a threshold ``rule`` after ``value`` (None: no change)."""
    threshold, hysteresis = rule["threshold"], rule["hysteresis"]
    if rule["kind"] == "above":
        if not raised and value > threshold:
            return True
        if raised and value <= threshold - hysteresis:
            return False
    elif rule["kind"] == "below":
        if not raised and value < threshold:
            return True
        if raised and value >= threshold + hysteresis:
            return False
    return None


class Evaluator:
    """The alarms of a set of rules (module doc); ``clock`` provides ``seconds()`` and ``callLater``."""

    def __init__(self, clock, emit):
        self.clock = clock
        self.emit = emit
        self.rules = {}
        self.alarms = {}
        self.timers = {}
        self.last_value = {}
        self.seq = 0
        self.stored = {}
        self.lineage = {}

    def restore(self, alarms):
        """Take the stored alarm states (before the first rules): a raised one stays raised, no new event."""
        for alarm in alarms:
            self.adopt(alarm)

    def adopt(self, alarm, rule_id=None):
        """
        Take an alarm state stored by another evaluator (``None``: rule
        ``rule_id``'s state was forgotten) unless it is older than the stored
        one known here; no event. Returns whether it was taken; changes of
        that rule emitted before then are superseded (``lineage`` moves on).
        """
        if alarm is None:
            self.alarms.pop(rule_id, None)
            self.stored.pop(rule_id, None)
            self.lineage[rule_id] = self.lineage.get(rule_id, 0) + 1
            return True
        rule_id = alarm["rule"]
        if alarm["seq"] <= self.stored.get(rule_id, -1):
            return False
        taken = {key: alarm[key] for key in ("rule", "source", "state", "value", "raised_ts", "ts", "seq",
                                              "acked_by", "acked_ts")}
        rule = self.rules.get(rule_id)
        if rule is not None:
            taken["condition"] = rule["condition"]
        self.alarms[rule_id] = taken
        self.stored[rule_id] = alarm["seq"]
        self.lineage[rule_id] = self.lineage.get(rule_id, 0) + 1
        self.seq = max(self.seq, alarm["seq"])
        timer = self.timers.get(rule_id)
        if rule is not None and rule["kind"] == "silent" and not self._raised(rule_id) \
                and (timer is None or not timer.active()):
            self._arm(rule)
        return True

    def written(self, event, seq):
        """Change ``event`` was stored with ``seq`` (at least its own): the alarm and topic seq follow."""
        rule_id = event["rule"]
        self.stored[rule_id] = seq
        self.seq = max(self.seq, seq)
        alarm = self.alarms.get(rule_id)
        if alarm is not None and alarm["seq"] == event["seq"]:
            alarm["seq"] = seq

    def set_rules(self, rules):
        """
        Start evaluating ``rules`` (the full list); a removed rule's raised
        alarm is cleared. Returns the rule ids whose alarm state is forgotten.
        """
        wanted = {rule["id"]: rule for rule in rules}
        gone = sorted(set(self.rules) - set(wanted))
        for rule_id in gone:
            self._drop(rule_id)
        for rule_id, rule in sorted(wanted.items()):
            if rule_id in self.rules:
                continue
            self.rules[rule_id] = rule
            alarm = self.alarms.get(rule_id)
            if alarm is not None:
                alarm["condition"] = rule["condition"]
            if rule["kind"] == "silent" and not self._raised(rule_id):
                self._arm(rule)
        orphans = sorted(set(self.alarms) - set(wanted))
        for rule_id in orphans:
            self.alarms.pop(rule_id)  # stored for a rule that is gone: nothing to clear here
        return gone + orphans

    def state(self, source, state):
        """A state published on ``source``: evaluate that source's rules."""
        value = reading(state)
        fresh = is_fresh(state)
        if fresh:
            self.last_value[source] = state.get("value")
        for rule_id, rule in sorted(self.rules.items()):
            if rule["source"] != source:
                continue
            if rule["kind"] == "silent":
                if not fresh:
                    continue
                if self._raised(rule_id):
                    self._change(rule, CLEARED, CLEARED, state.get("value"))
                self._arm(rule)
            elif value is not None:
                change = crossed(rule, value, self._raised(rule_id))
                if change is not None:
                    self._change(rule, RAISED if change else CLEARED, RAISED if change else CLEARED, value)

    def ack(self, rule_id, by):
        """Acknowledge an alarm for ``by``; returns it (an event when it changed), else NotFound."""
        alarm = self.alarms.get(rule_id)
        if alarm is None or rule_id not in self.rules:
            raise NotFound("no alarm of rule {} to acknowledge".format(rule_id))
        if alarm["acked_by"]:
            return dict(alarm)
        alarm.update(acked_by=by, acked_ts=self._now())
        return self._publish(alarm, "acked")

    def listed(self):
        """The alarms to show: raised ones, and cleared ones not acknowledged since they were raised."""
        return [dict(alarm) for _, alarm in sorted(self.alarms.items()) if self._listed(alarm)]

    def stop(self):
        for timer in self.timers.values():
            if timer.active():
                timer.cancel()
        self.timers.clear()

    @staticmethod
    def _listed(alarm):
        return alarm["state"] == RAISED or not alarm["acked_by"]

    def _raised(self, rule_id):
        alarm = self.alarms.get(rule_id)
        return alarm is not None and alarm["state"] == RAISED

    def _now(self):
        return epoch_ms(self.clock.seconds)

    def _arm(self, rule):
        timer = self.timers.get(rule["id"])
        if timer is not None and timer.active():
            timer.cancel()
        self.timers[rule["id"]] = self.clock.callLater(rule["threshold"], self._silent, rule["id"])

    def _silent(self, rule_id):
        self.timers.pop(rule_id, None)
        rule = self.rules.get(rule_id)
        if rule is not None and not self._raised(rule_id):
            self._change(rule, RAISED, RAISED, self.last_value.get(rule["source"]))

    def _drop(self, rule_id):
        rule = self.rules.pop(rule_id)
        timer = self.timers.pop(rule_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        alarm = self.alarms.pop(rule_id, None)
        if alarm is not None and alarm["state"] == RAISED:
            alarm.update(state=CLEARED, condition=rule["condition"])
            self._publish(alarm, "removed")

    def _change(self, rule, state, change, value):
        now = self._now()
        alarm = self.alarms.get(rule["id"])
        if alarm is None:
            alarm = self.alarms[rule["id"]] = {"rule": rule["id"], "source": rule["source"], "raised_ts": now,
                                               "acked_by": None, "acked_ts": None}
        alarm.update(state=state, value=value, condition=rule["condition"])
        if state == RAISED:
            alarm.update(raised_ts=now, acked_by=None, acked_ts=None)
        return self._publish(alarm, change)

    def _publish(self, alarm, change):
        now = self._now()
        self.seq = max(self.seq + 1, now)
        alarm.update(ts=now, seq=self.seq)
        event = dict(alarm, change=change)
        self.emit(event)
        return event
