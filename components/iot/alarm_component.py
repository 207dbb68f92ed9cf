"""
The alarm service (role ``backend``, in every router worker of every
client node): evaluates the alarm rules of the client database against
every state of the IoT sources (:mod:`components.iot.alarm_logic`) and
publishes each change on ``iot.alarm``. The evaluators sharing a database
store and publish each change once (:mod:`components.iot.alarm_sync`).

- It subscribes ``iot.alarm`` and each rule's device or serial topic
  exactly, so router links (which forward exact subscriptions only) bring
  it the readings and alarms of the other router workers and linked nodes
  (``iot.odata.value`` is polled on each).
- Rules are read again every ``ALARM_RELOAD_INTERVAL`` seconds, so a rule
  added or removed with ``reactive-hub alarm`` takes effect on a running
  node without a restart.
- Every change is written to the database before it is published, in
  order (only if no other evaluator changed that alarm first); on start the
  stored alarms are read back first, so a restart neither raises an alarm
  again nor loses one.
- ``iot.alarms()`` (users, admins): ``{"value": [alarm, ...], "seq", "ts"}``,
  the listed alarms (raised, or cleared and not yet acknowledged) and the
  seq of the newest ``iot.alarm`` event, so a page subscribes ``iot.alarm``
  and keeps whichever is newer.
- ``iot.alarm.ack(source, rule)`` (admins): acknowledges that alarm; it is
  published again with ``change: "acked"`` and ``acked_by``. Both are
  registered with the ``roundrobin`` invoke policy.
"""

from autobahn.wamp.types import RegisterOptions, SubscribeOptions
from twisted.internet import defer

from components.core.arguments import REQUIRED, bind, integer, shown
from components.core.component import HubComponent
from components.core.errors import NotAuthorized, NotFound, Unavailable
from components.core.periodic import Periodic
from components.core.state import epoch_ms
from components.db import db_settings
from components.db.database import Database
from components.iot import ALARM_ACK, ALARM_TOPIC, ALARMS, DEVICE_PREFIX, SERIAL_TOPIC, iot_settings
from components.iot.alarm_rules import AlarmStore
from components.iot.alarm_sync import SharedAlarms
from components.iot.history import kind_of

_OPTIONS = RegisterOptions(details_arg="call_details", invoke="roundrobin")
MAX_RULE = 2 ** 63 - 1
ACK_ATTEMPTS = 3


def _linked(topic):
    """Whether router links forward ``topic``: a device's or the serial reader's (OData is polled on each)."""
    return topic == SERIAL_TOPIC or topic.startswith(DEVICE_PREFIX)


def _ignore(*args, **kwargs):
    """An exact subscription's handler: the prefix subscription handles the event."""


class RuleReader(Periodic):
    """Every ``interval`` s: the stored alarms once (until read), then the rules, handed to ``component``."""

    def __init__(self, component, interval):
        self.component = component
        self.clock = component.reactor
        self.interval = interval
        self.failing = False

    def tick(self):
        d = self.component.reload()
        d.addCallbacks(self._worked, self._failed)
        return d

    def _worked(self, _):
        if self.failing:
            self.failing = False
            self.component.log.info("alarm rules: the database works again")

    def _failed(self, failure):
        if not self.failing:
            self.failing = True
            self.component.log.warn("alarm rules cannot be read ({error}); trying again every {interval}s",
                                    error=failure.getErrorMessage(), interval=self.interval)


class AlarmComponent(HubComponent):
    """Evaluates the alarm rules and serves ``iot.alarms`` / ``iot.alarm.ack`` (module doc)."""

    bounded_procedures = frozenset([ALARMS, ALARM_ACK])
    store = None
    reader = None
    shared = None

    @property
    def evaluator(self):
        return self.shared.evaluator

    @property
    def restored(self):
        return self.shared is not None and self.shared.restored

    @defer.inlineCallbacks
    def start(self):
        if self.store is None:
            self.store = AlarmStore(Database(self.settings.get(db_settings.DATABASE_URL)))
        self.shared = SharedAlarms(self.reactor, self.store, lambda event: self.publish(ALARM_TOPIC, event),
                                   self.log)
        # one prefix subscription (router links and exact subscriptions: see components.event_history)
        yield self.subscribe(self.on_state, "iot.", options=SubscribeOptions(match="prefix", details=True))
        self.pulled = {}
        yield self.pull(ALARM_TOPIC)
        yield self.register(self.alarms, ALARMS, options=_OPTIONS)
        yield self.register(self.ack, ALARM_ACK, options=_OPTIONS)
        self.reader = RuleReader(self, self.settings.get(iot_settings.ALARM_RELOAD_INTERVAL))
        self.reader.start()
        self.log.info("alarms: rules read every {interval}s", interval=self.reader.interval)

    @defer.inlineCallbacks
    def reload(self):
        """Read the stored alarms and the rules; hand them to the evaluator; pull the rules' topics."""
        yield self.shared.reload()
        wanted = {rule["source"] for rule in self.evaluator.rules.values() if _linked(rule["source"])}
        for topic in sorted(wanted - set(self.pulled)):
            yield self.pull(topic)
        for topic in sorted(set(self.pulled) - wanted - {ALARM_TOPIC}):
            subscription = self.pulled.pop(topic)
            if subscription is not None:
                yield subscription.unsubscribe()

    @defer.inlineCallbacks
    def pull(self, topic):
        """An exact subscription to ``topic`` (events are handled by the prefix one) for the router links."""
        self.pulled[topic] = None
        try:
            self.pulled[topic] = yield self.subscribe(_ignore, topic)
        except Exception:
            self.pulled.pop(topic, None)
            raise

    def on_state(self, *args, details=None, **kwargs):
        """A state published on an IoT source's topic, or another evaluator's ``iot.alarm`` event."""
        topic = getattr(details, "topic", None)
        if not self.restored or not args:
            return
        if topic == ALARM_TOPIC:
            self.shared.heard(args[0])
        elif kind_of(topic) is not None:
            self.evaluator.state(topic, args[0])

    def _ready(self):
        if not self.restored:
            raise Unavailable("alarms not loaded yet (the client database cannot be read)")

    def alarms(self, /, *args, call_details=None, **kwargs):
        """``iot.alarms``: see the module doc."""
        bind(ALARMS, args, kwargs, {})
        self._ready()
        return {"value": self.evaluator.listed(), "seq": self.evaluator.seq,
                "ts": epoch_ms(self.reactor.seconds)}

    @defer.inlineCallbacks
    def ack(self, /, *args, call_details=None, **kwargs):
        """``iot.alarm.ack(source, rule)``: acknowledge, for admins only; answers the alarm."""
        source, rule = bind(ALARM_ACK, args, kwargs, {"source": REQUIRED, "rule": REQUIRED})
        if getattr(call_details, "caller_authrole", None) != "admin":
            raise NotAuthorized("only an admin may acknowledge an alarm")
        integer("rule", rule, 1, MAX_RULE)
        self._ready()
        for _ in range(ACK_ATTEMPTS):
            listed = self.evaluator.alarms.get(rule)
            if listed is None or listed["source"] != source:
                raise NotFound("no alarm of rule {} on {}".format(rule, shown(source)))
            alarm = self.evaluator.ack(rule, call_details.caller_authid)
            if "change" not in alarm:
                return alarm  # acknowledged before
            stored = yield self.shared.last
            if stored is not None:
                return stored
            # another evaluator changed the alarm first: acknowledge the state it stored
        raise Unavailable("the alarm keeps changing; try again")

    def onLeave(self, details):
        if self.reader is not None:
            self.reader.stop()
            self.reader = None
        if self.shared is not None:
            self.shared.evaluator.stop()
        HubComponent.onLeave(self, details)
