"""
The base class of the hub's WAMP components: one :class:`Settings` view of
``config.extra`` and the environment, an injectable reactor, and a start that
fails loudly: a setting that cannot be used refuses the process with one line
(:mod:`components.core.refusal`).
"""

import os

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.logger import Logger

from components.core import errors, refusal
from components.core.settings import Settings, SettingsError


# a failure autobahn's onUserError has logged with its traceback: not logged again when answered
_ALREADY_LOGGED = Logger(observer=lambda event: None)


class HubComponent(ApplicationSession):
    """
    ``self.settings`` reads this component's settings (see
    :class:`components.core.settings.Settings`). Subclasses implement
    ``start()`` (may return a Deferred) instead of ``onJoin``. A failure in
    ``start`` is logged and leaves the session, so the component never runs
    half-configured. A :class:`SettingsError` from ``start`` stops the whole
    process instead: one critical line naming the setting and the fix, exit
    ``refusal.REFUSED`` (``process_exit``, injectable for tests).
    """

    log = Logger()
    reactor = None
    process_exit = staticmethod(os._exit)

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
        except SettingsError as error:
            refusal.refuse(refusal.settings_line(error, type(self).__name__), self.log, self.process_exit)
        except Exception:
            self.log.failure("{name} failed to start; leaving", name=type(self).__name__)
            self.on_start_failed()
            self.leave(errors.COMPONENT_FAILED, "component failed to start")

    def start(self):
        """Register procedures, subscribe, start loops. Override."""

    def on_start_failed(self):
        """Called after ``start`` failed; essential components stop the node here."""

    def _message_from_exception(self, request_type, request, exc, tb=None, enc_algo=None):
        """
        What a caller of any of our procedures receives for a failure
        (autobahn builds every ERROR reply here): the one mapping,
        :func:`components.core.errors.public`. A domain error goes as it is
        (its detail, a database's words, logged here); any other exception
        would reach the caller as ``wamp.error.runtime_error`` with its own
        text, and goes as ``reactive.error.internal`` in generic words
        (``onUserError`` has logged its traceback already).
        """
        if not isinstance(exc, ApplicationError) or isinstance(exc, errors.HubError):
            exc = errors.public(exc, self.log if isinstance(exc, ApplicationError) else _ALREADY_LOGGED, "a call")
        return ApplicationSession._message_from_exception(self, request_type, request, exc, tb, enc_algo)
