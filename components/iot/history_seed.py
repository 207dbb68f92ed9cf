"""
seq across restarts: a source starting up continues above the highest seq
it ever stored (pruned states included), read from the IoT history of its
worker (:func:`components.iot.history_writer.shared_writer`), so a clock
stepped back cannot make it reuse a seq. When history is off or the
database does not answer within ``SEED_TIMEOUT`` the source starts anyway;
its seq never falls below epoch milliseconds (``TopicState``).
"""

from twisted.internet import defer

from components.core.state import TopicState
from components.iot.history_writer import shared_writer

# how long a starting source waits for its highest stored seq before it goes on without it
SEED_TIMEOUT = 5.0


@defer.inlineCallbacks
def seed(component, topic_state, source=None, prefix=None):
    """
    Raise ``topic_state.seq`` (a :class:`components.core.state.TopicState`) to the highest seq stored for
    ``source`` (or any source under ``prefix``), so a clock stepped back cannot reuse a seq; on database
    trouble it logs and leaves the seq alone (it never falls below epoch ms anyway).
    """
    writer = shared_writer(component)
    if writer is None:
        return 0
    try:
        d = writer.store.highest_seq(source=source, prefix=prefix)
        highest = yield d.addTimeout(SEED_TIMEOUT, component.reactor)
    except Exception as error:
        component.log.warn("history: could not read the highest stored seq of {source} ({error}); seq starts "
                           "from the clock", source=source or prefix, error=error)
        return 0
    topic_state.seq = max(topic_state.seq, highest)
    return highest


def seeded(component_class, attribute, prefix):
    """
    ``component_class`` whose ``attribute``, a dict of topic -> TopicState created in its ``start``, holds
    for every topic under ``prefix`` with history a TopicState continuing above the highest stored seq.
    The stored seqs are read first; the original ``start`` then runs and the states are filled in before
    anything can publish with them (its registrations are still on their way).
    """

    class Seeded(component_class):
        @defer.inlineCallbacks
        def start(self):
            highest = yield highest_each(self, prefix)
            d = defer.maybeDeferred(component_class.start, self)
            states = getattr(self, attribute, None)
            if isinstance(states, dict):
                for topic, seq in highest.items():
                    topic_state = states.setdefault(topic, TopicState(self.reactor.seconds))
                    topic_state.seq = max(topic_state.seq, seq)
            result = yield d
            return result

    Seeded.__name__ = Seeded.__qualname__ = component_class.__name__
    Seeded.__doc__ = component_class.__doc__
    return Seeded


@defer.inlineCallbacks
def highest_each(component, prefix):
    """``{source: highest stored seq}`` under ``prefix``; {} when history is off or failing."""
    writer = shared_writer(component)
    if writer is None:
        return {}
    try:
        d = writer.store.highest_each(prefix)
        highest = yield d.addTimeout(SEED_TIMEOUT, component.reactor)
    except Exception as error:
        component.log.warn("history: could not read the highest stored seqs under {prefix} ({error}); seqs "
                           "start from the clock", prefix=prefix, error=error)
        return {}
    return highest
