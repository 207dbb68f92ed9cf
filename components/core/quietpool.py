"""
An HTTP connection pool for the hub's pollers and clients (treq over
Twisted's ``Agent``) whose connection factories start and stop without a
log line: Twisted's own logs "Starting factory _HTTP11ClientFactory" and
"Stopping factory ..." for every new connection, so a poller whose target
is down wrote a pair of them per failed poll.
"""

from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietHTTP11ClientFactory(_HTTP11ClientFactory):
    noisy = False


class QuietConnectionPool(HTTPConnectionPool):
    """``HTTPConnectionPool`` (persistent by default) whose connection factories are not noisy."""

    _factory = _QuietHTTP11ClientFactory

    def __init__(self, reactor, persistent=True):
        HTTPConnectionPool.__init__(self, reactor, persistent=persistent)
