"""
The base class of the hub's WAMP components: one :class:`Settings` view of
``config.extra`` and the environment, an injectable reactor, and a start that
fails loudly.
"""

from autobahn.twisted.wamp import ApplicationSession
from twisted.internet import defer
from twisted.logger import Logger

from components.core import errors
from components.core.settings import Settings


class HubComponent(ApplicationSession):
    """
    ``self.settings`` reads this component's settings (see
    :class:`components.core.settings.Settings`). Subclasses implement
    ``start()`` (may return a Deferred) instead of ``onJoin``. A failure in
    ``start`` is logged and leaves the session, so the component never runs
    half-configured.
    """

    log = Logger()
    reactor = None

    def __init__(self, config=None, environ=None):
        ApplicationSession.__init__(self, config)
        extra = (config.extra if config is not None else None) or {}
        self.settings = Settings(extra, environ)
        self.node_directory = self.settings.node_directory
        if self.reactor is None:
            from twisted.internet import reactor
            self.reactor = reactor

    @defer.inlineCallbacks
    def onJoin(self, details):
        try:
            yield defer.maybeDeferred(self.start)
        except Exception:
            self.log.failure("{name} failed to start; leaving", name=type(self).__name__)
            self.on_start_failed()
            self.leave(errors.COMPONENT_FAILED, "component failed to start")

    def start(self):
        """Register procedures, subscribe, start loops. Override."""

    def on_start_failed(self):
        """Called after ``start`` failed; essential components stop the node here."""
