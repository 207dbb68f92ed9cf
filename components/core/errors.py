"""
The hub's generic error URIs and the domain errors that carry them (a
feature's own URIs live in the feature: ``components.auth``,
``components.iot``, ``components.e2e``; docs/errors.md lists them all).

Components raise domain errors; nothing translates them by hand. Each domain
error is an ``ApplicationError`` whose URI is declared on its class, so a
WAMP procedure that raises one answers the caller with that URI, the message
as the first argument and the error's keyword details (``field``,
``retry_after``) as kwargs. Feature errors subclass the family they belong
to (a bad profile field is an :class:`InvalidArgument`, a database that is
down is :class:`Unavailable`), which is the whole mapping. The HTTP status
of a domain error is ``status`` on its family, and every HTTP resource
answers one with :func:`body` (``{"error": <uri>, "message": <text>}``, plus
``"details"`` when it has keyword details), through
:func:`components.core.httpjson.error_answer`.

What an error says goes to the caller; what only operators may read
(a database driver's words: which server, which port) is its ``detail``,
never sent: ``message`` is the caller's text, ``str()`` is the message
followed by the detail, for logs and command lines. :func:`public` turns
any failure into the error a caller may see, logging the rest.
"""

from autobahn.wamp.exception import ApplicationError

from components.core.error_uris import (  # noqa: F401 - the URIs and messages are read as errors.<NAME>
    COMPONENT_FAILED, DATABASE_UNAVAILABLE, INTERNAL, INTERNAL_MESSAGE, INVALID_ARGUMENT, NOT_AUTHORIZED,
    NOT_FOUND, RATE_LIMITED, SESSION_LIMIT, UNAVAILABLE, body)


class HubError(ApplicationError):
    """
    A domain error with its WAMP URI: ``uri`` on the class (or passed in,
    for families such as token refusals), ``message`` as the only argument,
    keyword details as WAMP kwargs.
    """

    uri = INTERNAL
    status = 500

    def __init__(self, message, uri=None, detail=None, **details):
        ApplicationError.__init__(self, uri or self.uri, message, **details)
        self.uri = self.error
        self.message = message
        self.detail = detail

    def __str__(self):
        return self.message if self.detail is None else "{} ({})".format(self.message, self.detail)


def family(name, uri, doc, status, base=None, module=__name__):
    """A domain error family: a subclass of ``base`` (:class:`HubError`) carrying ``uri`` and HTTP ``status``."""
    return type(name, (base or HubError,), {"uri": uri, "status": status, "__doc__": doc, "__module__": module})


InvalidArgument = family("InvalidArgument", INVALID_ARGUMENT, "Bad input: nothing was changed.", 400)
NotFound = family("NotFound", NOT_FOUND, "The named thing does not exist.", 404)
Unavailable = family("Unavailable", UNAVAILABLE,
                     "A service the hub needs (database, queue, a source) cannot be used right now.", 503)
RateLimited = family("RateLimited", RATE_LIMITED, "Too many requests; ``retry_after`` (seconds) is in the details.",
                     429)
NotAuthorized = family("NotAuthorized", NOT_AUTHORIZED, "The caller may not do this.", 403)

# WAMP's own errors a hub procedure may pass on from a call it made, as the domain errors they are
_WAMP_ERRORS = {ApplicationError.NOT_AUTHORIZED: NotAuthorized, ApplicationError.INVALID_URI: InvalidArgument,
                ApplicationError.INVALID_ARGUMENT: InvalidArgument, ApplicationError.NO_SUCH_PROCEDURE: Unavailable}


def public(error, log, what):
    """
    The domain error a caller sees for ``error`` (an exception or a
    ``Failure``): a domain error as it is (its detail, if any, logged as a
    warning), WAMP's standard errors as the families they are, anything
    else an internal error with a generic message and the traceback logged.
    ``what`` names the request in the log.
    """
    failure = error if hasattr(error, "value") and hasattr(error, "getTraceback") else None
    exc = failure.value if failure is not None else error
    if isinstance(exc, HubError):
        if exc.detail is not None:
            log.warn("{what}: {error}", what=what, error=exc)
        return exc
    if isinstance(exc, ApplicationError) and exc.error in _WAMP_ERRORS:
        return _WAMP_ERRORS[exc.error](exc.error_message())
    if failure is not None:
        log.failure("{what} failed", failure=failure, what=what)
    else:
        log.error("{what} failed: {error!r}", what=what, error=exc)
    return HubError(INTERNAL_MESSAGE)
