"""
Applications as clients of the hub: each registered application owns the
topic prefix ``app.<name>.`` and publishes there over ``POST /apps/publish``
(HTTP Basic ``key:secret``), to every subscriber or only to named users.
"""

import re

PREFIX = "app."
# an application's URIs: lower-case words, digits and _, at most as long as the event history records;
# /apps/publish also wants every word non-empty, a WAMP subscription may leave one empty (a wildcard)
MAX_URI = 255
_URI_CHARACTERS = re.compile(r"[0-9a-z_.]+")
# per-user events for the other nodes: linked routers forward this topic, each node's bridge republishes it
RELAY = "apps.relay"
# keyword arguments an event may not have: autobahn's ``publish(topic, *args, options=..., **kwargs)`` takes
# these names itself
RESERVED_KWARGS = frozenset(("options", "topic", "self"))


def app_prefix(name):
    """The topic prefix application ``name`` owns: ``app.<name>.``."""
    return "{}{}.".format(PREFIX, name)


def owns_uri(name, uri):
    """Whether ``uri`` is one of application ``name``'s: under ``app.<name>.``, lower-case, at most MAX_URI."""
    return (isinstance(uri, str) and uri.startswith(app_prefix(name)) and len(uri) <= MAX_URI
            and _URI_CHARACTERS.fullmatch(uri) is not None)
