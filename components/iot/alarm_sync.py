"""
An alarm :class:`~components.iot.alarm_logic.Evaluator` that shares the
client database with the other evaluators of a deployment (each router
worker, each linked client node runs one, all fed the same IoT states).

Every change is a conditional write (:meth:`AlarmStore.change`: stored only
if the alarm's row is still the one this evaluator last knew), run one at a
time in the order of the changes; only a change this evaluator stored is
published. When another evaluator stored a change first, this one adopts the
stored state, and its own later changes of that alarm, computed from the
state it lost, are dropped. A change another evaluator published
(:meth:`SharedAlarms.heard`) or stored (read again on every
:meth:`SharedAlarms.reload`) is adopted too, so ``iot.alarms`` answers the
same everywhere.
"""

from twisted.internet import defer
from twisted.python.failure import Failure

from components.iot.alarm_logic import Evaluator


class SharedAlarms:
    """Alarms of ``store`` evaluated on ``clock``; ``publish(event)`` is called for each stored change."""

    def __init__(self, clock, store, publish, log):
        self.store = store
        self.publish = publish
        self.log = log
        self.evaluator = Evaluator(clock, self._emit)
        self.restored = False
        self.writes = defer.succeed(None)
        self.last = None

    def _serial(self, work, *args):
        """Run ``work(*args)`` after every write queued before; fires with its outcome."""
        result = defer.Deferred()

        def run(_):
            d = defer.maybeDeferred(work, *args)
            d.addBoth(lambda outcome: (result.errback if isinstance(outcome, Failure) else result.callback)(
                outcome))
            return d
        self.writes.addCallback(run)
        return result

    @defer.inlineCallbacks
    def reload(self):
        """Read the stored alarms (adopting changes of other evaluators), then the rules."""
        alarms = yield self._serial(self.store.alarms)
        if not self.restored:
            self.evaluator.restore(alarms)
            self.restored = True
        else:
            for alarm in alarms:
                self.evaluator.adopt(alarm)
        rules = yield self.store.rules()
        for rule_id in self.evaluator.set_rules(rules):
            self._serial(self.store.forget, rule_id).addErrback(self._warn, "alarm state not forgotten")

    def heard(self, event):
        """An ``iot.alarm`` event (another evaluator's change): adopted if newer than the one known here."""
        if self.restored and isinstance(event, dict) and isinstance(event.get("rule"), int) \
                and isinstance(event.get("seq"), int):
            try:
                self.evaluator.adopt(event)
            except KeyError:
                self.log.warn("iot.alarm event without the alarm's fields ignored")

    def _emit(self, event):
        lineage = self.evaluator.lineage.get(event["rule"], 0)
        self.last = self._serial(self._write, event, lineage)
        self.last.addErrback(self._warn, "alarm change not stored")

    def _write(self, event, lineage):
        rule_id = event["rule"]
        if self.evaluator.lineage.get(rule_id, 0) != lineage:
            return None  # computed from a state another evaluator replaced
        d = self.store.change(event, self.evaluator.stored.get(rule_id))
        d.addCallback(self._written, event)
        return d

    def _written(self, outcome, event):
        stored, found = outcome
        if not stored:
            self.evaluator.adopt(found, event["rule"])
            self.log.debug("alarm {change} of rule {rule}: another evaluator changed it first", **event)
            return None
        self.evaluator.written(event, found)
        event = dict(event, seq=found)
        self.log.info("alarm {change}: {source} {condition} (rule {rule}, value {value!r})", **event)
        d = defer.maybeDeferred(self.publish, event)
        d.addErrback(self._warn, "alarm not published")
        return event

    def _warn(self, failure, what):
        self.log.warn("{what} ({error})", what=what, error=failure.getErrorMessage())
        return None
