"""
The base class of the hub's WAMP components: one :class:`Settings` view of
``config.extra`` and the environment, an injectable reactor, and a start that
fails loudly: a setting that cannot be used refuses the process with one line
(:mod:`components.core.refusal`).
"""

import os

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.logger import Logger

from components.core import core_settings, errors, refusal
from components.core.inflight import CallsInFlight
from components.core.settings import Settings, SettingsError


# a failure autobahn's onUserError has logged with its traceback: not logged again when answered
_ALREADY_LOGGED = Logger(observer=lambda event: None)


def _passing(result, call, *args):
    call(*args)
    return result


class HubComponent(ApplicationSession):
    """
    ``self.settings`` reads this component's settings (see
    :class:`components.core.settings.Settings`). Subclasses implement
    ``start()`` (may return a Deferred) instead of ``onJoin``. A failure in
    ``start`` is logged and leaves the session, so the component never runs
    half-configured. A :class:`SettingsError` from ``start`` stops the whole
    process instead: one critical line naming the setting and the fix, exit
    ``refusal.REFUSED`` (``process_exit``, injectable for tests).

    ``bounded_procedures`` names the procedures that use the database (and
    have no rate limit of their own): a caller session with
    ``SESSION_MAX_CALLS_IN_FLIGHT`` calls in flight on them is answered
    ``rate_limited`` at once (:mod:`components.core.inflight`; the router
    discloses callers to the hub's components).
    """

    log = Logger()
    reactor = None
    process_exit = staticmethod(os._exit)
    bounded_procedures = frozenset()
    calls_in_flight = None

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
            if self.bounded_procedures:
                self.calls_in_flight = CallsInFlight(self.settings.get(core_settings.SESSION_MAX_CALLS_IN_FLIGHT))
            yield defer.maybeDeferred(self.start)
        except SettingsError as error:
            refusal.refuse(refusal.settings_line(error, type(self).__name__), self.log, self.process_exit)
        except Exception:
            self.log.failure("{name} failed to start; leaving", name=type(self).__name__)
            self.on_start_failed()
            self.leave(errors.COMPONENT_FAILED, "component failed to start")

    def onMessage(self, msg):
        """Every message as autobahn handles it, with an invocation past its caller's bound refused at once."""
        bound = self.calls_in_flight
        if (bound is None or not isinstance(msg, message.Invocation) or msg.caller is None
                or msg.request in self._invocations or msg.registration not in self._registrations
                or self._registrations[msg.registration].procedure not in self.bounded_procedures):
            return ApplicationSession.onMessage(self, msg)
        caller = msg.caller
        if not bound.enter(caller):
            self._transport.send(self._message_from_exception(message.Invocation.MESSAGE_TYPE, msg.request,
                                                              bound.refusal()))
            return None
        try:
            return ApplicationSession.onMessage(self, msg)
        finally:
            pending = self._invocations.get(msg.request)
            if pending is None:  # answered already (or never invoked)
                bound.leave(caller)
            else:
                pending.on_reply.addBoth(_passing, bound.leave, caller)

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
