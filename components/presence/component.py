"""
``hub.presence(topic)``: how many people's sessions and users on this node
subscribe ``topic`` right now, ``{"topic", "sessions", "users"}``; a caller
of a ``NAMES_ROLES`` role (admin) also gets ``"names"``, the sorted user
names. Only a caller whose role may subscribe the topic gets an answer,
decided by the router's own authorizer (the same static role permissions
that govern its SUBSCRIBE), else ``reactive.error.not_authorized``.

The answer comes from a :class:`PresenceIndex` kept by the router's meta
events, subscribed before the start-up snapshot (``wamp.session.list`` /
``get``, ``wamp.subscription.list`` / ``get`` / ``list_subscribers``) is
read, so a session that comes or goes meanwhile is not missed: no database,
no meta call per answer. The component runs embedded in the router worker
(it asks that router's authorizer); each node answers for its own sessions.
"""

import re

from autobahn import wamp
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer

from components.core.arguments import REQUIRED, bind, shown
from components.core.component import HubComponent
from components.core.errors import InvalidArgument, NotAuthorized
from components.core.router_authorizer import router_authorizer
from components.presence import NAMES_ROLES, PEOPLE_ROLES, PRESENCE
from components.presence.index import PresenceIndex

# a topic as a subscriber may name it: dot-separated components without whitespace or '#'
# (empty ones: wildcards)
TOPIC_PATTERN = re.compile(r"[^\s.#]*(\.[^\s.#]*)*")
MAX_TOPIC = 255

_OPTIONS = RegisterOptions(details_arg="call_details")

# meta event -> the index update it makes
_EVENTS = {
    "wamp.session.on_join": lambda index, details: index.joined(
        details["session"], details.get("authid"), details.get("authrole")),
    "wamp.session.on_leave": lambda index, session, *rest: index.left(session),
    "wamp.subscription.on_create": lambda index, session, details: index.created(
        details["id"], details["uri"], details["match"]),
    "wamp.subscription.on_subscribe": lambda index, session, subscription: index.subscribed(
        session, subscription),
    "wamp.subscription.on_unsubscribe": lambda index, session, subscription: index.unsubscribed(
        session, subscription),
    "wamp.subscription.on_delete": lambda index, session, subscription: index.deleted(subscription),
}


def check_topic(topic):
    """A topic URI (at most 255 characters), else invalid_argument."""
    if (not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC
            or not TOPIC_PATTERN.fullmatch(topic)):
        raise InvalidArgument("topic must be a URI such as 'time.tic' (at most {} characters), got {}".format(
            MAX_TOPIC, shown(topic)), field="topic")
    return topic


def answer(index, topic, authrole):
    """What ``hub.presence(topic)`` answers a caller of ``authrole`` (allowed to subscribe ``topic``)."""
    sessions, users = index.presence(topic)
    result = {"topic": topic, "sessions": sessions, "users": len(users)}
    if authrole in NAMES_ROLES:
        result["names"] = sorted(users)
    return result


class PresenceComponent(HubComponent):
    """Keeps the presence index of this router and serves ``hub.presence``."""

    index = None
    may_subscribe = None

    @defer.inlineCallbacks
    def start(self):
        self.index = PresenceIndex(PEOPLE_ROLES)
        if self.may_subscribe is None:
            self.may_subscribe = router_authorizer(self)
        for topic, update in _EVENTS.items():
            yield self.subscribe(self._applier(update), topic)
        yield self.read_snapshot()
        yield self.register(self)
        self.log.info("presence: {sessions} people's sessions, {subscriptions} subscriptions indexed",
                      sessions=len(self.index.sessions), subscriptions=len(self.index.subscriptions))

    def _applier(self, update):
        def apply(*args):
            update(self.index, *args)
        return apply

    @defer.inlineCallbacks
    def read_snapshot(self):
        """Add the sessions and subscriptions that exist already (one that vanished meanwhile is skipped)."""
        for session in (yield self.call("wamp.session.list", sorted(PEOPLE_ROLES))):
            details = yield self._gone_as_none("wamp.session.get", session)
            if details is not None:
                self.index.joined(session, details.get("authid"), details.get("authrole"))
        listed = yield self.call("wamp.subscription.list")
        for subscription in [item for ids in listed.values() for item in ids]:
            details = yield self._gone_as_none("wamp.subscription.get", subscription)
            subscribers = yield self._gone_as_none("wamp.subscription.list_subscribers", subscription)
            if details is None or subscribers is None:
                continue
            self.index.created(subscription, details["uri"], details["match"])
            for session in subscribers:
                self.index.subscribed(session, subscription)

    @defer.inlineCallbacks
    def _gone_as_none(self, procedure, *args):
        try:
            result = yield self.call(procedure, *args)
        except ApplicationError as error:
            if error.error not in (ApplicationError.NO_SUCH_SESSION, ApplicationError.NO_SUCH_SUBSCRIPTION):
                raise
            result = None
        return result

    @wamp.register(PRESENCE, options=_OPTIONS)
    @defer.inlineCallbacks
    def presence(self, /, *args, call_details=None, **kwargs):
        (topic,) = bind(PRESENCE, args, kwargs, {"topic": REQUIRED})
        topic = check_topic(topic)
        if call_details is None or not (yield self.may_subscribe(call_details, topic)):
            raise NotAuthorized("your role may not subscribe {}".format(shown(topic)))
        return answer(self.index, topic, call_details.caller_authrole)
