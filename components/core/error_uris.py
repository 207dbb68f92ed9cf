"""
The hub's generic error URIs, the messages callers read for a database that
is down or a fault of the hub, and the one body shape of an error answered
over HTTP. Plain values: code without autobahn (the Django app) reads them
here; :mod:`components.core.errors` holds the domain errors that carry them.
"""

INVALID_ARGUMENT = "reactive.error.invalid_argument"
NOT_FOUND = "reactive.error.not_found"
UNAVAILABLE = "reactive.error.unavailable"
RATE_LIMITED = "reactive.error.rate_limited"
NOT_AUTHORIZED = "reactive.error.not_authorized"
INTERNAL = "reactive.error.internal"
# a session asked for more subscriptions or registrations than the router holds for one session
SESSION_LIMIT = "reactive.error.session_limit"

# a component that could not start leaves the realm with this reason
COMPONENT_FAILED = UNAVAILABLE

# what users read when the database is down; the driver's words go to the log only
DATABASE_UNAVAILABLE = "The hub's database is unavailable; try again shortly."
# what users read for a fault of the hub; the traceback goes to the log only
INTERNAL_MESSAGE = "The hub failed to answer; the fault is logged for its operators."


def body(uri, message, details=None):
    """The one body shape of an error answered over HTTP."""
    answer = {"error": uri, "message": message}
    if details:
        answer["details"] = dict(details)
    return answer
