"""
A Python WAMP client for applications that talk to the hub: ticket auth with
a token source that is asked for a fresh JWT on every (re)connect, and
automatic reconnection with the hub's backoff (capped, full jitter).

    client = HubClient("ws://127.0.0.1:8080/ws", token_source=lambda: fetch_jwt())
    session = yield client.connect()          # first join
    client.on_join(lambda session: ...)       # every join, also after reconnects

Why not autobahn's reconnecting ``Component`` (autobahn 26.10): it stops for
good when a connection closes cleanly without a WAMP leave (a proxy or load
balancer closing the WebSocket politely ends the client), its ticket
authenticator holds one fixed ticket where every reconnect needs a fresh JWT
from ``token_source``, its retry delay is a normal variate around a growing
mean rather than the hub's full-jitter rule, and it keeps retrying when the
very first join is refused, where ``connect()`` must fail with that refusal.
Those are the four things this class exists for.
"""

from autobahn.twisted.wamp import ApplicationSession
from autobahn.twisted.websocket import WampWebSocketClientFactory
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import ComponentConfig
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString
from twisted.logger import Logger
from urllib.parse import urlparse

from components.auth import AUTH_UNSUPPORTED
from components.core.backoff import Backoff

REALM = "reactive"


class _Session(ApplicationSession):
    def __init__(self, owner):
        ApplicationSession.__init__(self, ComponentConfig(owner.realm))
        self.owner = owner

    def onConnect(self):
        methods = ["ticket"] if self.owner.token_source is not None else ["anonymous"]
        self.join(self.owner.realm, authmethods=methods, authid=self.owner.authid)

    def onChallenge(self, challenge):
        if challenge.method != "ticket":
            raise ApplicationError(AUTH_UNSUPPORTED, challenge.method)
        return defer.maybeDeferred(self.owner.token_source)

    def onJoin(self, details):
        self.owner._joined(self, details)

    def onLeave(self, details):
        self.owner._left(self, details)
        ApplicationSession.onLeave(self, details)

    def onDisconnect(self):
        self.owner._disconnected(self)
        ApplicationSession.onDisconnect(self)


class HubClient:
    """
    One logical connection to the hub that re-authenticates and reconnects by
    itself. ``token_source()`` returns a JWT (or a Deferred of one); None joins
    anonymously (only for routers that allow it, e.g. benchmarks' bare router).
    """

    log = Logger()

    def __init__(self, url, token_source, realm=REALM, reactor=None, serializers=None, authid=None,
                 reconnect=True, initial_delay=0.2, max_delay=10.0, protocol_options=None, backoff=None):
        if reactor is None:
            from twisted.internet import reactor
        self.url = url
        self.token_source = token_source
        self.realm = realm
        self.reactor = reactor
        self.serializers = serializers
        self.authid = authid
        self.reconnect = reconnect
        self.backoff = backoff or Backoff(initial_delay, max_delay)
        self.protocol_options = protocol_options or {}
        self.session = None
        self.joins = 0
        self.last_leave = None
        self._first = defer.Deferred()
        self._join_callbacks = []
        self._leave_callbacks = []
        self._stopped = False
        self._retry_call = None
        self._protocol = None
        self._closed = None

    def on_join(self, callback):
        """Call ``callback(session)`` on every join (now too, if joined)."""
        self._join_callbacks.append(callback)
        if self.session is not None:
            callback(self.session)

    def on_leave(self, callback):
        """Call ``callback(details)`` whenever the session ends."""
        self._leave_callbacks.append(callback)

    def connect(self):
        """Start connecting; fire with the first joined session, or fail with the first refusal."""
        self._dial()
        return self._first

    def _dial(self):
        if self._stopped:
            return
        parsed = urlparse(self.url)
        factory = WampWebSocketClientFactory(lambda: _Session(self), url=self.url,
                                             serializers=self.serializers)
        if self.protocol_options:
            factory.setProtocolOptions(**self.protocol_options)
        port = parsed.port or (443 if parsed.scheme == "wss" else 80)
        kind = "tls" if parsed.scheme == "wss" else "tcp"
        endpoint = clientFromString(self.reactor, "{}:{}:{}".format(kind, parsed.hostname, port))
        d = endpoint.connect(factory)
        d.addCallback(self._remember_protocol)
        d.addErrback(self._connect_failed)

    def _remember_protocol(self, protocol):
        self._protocol = protocol

    def _connect_failed(self, failure):
        self.log.debug("connect to {url} failed: {error}", url=self.url, error=failure.value)
        self._schedule_retry()

    def _schedule_retry(self):
        if self._stopped or not self.reconnect:
            return
        delay = self.backoff.next()
        self._retry_call = self.reactor.callLater(delay, self._dial)

    def _joined(self, session, details):
        self.session = session
        self.joins += 1
        self.backoff.reset()
        if not self._first.called:
            self._first.callback(session)
        for callback in list(self._join_callbacks):
            try:
                callback(session)
            except Exception:
                self.log.failure("join callback failed")

    def _left(self, session, details):
        self.last_leave = details
        was_joined = self.session is session
        self.session = None
        if not self._first.called and not was_joined:
            # refused before the first join: report it instead of retrying forever
            self._stopped = True
            self._first.errback(ApplicationError(details.reason, details.message))
        for callback in list(self._leave_callbacks):
            try:
                callback(details)
            except Exception:
                self.log.failure("leave callback failed")

    def _disconnected(self, session):
        if self.session is session:
            self.session = None
        self._protocol = None
        closed, self._closed = self._closed, None
        if closed is not None:
            closed.callback(None)
        self._schedule_retry()

    def close(self):
        """Stop reconnecting and close the connection; fire when it is closed."""
        self._stopped = True
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        protocol, self._protocol = self._protocol, None
        if protocol is None or protocol.transport is None:
            return defer.succeed(None)
        if getattr(protocol, "_session", None) is not None:
            # the session's onDisconnect, which runs once the connection is lost, fires this
            self._closed = closed = defer.Deferred()
        else:
            closed = protocol.is_closed  # still in the WebSocket handshake: no session to tell us
        protocol.transport.loseConnection()
        return closed.addCallback(lambda _: None)
