"""
Deadlines before authentication: a WAMP connection that has not completed
authentication in time is closed, and each client address may hold only so
many connections that have not.

Crossbar keeps a WebSocket or RawSocket connection open for as long as the
peer answers pings, whether or not it ever sends HELLO or answers the
CHALLENGE: 600 such WebSockets were all still open after 80 s, each holding a
file descriptor and a session object. Crossbar has no option for it: the
WebSocket ``open_handshake_timeout`` (set in the configs) ends only the HTTP
upgrade, ``auto_ping_timeout`` only a peer that stops answering pings.

``install()`` wraps ``buildProtocol`` of Crossbar's WAMP-over-WebSocket and
WAMP-over-RawSocket server factories (router and proxy workers: ``/ws``,
``/rlink``, the Unix sockets) and ``connectionLost`` of their protocols:

- a new connection from a TCP address that already holds
  ``WAMP_PENDING_PER_ADDRESS`` connections not yet authenticated (default 32;
  0: no cap; peers in ``WAMP_PENDING_EXEMPT``, by default loopback, are not
  counted) is refused: ``buildProtocol`` gives it a :class:`Refusal`
  instead of the WAMP protocol, which answers a WebSocket upgrade with HTTP
  429 (``Retry-After``: the deadline) and closes the connection (a RawSocket
  is just closed). Unix-socket peers (the hub's own proxies and containers)
  are not counted.
- every connection gets a deadline, ``WAMP_AUTH_DEADLINE`` (default 10 s)
  after it was accepted; a connection whose WAMP session has not been
  welcomed by then (no HELLO, an unanswered CHALLENGE, an authenticator still
  deciding) is closed: WebSocket close 1008, then the TCP connection, without
  waiting for the peer. The deadline counts only time the hub waits for the
  client: when it passes while the hub has not yet answered the client's
  last WAMP message (a HELLO or AUTHENTICATE with no CHALLENGE, WELCOME or
  ABORT sent since: a slow authenticator, a proxy worker waiting for its
  router in a join storm) it is re-armed, up to ``HUB_WAIT_DEADLINES``
  (6) deadlines from the accept, so a wedged hub does not hold connections
  for ever (:func:`track_turns`: per-connection wrappers of the protocol's
  receive and send, dropped at the WELCOME). A Unix-socket peer (the hub's
  own proxy workers and containers: their slowness is the hub's) has those
  6 deadlines from the start.

A session counts as authenticated once the router (or the proxy worker's
frontend session) has given it a session id, which it does just before its
WELCOME. Each refusal and closure is one warn line (peer and reason), at most
5 a second after a burst of 20 (``wireclose.RefusalLog``). The cap counts the
address the worker sees (IPv6 by its /64), except for a WebSocket upgrade
from one of ``TRUSTED_PROXIES``: it counts the client the proxy names in its
``FORWARDED_HEADER`` (``components.core.clientaddress``, as
the login limit does; autobahn's ``WebSocketResource.render`` is wrapped to
hand that address to ``buildProtocol``). Loopback (a reverse proxy on the
same host that is not in ``TRUSTED_PROXIES``, the benchmarks' load clients)
is exempt by default.

A router session that leaves while its connection stays open (its client's
GOODBYE, or the hub ending it: ``session_cutoff``) puts the connection back
under a deadline counted from that moment, and back in its address's count
(``RouterSession.onLeave`` is wrapped): a client may join again on the same
connection within ``WAMP_AUTH_DEADLINE``, and one that does not is closed
like any other. Each welcomed session re-arms it once, so HELLO and ABORT
repeated before a welcome do not extend it. (A connection welcomed before
its deadline keeps its timer, which finds it welcomed and lets it go.)
A proxy worker's frontend session cannot join again after its client's
GOODBYE (Crossbar keeps its session id and refuses a second HELLO), so
``ProxyFrontendSession.onMessage`` is wrapped to close such a connection
``WAMP_AUTH_DEADLINE`` after that GOODBYE instead of keeping it for ever.
"""

import math
import re

from twisted.internet.protocol import Protocol

from components.core.clientaddress import (X_FORWARDED_FOR, client_address, parse_address, parse_networks,
                                           peer_address, rate_key)
from components.core import core_settings
from components.core.settings import Settings
from components.node import node_settings
from components.node.patches import PatchUnavailable, names_used, replacement, unpatched
from components.node.patches.wireclose import (CLOSE_POLICY_VIOLATION, RefusalLog, close_rawsocket, close_websocket,
                                               peer_of, welcomed)

NAME = "auth_deadline"
SECURITY = True
WORKERS = ("router", "proxy")
SUMMARY = ("WAMP connections not authenticated within WAMP_AUTH_DEADLINE are closed; at most "
           "WAMP_PENDING_PER_ADDRESS of them per client address")
UPSTREAM = "docs/upstream/auth_deadline.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}

PATCHED = "_reactive_hub_auth_deadline"
DEFAULT_DEADLINE = node_settings.WAMP_AUTH_DEADLINE.default
DEFAULT_PER_ADDRESS = node_settings.WAMP_PENDING_PER_ADDRESS.default
# the host's own reverse proxy, benchmarks and tools: not capped unless WAMP_PENDING_EXEMPT says otherwise
DEFAULT_EXEMPT = tuple(node_settings.WAMP_PENDING_EXEMPT.default.split(","))
NOT_IN_TIME = "WAMP authentication not completed in time"
# a connection whose hub still owes an answer is re-armed, but closed this many deadlines after its watch began
HUB_WAIT_DEADLINES = 6
# on a protocol not yet welcomed: True while the hub owes an answer to the client's last WAMP message
_HUB_OWES = "_reactive_hub_owes_answer"
# where forwarding() leaves the forwarded client address for the factory's next buildProtocol
_FORWARDED = "_reactive_hub_forwarded_client"


class DeadlineSettings:
    """
    ``WAMP_AUTH_DEADLINE`` (seconds), ``WAMP_PENDING_PER_ADDRESS`` (0: no
    cap), ``WAMP_PENDING_EXEMPT``: the networks whose peers are not capped
    (comma-separated; ``none`` for no exemption), by default loopback, and
    ``TRUSTED_PROXIES``: peers whose forwarded client address is counted
    instead of their own, read from ``FORWARDED_HEADER`` (``header``;
    ``components.core.clientaddress``).
    """

    def __init__(self, deadline=DEFAULT_DEADLINE, per_address=DEFAULT_PER_ADDRESS, exempt=DEFAULT_EXEMPT,
                 trusted=(), header=X_FORWARDED_FOR):
        self.deadline = deadline
        self.per_address = per_address
        self.exempt = parse_networks(",".join(exempt), "WAMP_PENDING_EXEMPT")
        self.trusted = tuple(trusted)
        self.header = header

    @classmethod
    def from_environment(cls, argv=None, environ=None):
        settings = Settings.of_process(argv, environ)
        networks = settings.get(node_settings.WAMP_PENDING_EXEMPT)
        return cls(deadline=settings.get(node_settings.WAMP_AUTH_DEADLINE),
                   per_address=settings.get(node_settings.WAMP_PENDING_PER_ADDRESS),
                   exempt=[str(network) for network in networks],
                   trusted=settings.get(core_settings.TRUSTED_PROXIES),
                   header=settings.get(core_settings.FORWARDED_HEADER))

    def key(self, host):
        """The key connections from ``host`` (an IP address text) are counted under (IPv6 by its /64), or
        None when they are not capped (an exempt network)."""
        address = parse_address(host)
        if address is not None and any(address.version == network.version and address in network
                                       for network in self.exempt):
            return None
        return rate_key(host)

    def describe(self):
        cap = "{} per address".format(self.per_address) if self.per_address else "no cap per address"
        if self.per_address and self.exempt:
            cap += " except {}".format(", ".join(str(network) for network in self.exempt))
        if self.per_address and self.trusted:
            cap += ", forwarded clients counted behind {}".format(", ".join(str(network) for network in self.trusted))
        return "{:g} s, {}".format(self.deadline, cap)


def address_key(address):
    """The host of a TCP peer address; None for any other (Unix sockets are not capped)."""
    return getattr(address, "host", None) if getattr(address, "type", None) in ("TCP", "TCP6") else None


class PendingConnections:
    """
    Connections not yet known to be authenticated: each one's deadline, and
    per client address the ones inside their deadline (authenticated ones are
    dropped when the address is counted). ``clock`` (a reactor) is looked up
    at the first connection when not given; ``closers`` maps a protocol's
    kind to the function that closes it.
    """

    def __init__(self, settings, log=None, clock=None, is_authenticated=welcomed):
        self.settings = settings
        self.log = log or RefusalLog()
        self.clock = clock
        self.is_authenticated = is_authenticated
        self._by_address = {}
        self._watched = {}
        # every open connection once watched: [key, close, the session id it last re-armed for]
        self._open = {}

    def admit(self, key):
        """True when ``key`` (an address, None for uncapped) may open one more unauthenticated connection."""
        cap = self.settings.per_address
        if not cap or key is None:
            return True
        pending = self._by_address.get(key, ())
        for protocol in [item for item in pending if self.is_authenticated(item)]:
            self.forget(protocol)
        return len(self._by_address.get(key, ())) < cap

    def refused(self, key):
        self.log.note("reactive hub: refused a WAMP connection from {}: {} connections from this address are not "
                      "authenticated yet (WAMP_PENDING_PER_ADDRESS)".format(key, self.settings.per_address))

    def watch(self, protocol, key, close, final=False, local=False):
        """Start ``protocol``'s deadline; ``close(protocol, code, reason)`` ends it when it passes unauthenticated
        (``final``: whether or not it is). ``local``: a Unix-socket peer (the hub's own proxy worker or
        container, whose slowness is the hub's): its deadline is the cap, ``HUB_WAIT_DEADLINES`` deadlines."""
        if self.clock is None:
            from twisted.internet import reactor
            self.clock = reactor
        delay = self.settings.deadline * (HUB_WAIT_DEADLINES if local else 1)
        call = self.clock.callLater(delay, self._expired, protocol)
        self._watched[protocol] = (key, call, close, final, self.clock.seconds())
        if not final:
            track_turns(protocol)
        self._open.setdefault(protocol, [key, close, None])
        if key is not None:
            self._by_address.setdefault(key, set()).add(protocol)

    def forget(self, protocol):
        """Stop watching ``protocol`` (closed, or authenticated)."""
        entry = self._watched.pop(protocol, None)
        if entry is None:
            return
        key, call = entry[:2]
        if call.active():
            call.cancel()
        pending = self._by_address.get(key)
        if pending is not None:
            pending.discard(protocol)
            if not pending:
                del self._by_address[key]

    def closed(self, protocol):
        """``protocol``'s connection is gone: stop watching it for good."""
        self.forget(protocol)
        self._open.pop(protocol, None)

    def left(self, protocol, session_id, rejoin=True):
        """
        The welcomed session ``session_id`` of ``protocol`` ended while its
        connection stays open: a new deadline from now, counted for its
        address again (once per session id; nothing for a closed connection).
        ``rejoin`` False: the connection cannot be welcomed again, it is
        closed at that deadline whatever its session state says.
        """
        entry = self._open.get(protocol)
        if entry is None or session_id is None or entry[2] == session_id:
            return
        entry[2] = session_id
        self.forget(protocol)
        self.watch(protocol, entry[0], entry[1], final=not rejoin)

    def pending(self, key):
        """How many watched connections ``key`` holds (authenticated ones included until counted or expired)."""
        return len(self._by_address.get(key, ()))

    def _expired(self, protocol):
        entry = self._watched.get(protocol)
        if entry is None:
            return
        key, _call, close, final, started = entry
        if not final and not self.is_authenticated(protocol) and protocol.__dict__.get(_HUB_OWES):
            cap = started + HUB_WAIT_DEADLINES * self.settings.deadline - self.clock.seconds()
            if cap > 0:
                call = self.clock.callLater(min(self.settings.deadline, cap), self._expired, protocol)
                self._watched[protocol] = (key, call, close, final, started)
                return
        self.forget(protocol)
        if self.is_authenticated(protocol) and not final:
            return
        self.log.note("reactive hub: closed a WAMP connection from {}: not authenticated within {:g} s".format(
            peer_of(protocol), round(self.clock.seconds() - started, 1)))
        close(protocol, CLOSE_POLICY_VIOLATION, NOT_IN_TIME)


# the messages the hub answers before a welcome: HELLO (CHALLENGE, WELCOME or ABORT) and AUTHENTICATE
_ANSWERED_TYPES = frozenset((1, 5))
_JSON_TYPE = re.compile(rb"\s*\[\s*(\d{1,3})\s*[,\]]")


def _array_item(payload, small_array, long_headers, one_byte_int):
    """The unsigned integer a MessagePack or CBOR array begins with when it is below 256 (its one-byte form, or
    ``one_byte_int`` and a byte), else None."""
    if not payload:
        return None
    head = payload[0]
    start = 1 if small_array[0] <= head <= small_array[1] else 1 + long_headers.get(head, -1)
    if start <= 0 or start >= len(payload):
        return None
    item = payload[start]
    if item < 0x18:  # a MessagePack positive fixint or a CBOR small unsigned integer
        return item
    if item == one_byte_int and start + 1 < len(payload):
        return payload[start + 1]
    return None


# CBOR's self-describe tag (55799), which an encoder may put first
_CBOR_SELF_DESCRIBED = b"\xd9\xd9\xf7"


def message_type(serializer, payload):
    """
    The WAMP message type ``payload`` (one message, or the first of a
    batch) starts with, read from its first bytes without decoding it, for
    autobahn's JSON, MessagePack and CBOR serializers (``serializer``: the
    protocol's ``_serializer``); None when it cannot be told.
    """
    inner = getattr(serializer, "_serializer", None)
    name = getattr(inner, "NAME", None)
    if not isinstance(payload, (bytes, bytearray)):
        return None
    if name == "json":
        match = _JSON_TYPE.match(payload)
        return int(match.group(1)) if match else None
    if getattr(inner, "_batched", False):
        payload = payload[4:]  # a batched binary message starts after its 4-byte length
    if name == "msgpack":
        return _array_item(payload, (0x90, 0x9F), {0xDC: 2, 0xDD: 4}, 0xCC)
    if name == "cbor":
        if payload[:3] == _CBOR_SELF_DESCRIBED:
            payload = payload[3:]
        return _array_item(payload, (0x80, 0x97), {0x98: 1, 0x99: 2, 0x9A: 4, 0x9B: 8, 0x9F: 0}, 0x18)
    return None


def track_turns(protocol):
    """
    Until ``protocol`` sends WELCOME, keep on it whether the hub owes the
    client an answer: set by each HELLO or AUTHENTICATE received (WebSocket
    ``onMessage``, RawSocket ``stringReceived``; :func:`message_type`: any
    other message, such as a CALL or GOODBYE before a welcome, which the
    router leaves unanswered, sets nothing), cleared by each one sent
    (CHALLENGE, ABORT). Per-instance wrappers, dropped at the WELCOME: a
    welcomed session pays nothing. Nothing for a protocol without those
    methods, or already tracked.
    """
    klass = type(protocol)
    receive_name = "stringReceived" if callable(getattr(klass, "stringReceived", None)) else "onMessage"
    state = protocol.__dict__
    if "send" in state or not callable(getattr(klass, "send", None)) or not callable(getattr(klass, receive_name,
                                                                                                None)):
        return
    from autobahn.wamp.message import Welcome

    def received(*args):
        if args and message_type(getattr(protocol, "_serializer", None), args[0]) in _ANSWERED_TYPES:
            state[_HUB_OWES] = True
        return getattr(klass, receive_name)(protocol, *args)

    def send(msg):
        state[_HUB_OWES] = False
        if isinstance(msg, Welcome):
            state.pop("send", None)
            state.pop(receive_name, None)
        return klass.send(protocol, msg)

    state[receive_name] = received
    state["send"] = send


class Refusal(Protocol):
    """
    What a refused connection gets instead of a WAMP protocol: ``answer``
    (for a WebSocket, an HTTP 429 to its upgrade request), then the close.
    """

    def __init__(self, answer=b""):
        self.answer = answer

    def connectionMade(self):
        if self.answer:
            self.transport.write(self.answer)
        self.transport.loseConnection()

    def dataReceived(self, data):
        """Whatever the peer still sends is dropped."""


def too_many(settings):
    """The HTTP answer to a WebSocket upgrade from an address over the cap."""
    return ("HTTP/1.1 429 Too Many Requests\r\nRetry-After: {}\r\nContent-Length: 0\r\nConnection: close\r\n"
            "\r\n").format(int(math.ceil(settings.deadline))).encode("ascii")


def admitting(build_protocol, pending, close, answer):
    """
    A factory's ``buildProtocol`` that answers an address over the cap with a
    :class:`Refusal` (``answer`` first) and starts each connection's deadline.
    The address is the TCP peer's, or the forwarded client's that
    :func:`forwarding` left on the factory for this very call.
    """

    def buildProtocol(self, addr):
        host = self.__dict__.pop(_FORWARDED, None) or address_key(addr)
        key = None if host is None else pending.settings.key(host)
        if not pending.admit(key):
            pending.refused(host)
            return Refusal(answer)
        protocol = build_protocol(self, addr)
        if protocol is not None:
            pending.watch(protocol, key, close, local=getattr(addr, "type", None) not in ("TCP", "TCP6"))
        return protocol

    return replacement(buildProtocol, admitting, PATCHED)


def forwarding(render, settings, factory_classes):
    """
    ``WebSocketResource.render`` that, for a WAMP upgrade from one of
    ``TRUSTED_PROXIES``, hands the forwarded client address to the factory's
    ``buildProtocol`` it is about to call (the request is gone by then).
    """

    def render_request(self, request):
        factory = getattr(self, "_factory", None)
        if settings.trusted and isinstance(factory, factory_classes):
            forwarded = client_address(request, settings.trusted, settings.header)
            if forwarded != peer_address(request):
                factory.__dict__[_FORWARDED] = forwarded
        try:
            return render(self, request)
        finally:
            if factory is not None:
                factory.__dict__.pop(_FORWARDED, None)

    return replacement(render_request, forwarding, PATCHED)


def forgetting(connection_lost, pending):
    """A protocol's ``connectionLost`` that also ends its deadline (after the library's, which may end the
    session)."""

    def connectionLost(self, reason):
        try:
            return connection_lost(self, reason)
        finally:
            pending.closed(self)

    return replacement(connectionLost, forgetting, PATCHED)


def rearming(on_leave, pending):
    """``RouterSession.onLeave`` that puts a connection whose welcomed session leaves back under a deadline."""

    def onLeave(self, details):
        transport = getattr(self, "_transport", None)
        if transport is not None:
            pending.left(transport, getattr(self, "_previous_session_id", None))
        return on_leave(self, details)

    return replacement(onLeave, rearming, PATCHED)


def closing_after_goodbye(on_message, pending):
    """``ProxyFrontendSession.onMessage`` that, after its client's GOODBYE to a joined session, closes the
    connection a deadline later (the frontend session cannot join again)."""
    from autobahn.wamp.message import Goodbye

    def onMessage(self, msg):
        session_id = getattr(self, "_session_id", None) if isinstance(msg, Goodbye) else None
        result = on_message(self, msg)
        transport = getattr(self, "transport", None)
        if session_id is not None and transport is not None:
            pending.left(transport, session_id, rejoin=False)
        return result

    return replacement(onMessage, closing_after_goodbye, PATCHED)


def _targets(crossbar_protocol, settings):
    """(factory, protocol, how to close one, what a refused one is told) of WebSocket and RawSocket."""
    return ((crossbar_protocol.WampWebSocketServerFactory, crossbar_protocol.WampWebSocketServerProtocol,
             close_websocket, too_many(settings)),
            (crossbar_protocol.WampRawSocketServerFactory, crossbar_protocol.WampRawSocketServerProtocol,
             close_rawsocket, b""))


def install(settings=None, crossbar_protocol=None, clock=None, resource_class=None, session_class=None,
            frontend_class=None):
    """
    Wrap Crossbar's WAMP server factories and protocols and autobahn's
    ``WebSocketResource.render`` and Crossbar's ``RouterSession.onLeave``
    and ``ProxyFrontendSession.onMessage`` (``crossbar_protocol``,
    ``resource_class``, ``session_class``, ``frontend_class``: stand-ins for
    tests); a note with the settings if wrapped now, False if
    already. PatchUnavailable when the factories, protocols, the resource or
    the session state read here are missing.
    """
    if resource_class is None:
        try:
            from autobahn.twisted.resource import WebSocketResource as resource_class
        except ImportError as error:
            raise PatchUnavailable("cannot import autobahn's WebSocketResource: {}".format(error))
    if crossbar_protocol is None:
        try:
            from crossbar.router import protocol as crossbar_protocol
            from crossbar.router.session import RouterSession
            from crossbar.worker.proxy import ProxyFrontendSession
        except ImportError as error:
            raise PatchUnavailable("cannot import crossbar's WAMP transports or sessions: {}".format(error))
        for klass in (RouterSession, ProxyFrontendSession):
            if "_session_id" not in _assigned(klass):
                raise PatchUnavailable("{} no longer keeps _session_id".format(klass.__name__))
        if not {"_previous_session_id", "_transport"} <= _assigned(RouterSession):
            raise PatchUnavailable("RouterSession no longer keeps _previous_session_id and _transport")
        if not {"_session_id", "transport"} <= _assigned(ProxyFrontendSession):
            raise PatchUnavailable("ProxyFrontendSession no longer keeps _session_id and transport")
        session_class, frontend_class = RouterSession, ProxyFrontendSession
    settings = settings or DeadlineSettings.from_environment()
    targets = _targets(crossbar_protocol, settings)
    missing = ["{}.{}".format(klass.__name__, name) for factory, protocol, _close, _answer in targets
               for klass, name in ((factory, "buildProtocol"), (protocol, "connectionLost"))
               if not callable(getattr(klass, name, None))]
    if missing:
        raise PatchUnavailable("missing " + ", ".join(missing))
    if all(getattr(target[0].buildProtocol, PATCHED, False) for target in targets):
        return False
    render = unpatched(resource_class, "render", PATCHED)
    if render is None or not {"_factory", "buildProtocol"} <= names_used(render):
        raise PatchUnavailable("{}.render no longer builds its protocol with _factory.buildProtocol".format(
            resource_class.__name__))
    for klass, name in ((session_class, "onLeave"), (frontend_class, "onMessage")):
        if klass is not None and not callable(getattr(klass, name, None)):
            raise PatchUnavailable("{}.{} is missing".format(klass.__name__, name))
    on_leave = None if session_class is None else unpatched(session_class, "onLeave", PATCHED)
    on_message = None if frontend_class is None else unpatched(frontend_class, "onMessage", PATCHED)
    pending = PendingConnections(settings, clock=clock)
    for factory, protocol, close, answer in targets:
        build = unpatched(factory, "buildProtocol", PATCHED)
        lost = unpatched(protocol, "connectionLost", PATCHED)
        if build is None or lost is None:
            raise PatchUnavailable("{} partly patched already".format(factory.__name__))
        factory.buildProtocol = admitting(build, pending, close, answer)
        protocol.connectionLost = forgetting(lost, pending)
    resource_class.render = forwarding(render, settings, tuple(target[0] for target in targets))
    if on_leave is not None:
        session_class.onLeave = rearming(on_leave, pending)
    if on_message is not None:
        frontend_class.onMessage = closing_after_goodbye(on_message, pending)
    return settings.describe()


def _assigned(klass):
    """The attribute names the methods of ``klass`` use (read from their code objects)."""
    names = set()
    for value in vars(klass).values():
        names |= names_used(value)
    return names
