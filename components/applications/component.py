"""
The router component applications publish through (role ``app_bridge``,
which may publish ``app.*`` and the relay topic): ``POST /apps/publish``
checks the application and its topic, then publishes with this session.

Crossbar's router links do not forward a publication restricted with
``eligible_authid`` (the link's session is the peer's, not the user's), so
an event for named users is published twice: restricted on this node, and
as a ``{"topic", "args", "kwargs", "to_users"}`` message on ``apps.relay``,
which the links carry to every linked node (router workers of one node
too), where this component republishes it restricted to those users. The
publisher never gets its own relay message, so no node delivers twice.
"""

from autobahn.wamp.types import PublishOptions
from twisted.internet import defer

from components.applications import PREFIX, RELAY, RESERVED_KWARGS
from components.core.component import HubComponent
from components.db import db_settings
from components.db.database import Database
from components.event_history import configured_topics, event_history_settings, feed_topic, recorded
from components.event_history.recorder import from_settings as history_recorder
from components.event_history.event_store import EventStore


_RELAY_KEYS = {"topic", "args", "kwargs", "to_users"}


def relay_message(topic, args, kwargs, to_users, feed=None):
    """The ``apps.relay`` payload of an event for ``to_users`` (a list of user names), with its stored
    feed message when it has one."""
    message = {"topic": topic, "args": list(args), "kwargs": dict(kwargs), "to_users": list(to_users)}
    if feed is not None:
        message["feed"] = feed
    return message


def _feed_message(feed):
    return (isinstance(feed, dict) and set(feed) == {"publication", "ts", "args", "kwargs"}
            and (feed["publication"] is None or type(feed["publication"]) is int)
            and type(feed["ts"]) is int and isinstance(feed["args"], list)
            and isinstance(feed["kwargs"], dict))


def relayed(message):
    """``(topic, args, kwargs, to_users, feed or None)`` of a relay message, or None when it is not one."""
    if not isinstance(message, dict) or not _RELAY_KEYS <= set(message) <= _RELAY_KEYS | {"feed"}:
        return None
    feed = message.get("feed")
    if feed is not None and not _feed_message(feed):
        return None
    topic, args, kwargs, users = message["topic"], message["args"], message["kwargs"], message["to_users"]
    if not isinstance(topic, str) or not topic.startswith(PREFIX) or not isinstance(args, list) \
            or not isinstance(kwargs, dict) or RESERVED_KWARGS & set(kwargs):
        return None
    if not isinstance(users, list) or not users or not all(isinstance(user, str) and user for user in users):
        return None
    return topic, args, kwargs, users, feed


class AppBridgeSession(HubComponent):
    """The one publisher of ``/apps/publish`` on this router; republishes relayed per-user events."""

    recorder = None

    def start(self):
        self.relayed = 0
        self.history_topics = configured_topics(self.settings.get(event_history_settings.HISTORY_TOPICS))
        if self.recorder is None and self.history_topics:
            store = EventStore(Database(self.settings.get(db_settings.DATABASE_URL)))
            self.recorder = history_recorder(self.settings, store, self._publish_feed, self.reactor.seconds)
        d = self.subscribe(self.on_relay, RELAY)
        d.addCallback(lambda _: self.log.info("application bridge session joined ({topic} relayed)",
                                              topic=RELAY))
        return d

    def _publish_feed(self, topic, message, options):
        self.publish(topic, message, options=options)

    @defer.inlineCallbacks
    def publish_to_users(self, topic, args, kwargs, to_users):
        """
        Publish an event for ``to_users`` here (fire with the publication) and
        relay it to linked nodes; on a history topic it is stored first and
        its feed message published to them too.
        """
        feed = None
        if self.recorder is not None and recorded(topic, self.history_topics):
            feed = yield self.recorder.offer(topic, args, kwargs, users=to_users,
                                             options=PublishOptions(eligible_authid=list(to_users)))
        options = PublishOptions(acknowledge=True, eligible_authid=to_users)
        publication = yield self.publish(topic, *args, options=options, **kwargs)
        self.publish(RELAY, relay_message(topic, args, kwargs, to_users, feed))
        return publication

    def on_relay(self, message=None, *args, **kwargs):
        event = relayed(message)
        if event is None:
            self.log.warn("application relay: dropped a malformed {topic} message", topic=RELAY)
            return
        topic, args, kwargs, users, feed = event
        self.relayed += 1
        self.publish(topic, *args, options=PublishOptions(eligible_authid=users), **kwargs)
        if feed is not None:
            self.publish(feed_topic(topic), feed, options=PublishOptions(eligible_authid=users))
