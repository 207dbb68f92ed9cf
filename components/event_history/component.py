"""
The event history of a router (role ``event_history``, embedded in the
router worker):

- subscribes every ``HISTORY_TOPICS`` prefix and exact topic, and hands
  each event that was published on this router (not one a router link
  forwarded: the node where it was published stores it) to its
  :class:`Recorder`, which stores it and republishes it on
  ``hub.feed.<topic>`` with its position;
- ``hub.history(topic, after_publication=None, limit=100)``: the stored
  events of ``topic`` after position ``after_publication`` (from the oldest
  kept when None), oldest first, at most ``limit`` (1..1000):
  ``{"topic", "events": [{"publication", "ts", "args", "kwargs"}], "more",
  "pruned", "last"}``. Only a caller whose role may subscribe ``topic`` (the
  router's own authorizer decides) gets an answer; personal events only
  for the user they were sent to (:mod:`event_store`);
- prunes every ``HISTORY_TOPIC_PRUNE_INTERVAL`` to
  ``HISTORY_TOPIC_MAX_EVENTS`` events and ``HISTORY_TOPIC_MAX_AGE`` per topic,
  and to ``HISTORY_MAX_BYTES`` of stored events over all topics.

Crossbar's own ``wamp.subscription.get_events`` answers from its realm
store by subscription id and count only (no position to resume after), so
the hub's history is this procedure (docs/history.md).
"""

from autobahn import wamp
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions
from twisted.internet import defer, task

from components.core.arguments import REQUIRED, bind, integer, shown
from components.core.component import HubComponent
from components.core.errors import InvalidArgument, NotAuthorized
from components.core.router_authorizer import router_authorizer
from components.core.state import epoch_ms
from components.db import db_settings
from components.db.database import Database
from components.event_history import HISTORY, configured_topics, event_history_settings, recorded, recorder
from components.event_history.event_store import MAX_TOPIC, EventStore

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_POSITION = 2 ** 63 - 1
_OPTIONS = RegisterOptions(details_arg="call_details")


def history_query(args, kwargs, prefixes):
    """``(topic, after, limit)`` of a ``hub.history`` call, else InvalidArgument."""
    topic, after, limit = bind(HISTORY, args, kwargs, {
        "topic": REQUIRED, "after_publication": None, "limit": DEFAULT_LIMIT})
    if not isinstance(topic, str) or len(topic) > MAX_TOPIC or not recorded(topic, prefixes) \
            or any(ord(char) < 33 or char == "#" for char in topic) or ".." in topic or topic.endswith("."):
        raise InvalidArgument("topic must be a topic with history (HISTORY_TOPICS: {}), got {}".format(
            ", ".join(prefixes) or "none", shown(topic)), field="topic")
    if after is not None:
        integer("after_publication", after, 0, MAX_POSITION)
    integer("limit", limit, 1, MAX_LIMIT)
    return topic, after, limit


class EventHistoryComponent(HubComponent):
    """Records the history topics of this router and answers ``hub.history`` (module doc)."""

    bounded_procedures = frozenset([HISTORY])
    store = None
    may_subscribe = None

    @defer.inlineCallbacks
    def start(self):
        settings = self.settings
        self.prefixes = configured_topics(settings.get(event_history_settings.HISTORY_TOPICS))
        if self.store is None:
            self.store = EventStore(Database(settings.get(db_settings.DATABASE_URL)))
        if self.may_subscribe is None:
            self.may_subscribe = router_authorizer(self)
        self.recorder = recorder.from_settings(settings, self.store, self._publish_feed, self.reactor.seconds)
        self.max_bytes = settings.get(event_history_settings.HISTORY_MAX_BYTES)
        self.max_events = settings.get(event_history_settings.HISTORY_TOPIC_MAX_EVENTS)
        self.max_age = settings.get(event_history_settings.HISTORY_TOPIC_MAX_AGE)
        # prefix subscriptions only, exact topics filtered in on_event: a router link forwards a node's exact
        # subscriptions to its peer when it starts, and stops at the first one the peer refuses (a node-local
        # topic such as iot.odata.value), which would leave every later one unforwarded
        for prefix in self.prefixes:
            yield self.subscribe(self.on_event, prefix,
                                 options=SubscribeOptions(match="prefix", details=True))
        yield self.register(self)
        self.pruning = task.LoopingCall(self.prune)
        self.pruning.clock = self.reactor
        self.pruning.start(settings.get(event_history_settings.HISTORY_TOPIC_PRUNE_INTERVAL), now=False)
        self.log.info("event history: recording {prefixes}", prefixes=", ".join(self.prefixes) or "nothing")

    def onLeave(self, details):
        pruning = getattr(self, "pruning", None)
        if pruning is not None and pruning.running:
            pruning.stop()
        HubComponent.onLeave(self, details)

    def on_event(self, *args, details=None, **kwargs):
        """An event of a history topic: stored here when it was published on this router."""
        if details is None or details.forward_for or not recorded(details.topic, self.prefixes):
            return
        self.recorder.offer(details.topic, args, kwargs)

    def _publish_feed(self, topic, message, options):
        self.publish(topic, message, options=options)

    def prune(self):
        oldest = epoch_ms(self.reactor.seconds) - int(self.max_age * 1000)
        d = self.store.prune(self.max_events, oldest, self.max_bytes)
        d.addCallback(lambda deleted: deleted and self.log.debug("event history: pruned {n} events",
                                                                 n=deleted))
        d.addErrback(lambda failure: self.log.warn("event history: pruning failed ({error})",
                                                    error=failure.getErrorMessage()))
        return d

    @wamp.register(HISTORY, options=_OPTIONS)
    @defer.inlineCallbacks
    def history(self, /, *args, call_details=None, **kwargs):
        topic, after, limit = history_query(args, kwargs, self.prefixes)
        if call_details is None or not (yield self.may_subscribe(call_details, topic)):
            raise NotAuthorized("your role may not subscribe {}".format(shown(topic)))
        page = yield self.store.page(topic, after, limit, call_details.caller_authid)
        return page


def personal_options(users):
    """The feed publication options of an event for ``users`` only."""
    return PublishOptions(eligible_authid=list(users))
