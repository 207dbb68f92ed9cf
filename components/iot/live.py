"""
A live value for a stateful topic fed by an outside source (a serial device,
an OData service): it decides which readings are worth an event (a change
beyond a dead band, or the first reading after an outage) and carries the
``stale`` mark of the contract's state dict.
"""

from components.core.state import TopicState


def changed_beyond(band):
    """A change test for numbers: true when the value moved by more than ``band``."""
    def changed(old, new):
        try:
            return abs(new - old) > band
        except TypeError:
            return old != new
    return changed


def differs(old, new):
    """A change test for any JSON value: true when it is not equal."""
    return old != new or type(old) is not type(new)


class LiveValue:
    """
    The state of one topic: ``{"value", "seq", "ts", "stale"}``. ``offer``
    and ``lose`` return the new state dict when subscribers should hear about
    it, else None. Before the first reading the state is ``value: None``,
    ``stale: True``, so the ``.get`` RPC always answers with a dict.
    """

    def __init__(self, clock, changed=differs):
        self.state = TopicState(clock)
        self.changed = changed
        self.has_value = False
        self.state.update(None, stale=True)

    @property
    def stale(self):
        return self.state.extra.get("stale", True)

    def offer(self, value):
        """A fresh reading: the new state if it is news (changed, or the value was stale)."""
        if self.has_value and not self.stale and not self.changed(self.state.value, value):
            return None
        self.has_value = True
        return self.state.update(value, stale=False)

    def lose(self):
        """The source is gone or failing: keep the value, mark it stale (once)."""
        if self.stale:
            return None
        return self.state.mark(stale=True)

    def snapshot(self):
        return self.state.snapshot()
