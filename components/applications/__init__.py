"""
Applications as clients of the hub: each registered application owns the
topic prefix ``app.<name>.`` and publishes there over ``POST /apps/publish``
(HTTP Basic ``key:secret``), to every subscriber or only to named users.
"""

PREFIX = "app."
# per-user events for the other nodes: linked routers forward this topic, each node's bridge republishes it
RELAY = "apps.relay"
# keyword arguments an event may not have: autobahn's ``publish(topic, *args, options=..., **kwargs)`` takes
# these names itself
RESERVED_KWARGS = frozenset(("options", "topic", "self"))


def app_prefix(name):
    """The topic prefix application ``name`` owns: ``app.<name>.``."""
    return "{}{}.".format(PREFIX, name)
