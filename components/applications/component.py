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

from components.applications import PREFIX, RELAY
from components.core.component import HubComponent


def relay_message(topic, args, kwargs, to_users):
    """The ``apps.relay`` payload of an event for ``to_users`` (a list of user names)."""
    return {"topic": topic, "args": list(args), "kwargs": dict(kwargs), "to_users": list(to_users)}


def relayed(message):
    """``(topic, args, kwargs, to_users)`` of a relay message, or None when it is not one."""
    if not isinstance(message, dict) or set(message) != {"topic", "args", "kwargs", "to_users"}:
        return None
    topic, args, kwargs, users = message["topic"], message["args"], message["kwargs"], message["to_users"]
    if not isinstance(topic, str) or not topic.startswith(PREFIX) or not isinstance(args, list) \
            or not isinstance(kwargs, dict) or "options" in kwargs:
        return None
    if not isinstance(users, list) or not users or not all(isinstance(user, str) and user for user in users):
        return None
    return topic, args, kwargs, users


class AppBridgeSession(HubComponent):
    """The one publisher of ``/apps/publish`` on this router; republishes relayed per-user events."""

    def start(self):
        self.relayed = 0
        d = self.subscribe(self.on_relay, RELAY)
        d.addCallback(lambda _: self.log.info("application bridge session joined ({topic} relayed)",
                                              topic=RELAY))
        return d

    def publish_to_users(self, topic, args, kwargs, to_users):
        """Publish an event for ``to_users`` here (fire with the publication) and relay it to linked nodes."""
        options = PublishOptions(acknowledge=True, eligible_authid=to_users)
        d = self.publish(topic, *args, options=options, **kwargs)

        def relay(publication):
            self.publish(RELAY, relay_message(topic, args, kwargs, to_users))
            return publication
        return d.addCallback(relay)

    def on_relay(self, message=None, *args, **kwargs):
        event = relayed(message)
        if event is None:
            self.log.warn("application relay: dropped a malformed {topic} message", topic=RELAY)
            return
        topic, args, kwargs, users = event
        self.relayed += 1
        self.publish(topic, *args, options=PublishOptions(eligible_authid=users), **kwargs)
