"""
The MQTT port of a router worker: accepts connections on ``MQTT_PORT``
(plain, or TLS with ``MQTT_TLS_CERT``/``MQTT_TLS_KEY``), keeps the logged-in
connections by device, and closes a device's connections within
``SWEEP_INTERVAL`` once its key is revoked or rotated away (one registry
query per sweep for all of them). One client address holds at most
``PENDING_PER_ADDRESS`` connections that have not logged in yet (the
deadline is ``MQTT_CONNECT_TIMEOUT``), so idle connections from one address
cannot take every place of ``MQTT_MAX_CONNECTIONS``. Several router workers share the port (``SO_REUSEPORT``:
the kernel spreads connections over them), each with its own connections.
"""

import socket
import time

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from components.core import core_settings
from components.core.clientaddress import rate_key
from components.core.ratelimit import RateLimiter
from components.core.periodic import Periodic
from components.core.settings import SettingsError
from components.mqtt import mqtt_settings
from components.mqtt.mqtt_connection import DeviceConnection

# how often the keys of the connected devices are checked against the registry
SWEEP_INTERVAL = 0.5
# connections of one client address (IPv6: its /64) not logged in yet; more are closed at once
PENDING_PER_ADDRESS = 32


def tls_options(settings):
    """Twisted TLS options from ``MQTT_TLS_CERT``/``MQTT_TLS_KEY``, None for plain MQTT; SettingsError when
    only one is set, a file cannot be read, or plain MQTT is asked of a node whose ``PUBLIC_URL`` is
    ``https://`` without ``MQTT_ALLOW_PLAIN``."""
    cert, key = settings.get(mqtt_settings.MQTT_TLS_CERT), settings.get(mqtt_settings.MQTT_TLS_KEY)
    if bool(cert) != bool(key):
        raise SettingsError("set both MQTT_TLS_CERT and MQTT_TLS_KEY, or neither (plain MQTT)")
    if not cert:
        public = settings.get(core_settings.PUBLIC_URL) or ""
        if public.startswith("https://") and not settings.get(mqtt_settings.MQTT_ALLOW_PLAIN):
            raise SettingsError("MQTT_PORT would carry device secrets in plain text on a node whose "
                                "PUBLIC_URL is https://: set MQTT_TLS_CERT and MQTT_TLS_KEY, or "
                                "MQTT_ALLOW_PLAIN=on when TLS "
                                "ends at a proxy in front of the MQTT port")
        return None
    from twisted.internet import ssl
    try:
        with open(cert, "rb") as f:
            cert_pem = f.read()
        with open(key, "rb") as f:
            key_pem = f.read()
        return ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem).options()
    except Exception as error:  # OSError, or pyOpenSSL's own Error for a bad PEM
        raise SettingsError("MQTT_TLS_CERT/MQTT_TLS_KEY cannot be used: {}".format(error)) from None


def shared_port(interface, port, backlog=128):
    """A listening IPv4 socket on ``interface``:``port`` that other processes may bind too (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class RefusalLines:
    """Warn lines about clients not logged in: at most ``burst`` at once and ``rate`` a second; the lines left
    out meanwhile are counted in the next one let through."""

    def __init__(self, log, rate=5.0, burst=20, clock=time.monotonic):
        self.log = log
        self.limiter = RateLimiter(rate, burst, clock=clock, max_keys=1)
        self.left_out = 0

    def note(self, line):
        if not self.limiter.check("lines")[0]:
            self.left_out += 1
            return
        left_out, self.left_out = self.left_out, 0
        self.log.warn("{line}{more}", line=line,
                      more=" ({} more such lines left out)".format(left_out) if left_out else "")


class MqttListener(Factory, Periodic):
    """
    Builds a :class:`DeviceConnection` per connection (at most
    ``max_connections``); ``bridge()`` gives the device bridge session or None,
    ``registry`` answers ``lookup(key)``, ``presence`` gets ``offline`` when a
    logged-in connection ends without DISCONNECT.
    """

    log = Logger()
    port = None

    def __init__(self, bridge, registry, presence, reactor, max_connections=1000, connect_timeout=10.0,
                 interval=SWEEP_INTERVAL, pending_per_address=PENDING_PER_ADDRESS, keepalive_max=120.0):
        self.bridge = bridge
        self.registry = registry
        self.presence = presence
        self.reactor = self.clock = reactor
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.keepalive_max = keepalive_max
        self.interval = interval
        self.open = set()
        self.devices = {}  # name -> set of logged-in connections
        self.pending_per_address = pending_per_address
        self.pending = {}  # address key -> connections from there not logged in yet
        # refused and dropped connections of clients not logged in: a few log lines a second at most
        self.refusals = RefusalLines(self.log)

    def buildProtocol(self, addr):
        if len(self.open) >= self.max_connections:
            self.refusals.note("MQTT connection from {} refused: {} connections open "
                               "(MQTT_MAX_CONNECTIONS)".format(getattr(addr, "host", addr), len(self.open)))
            return None
        host = getattr(addr, "host", None)
        key = rate_key(host) if host else None
        if key is not None and self.pending.get(key, 0) >= self.pending_per_address:
            self.refusals.note("MQTT connection from {} refused: {} connections from there not logged in "
                               "yet".format(host, self.pending[key]))
            return None
        connection = DeviceConnection(self)
        connection.pending_key = key
        if key is not None:
            self.pending[key] = self.pending.get(key, 0) + 1
        self.open.add(connection)
        return connection

    def _logged_in_or_gone(self, connection):
        key, connection.pending_key = getattr(connection, "pending_key", None), None
        if key is not None:
            left = self.pending.get(key, 0) - 1
            if left > 0:
                self.pending[key] = left
            else:
                self.pending.pop(key, None)

    def listen(self, interface, port, tls=None):
        """Listen on ``interface``:``port`` (TLS with ``tls`` options) and start the key sweep."""
        factory = self
        if tls is not None:
            from twisted.protocols.tls import TLSMemoryBIOFactory
            factory = TLSMemoryBIOFactory(tls, False, self)
        sock = shared_port(interface, port)
        try:
            self.port = self.reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, factory)
        finally:
            sock.close()
        self.start()
        return self.port

    def stop_listening(self):
        """Stop accepting, stop the sweep and close every connection (unclean: their devices go offline)."""
        Periodic.stop(self)
        port, self.port = self.port, None
        for connection in list(self.open):
            connection.drop("the hub's device bridge is stopping")
        return defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)

    def connected(self, name):
        """True while device ``name`` holds a logged-in connection here."""
        return bool(self.devices.get(name))

    def opened(self, connection):
        self._logged_in_or_gone(connection)
        self.devices.setdefault(connection.device, set()).add(connection)

    def closed(self, connection, clean):
        self.open.discard(connection)
        self._logged_in_or_gone(connection)
        name = connection.device
        if name is None:
            return
        held = self.devices.get(name, set())
        held.discard(connection)
        if not held:
            self.devices.pop(name, None)
            self.log.info("MQTT device {device!r} disconnected ({how})", device=name,
                          how="DISCONNECT" if clean else "no DISCONNECT: offline")
            if not clean and self.presence is not None:
                self.presence.offline(name, "MQTT connection lost without DISCONNECT")

    def tick(self):
        return self.sweep()

    @defer.inlineCallbacks
    def sweep(self):
        """Close the connections whose key no longer names their device (revoked, rotated away): one registry
        query for every connection of this worker."""
        held = [connection for connections in self.devices.values() for connection in connections]
        if not held:
            return
        try:
            names = yield self.registry.names_of(connection.key for connection in held)
        except Exception as error:  # the registry is down: keep the connections, ask again next time
            self.log.debug("MQTT key sweep: {error}", error=error)
            return
        for connection in held:
            if names.get(connection.key) != connection.device:
                connection.drop("its key was revoked or rotated")
