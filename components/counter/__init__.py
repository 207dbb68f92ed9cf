"""
The shared click counter: named counters in the client database, clicked
through ``counter.click`` and published on ``counter.changed``.
"""

CLICK = "counter.click"
GET = "counter.get"
TOPIC = "counter.changed"
DEFAULT_NAME = "default"
# named counters publish on counter.changed.<name>
NAMED_TOPIC_PREFIX = TOPIC + "."


def topic_of(name):
    """``counter.changed`` for the default counter, ``counter.changed.<name>`` for the others: each
    topic carries one counter, so the subscribe-then-get ``seq`` rule holds per topic."""
    return TOPIC if name == DEFAULT_NAME else NAMED_TOPIC_PREFIX + name
