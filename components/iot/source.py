"""
The common shell of components that relay an outside source (a serial
device, an OData service) into one stateful topic: publish the source's state
dicts (each also handed to the worker's history writer, unless ``HISTORY`` is
off), answer ``.get`` with its latest state, stop the source on leave.
"""

from components.core.component import HubComponent
from components.core.errors import Unavailable
from components.iot import history_seed, history_writer


class SourceComponent(HubComponent):
    """Subclasses set ``topic``, create ``self.source`` (``state()``, ``stop()``) in ``start``."""

    topic = None
    source = None

    def seed_history(self, live):
        """Fire once ``live`` (a LiveValue) continues above the highest seq stored for ``topic``."""
        return history_seed.seed(self, live.state, source=self.topic)

    def publish_state(self, state):
        try:
            self.publish(self.topic, state)
        except Exception:
            self.log.failure("publishing {topic} failed", topic=self.topic)
        history_writer.record(self, self.topic, state)

    def current(self):
        if self.source is None:
            raise Unavailable("{} has no source running".format(type(self).__name__))
        return self.source.state()

    def onLeave(self, details):
        if self.source is not None:
            self.source.stop()
        HubComponent.onLeave(self, details)
