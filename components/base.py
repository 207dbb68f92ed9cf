"""
The base class of the hub's WAMP components: settings from ``config.extra``
with ``${VAR}`` substitution, an injectable reactor, and registration that
fails loudly.
"""

import os

from autobahn.twisted.wamp import ApplicationSession
from twisted.internet import defer
from twisted.logger import Logger

from components.settings import node_dir, substitute


class HubComponent(ApplicationSession):
    """
    ``self.settings`` is ``config.extra`` after substitution. Subclasses
    implement ``start()`` (may return a Deferred) instead of ``onJoin``.
    A failure in ``start`` is logged and leaves the session, so the component
    never runs half-configured.
    """

    log = Logger()
    reactor = None

    def __init__(self, config=None):
        ApplicationSession.__init__(self, config)
        extra = (config.extra if config is not None else None) or {}
        self.settings = substitute(extra)
        self.node_directory = self.settings.get("node_dir") or node_dir()
        if self.reactor is None:
            from twisted.internet import reactor
            self.reactor = reactor

    def setting(self, key, default=""):
        """A substituted setting, or ``default`` when empty; falls back to the environment."""
        value = self.settings.get(key)
        if value is None or value == "":
            value = os.environ.get(key, "")
        return value if value != "" else default

    @defer.inlineCallbacks
    def onJoin(self, details):
        try:
            yield defer.maybeDeferred(self.start)
        except Exception:
            self.log.failure("{name} failed to start; leaving", name=type(self).__name__)
            self.on_start_failed()
            self.leave("reactive.error.unavailable", "component failed to start")

    def start(self):
        """Register procedures, subscribe, start loops. Override."""

    def on_start_failed(self):
        """Called after ``start`` failed; essential components stop the node here."""
