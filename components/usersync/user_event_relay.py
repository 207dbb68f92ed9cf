"""
Per-user events across linked nodes. A publication with
``eligible_authid=[username]`` reaches only that user's sessions -- and so
never the remote leg of a router-to-router link, whose authid is the peer's.
Producers of per-user events therefore publish once on the backend topic
``users.relay`` with ``{"username", "event"}``; Crossbar's rlinks carry that
topic to every linked node, and on every node (the dev node too) this
component republishes ``event`` on ``users.changed`` with
``eligible_authid=[username]`` to the local sessions of that user.
"""

from autobahn.wamp.types import PublishOptions

from components.core.component import HubComponent
from components.usersync import CHANGED, RELAY


def relay_message(username, event):
    """The ``users.relay`` payload for ``event`` meant for ``username``'s sessions."""
    if not isinstance(username, str) or not username:
        raise ValueError("username must be a non-empty string")
    return {"username": username, "event": event}


def publish_for_user(session, username, event):
    """Publish ``event`` to ``username``'s sessions on every linked node (through ``users.relay``)."""
    return session.publish(RELAY, relay_message(username, event))


class UserRelay(HubComponent):
    """Subscribes ``users.relay``; republishes each event to its user on this node."""

    def start(self):
        self.relayed = 0
        d = self.subscribe(self.on_relay, RELAY)
        d.addCallback(lambda _: self.log.info("user relay ready ({topic} -> {changed})", topic=RELAY,
                                              changed=CHANGED))
        return d

    def on_relay(self, message=None, *args, **kwargs):
        if not isinstance(message, dict) or not isinstance(message.get("username"), str) \
                or not message["username"] or "event" not in message:
            self.log.warn("user relay: dropped a malformed {topic} message", topic=RELAY)
            return
        self.relayed += 1
        self.publish(CHANGED, message["event"], options=PublishOptions(eligible_authid=[message["username"]]))
