"""
Events nobody misses: every event of a history topic (``HISTORY_TOPICS``)
is stored in the client database with a position that orders it among all
stored events, and republished with that position on its feed topic
``hub.feed.<topic>``; ``hub.history`` reads what a subscriber missed
(docs/history.md).
"""

HISTORY = "hub.history"
FEED_PREFIX = "hub.feed."


def feed_topic(topic):
    """The topic on which the events of ``topic`` arrive with their stored position."""
    return FEED_PREFIX + topic


def recorded(topic, prefixes):
    """Whether ``topic`` is a history topic: under one of ``prefixes`` (a prefix ending in ``.``) or equal
    to one (an exact topic), never a feed topic itself."""
    if not isinstance(topic, str) or topic.startswith(FEED_PREFIX):
        return False
    return any(topic == prefix or (prefix.endswith(".") and topic.startswith(prefix)) for prefix in prefixes)


def owner_of(topic):
    """Whose storing rate an event of ``topic`` counts against: its application (``app.<name>``) for an
    application topic, else the topic itself (one IoT source)."""
    parts = topic.split(".")
    return ".".join(parts[:2]) if parts[0] == "app" and len(parts) > 2 else topic


def configured_topics(topics):
    """The history topics of a ``HISTORY_TOPICS`` value: ``none`` (alone) means none at all."""
    return () if tuple(item.lower() for item in topics) == ("none",) else tuple(topics)
