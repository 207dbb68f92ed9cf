"""
One device's MQTT connection. Crossbar's MQTT 3.1.1 codec
(``crossbar.bridge.mqtt.tx.MQTTServerTwistedProtocol``: packet parsing,
CONNACK, PUBACK, PINGRESP, the keep-alive timer of 1.5 × the client's
keep-alive) calls this handler, which applies the hub's rules:

- CONNECT: username = a registered device's key, password = its secret
  (compared in constant time); else CONNACK 4 (bad user name or password),
  3 (server unavailable) when the registry cannot answer, and the
  connection closes;
- PUBLISH on ``iot/device/<its name>`` only: another topic closes the
  connection (MQTT 3.1.1 has no refusal of a PUBLISH); the payload is
  ``{"value": <scalar>}`` (a ``"device"`` beside it must be its own name),
  the reading rules of ``POST /publish``; any other payload, and a reading
  over the device's rate limit, is dropped (logged once per streak; QoS 1 is
  still acknowledged, as MQTT requires);
- SUBSCRIBE is refused (SUBACK 0x80): devices publish only;
- a will is accepted but never published: the hub publishes the device's
  own offline state instead (:mod:`components.mqtt.device_presence`);
- a QoS 2 PUBLISH sent again (DUP) before its PUBREL is acknowledged
  again but published once; more than ``QOS2_IN_FLIGHT`` of them awaiting
  their PUBREL close the connection;
- a packet or unfinished data beyond ``MAX_BUFFER`` bytes, or no CONNECT
  within ``MQTT_CONNECT_TIMEOUT``, closes the connection; so does no packet
  for 1.5 × ``MQTT_KEEPALIVE_MAX`` from a device that asked for no
  keep-alive (0) or a longer one (the codec's own keep-alive timer closes
  the others after 1.5 × theirs), so a silent device is marked offline;
- the connection's end always reaches the listener (the codec's
  ``connectionLost`` raised ``AlreadyCalled`` after its own keep-alive timer
  had closed the connection, which left the device online and its place
  taken).

What a client not logged in causes is logged through the listener's
``refusals`` (:class:`components.mqtt.mqtt_listener.RefusalLines`: a few
lines a second whatever the number of connections).
"""

import hmac
import json

from crossbar.bridge.mqtt.protocol import MQTTParser
from crossbar.bridge.mqtt.tx import MQTTServerTwistedProtocol
from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from components.core import errors
from components.db.database import StorageUnavailable
from components.iot import device_topic
from components.iot.http_publish import check_value
from components.mqtt import mqtt_topic

ACCEPTED, UNAVAILABLE, BAD_CREDENTIALS = 0, 3, 4
SUBSCRIBE_REFUSED = 0x80
# a reading is a few dozen bytes: one packet (and what waits unparsed) stays below this
MAX_BUFFER = 8192
# QoS 2 PUBLISHes awaiting their PUBREL (client libraries keep some 20 in flight; the packet ids allow 65,535)
QOS2_IN_FLIGHT = 128


def mqtt_reading(payload, name):
    """The value of an MQTT payload of device ``name``: ``{"value": <scalar>}`` (``"device": name`` beside it
    allowed) as UTF-8 JSON; InvalidArgument otherwise."""
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise errors.InvalidArgument("the payload must be UTF-8 JSON") from None
    if not isinstance(body, dict) or set(body) not in ({"value"}, {"device", "value"}):
        raise errors.InvalidArgument('the payload must be {"value": <scalar>} and nothing else')
    if body.get("device", name) != name:
        raise errors.NotAuthorized("device {!r} may not name another device".format(name))
    return check_value(body["value"])


class BoundedParser(MQTTParser):
    """Crossbar's MQTT parser fed at most up to ``MAX_BUFFER`` + 1 unparsed bytes at a time: a packet longer
    than that is never parsed (its data stays over the bound and the connection drops it), even when all of
    it arrived in one read, while any number of smaller packets in one read are. ``on_packets()`` is called
    after a read that completed at least one packet."""

    def __init__(self, on_packets=None):
        MQTTParser.__init__(self)
        self.on_packets = on_packets

    def data_received(self, data):
        events = []
        while data:
            room = MAX_BUFFER + 1 - len(self._data)
            if room <= 0:
                break
            events += MQTTParser.data_received(self, data[:room])
            data = data[room:]
        if events and self.on_packets is not None:
            self.on_packets()
        return events


class DeviceConnection(Protocol):
    """The hub's side of one MQTT connection, made by :class:`components.mqtt.mqtt_listener.MqttListener`."""

    log = Logger()
    device = None   # the registered name once CONNECT was accepted
    key = None
    _connect_timer = None
    _idle_timer = None
    _idle_after = None
    _dropping = False

    def __init__(self, listener):
        self.listener = listener
        self.reactor = listener.reactor
        self._mqtt = MQTTServerTwistedProtocol(self, listener.reactor)
        self._mqtt._mqtt = BoundedParser(self._packets_arrived)
        self._invalid_logged = False
        self._qos2_pending = set()  # packet ids of QoS 2 PUBLISHes published, their PUBREL not yet received

    # --- the transport ------------------------------------------------------------------------------

    def connectionMade(self):
        self._mqtt.transport = self.transport
        self._connect_timer = self.reactor.callLater(self.listener.connect_timeout, self._no_connect)

    def dataReceived(self, data):
        self._mqtt.dataReceived(data)
        parser = getattr(self._mqtt, "_mqtt", None)
        if len(getattr(parser, "_data", b"")) > MAX_BUFFER:
            self.drop("a packet over {} bytes".format(MAX_BUFFER))

    def connectionLost(self, reason):
        self._cancel_connect_timer()
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()
        # the codec cancels its keep-alive timer unless it is None, also after the timer closed the connection
        keep_alive = getattr(self._mqtt, "_timeout", None)
        if keep_alive is not None and not keep_alive.active():
            self._mqtt._timeout = None
        try:
            self._mqtt.connectionLost(reason)
        finally:
            # the codec forgets its transport only on a DISCONNECT packet: the device left cleanly
            clean = self._mqtt.transport is None
            self.listener.closed(self, clean)

    def drop(self, why):
        """Close the connection now (logged once), without waiting for buffered data."""
        if self._dropping or self.transport is None:
            return
        self._dropping = True
        line = "MQTT connection of {} closed: {}".format(self.who(), why)
        if self.device is None:  # a client not logged in: at the listener's bounded rate
            self.listener.refusals.note(line)
        else:
            self.log.warn("{line}", line=line)
        self.transport.abortConnection()

    def who(self):
        return repr(self.device) if self.device else "a client not logged in ({})".format(self._peer())

    def _peer(self):
        peer = self.transport.getPeer() if self.transport is not None else None
        return "{}:{}".format(peer.host, peer.port) if hasattr(peer, "host") else str(peer)

    def _packets_arrived(self):
        """A whole packet arrived: the wait for the next one starts again (bytes of an unfinished one do not
        count, as for the codec's own keep-alive timer)."""
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.reset(self._idle_after)

    def _idle(self, keep_alive):
        self._idle_timer = None
        self.drop("no packet for {:g} s (keep-alive {} s asked; MQTT_KEEPALIVE_MAX {:g} s)".format(
            self._idle_after, keep_alive, self.listener.keepalive_max))

    def _no_connect(self):
        self._connect_timer = None
        if self.device is None:
            self.drop("no CONNECT within {:g} s".format(self.listener.connect_timeout))

    def _cancel_connect_timer(self):
        if self._connect_timer is not None and self._connect_timer.active():
            self._connect_timer.cancel()
        self._connect_timer = None

    # --- the codec's handler interface ----------------------------------------------------------------

    @defer.inlineCallbacks
    def process_connect(self, packet):
        """``(return code, session present)`` for a CONNECT: the device's key and secret, else refused."""
        key, secret = packet.username, packet.password
        if not key or secret is None:
            self.listener.refusals.note("MQTT CONNECT without username and password refused ({})".format(
                self._peer()))
            return BAD_CREDENTIALS, False
        try:
            device = yield self.listener.registry.lookup(key)
        except StorageUnavailable as error:
            self.listener.refusals.note("MQTT CONNECT refused: device registry unavailable: {}".format(error))
            return UNAVAILABLE, False
        except Exception:  # a secret this node's KEK cannot unwrap, ...: the reason stays in the log
            self.log.failure("MQTT CONNECT refused: device lookup failed")
            return UNAVAILABLE, False
        if device is None or not hmac.compare_digest(device.secret.encode("utf-8"), secret.encode("utf-8")):
            self.listener.refusals.note("MQTT CONNECT refused: unknown, revoked or rotated key, or wrong "
                                        "secret ({})".format(self._peer()))
            return BAD_CREDENTIALS, False
        if self.transport is None or self._dropping:
            return BAD_CREDENTIALS, False
        self._cancel_connect_timer()
        self.device, self.key = device.name, key
        self.listener.opened(self)
        bound = self.listener.keepalive_max
        if not packet.keep_alive or packet.keep_alive > bound:
            self._idle_after = bound * 1.5
            self._idle_timer = self.reactor.callLater(self._idle_after, self._idle, packet.keep_alive)
        self.log.info("MQTT device {device!r} connected (client id {client_id!r}, keep-alive {keep_alive} s)",
                      device=device.name, client_id=packet.client_id, keep_alive=packet.keep_alive)
        return ACCEPTED, False

    def process_publish_qos_0(self, event):
        self._publish(event)
        return defer.succeed(None)

    def process_publish_qos_1(self, event):
        self._publish(event)

    def process_publish_qos_2(self, event):
        if event.packet_identifier in self._qos2_pending:
            return  # sent again before its PUBREL: the codec sends PUBREC again, the reading is published once
        if len(self._qos2_pending) >= QOS2_IN_FLIGHT:
            return self.drop("more than {} QoS 2 PUBLISHes awaiting their PUBREL".format(QOS2_IN_FLIGHT))
        self._qos2_pending.add(event.packet_identifier)
        self._publish(event)

    def process_pubrel(self, event):
        self._qos2_pending.discard(event.packet_identifier)

    def process_subscribe(self, packet):
        self._mqtt.send_suback(packet.packet_identifier, [SUBSCRIBE_REFUSED] * len(packet.topic_requests))

    def process_unsubscribe(self, packet):
        return defer.succeed(None)

    def process_puback(self, event):
        pass

    process_pubrec = process_pubcomp = process_puback

    # --- readings -------------------------------------------------------------------------------------

    def _publish(self, event):
        """One PUBLISH of the logged-in device: published through the bridge, dropped or refused."""
        name = self.device
        if name is None:
            return self.drop("PUBLISH before CONNECT")
        if event.topic_name != mqtt_topic(name):
            return self.drop("it may publish on {} only, not {!r}".format(mqtt_topic(name),
                                                                         event.topic_name[:80]))
        bridge = self.listener.bridge()
        if bridge is None:
            self.log.warn("MQTT reading of {device!r} dropped: device bridge session not joined", device=name)
            return None
        try:
            value = mqtt_reading(event.payload, name)
        except errors.NotAuthorized as error:
            return self.drop(str(error))
        except errors.InvalidArgument as error:
            if not self._invalid_logged:
                self._invalid_logged = True
                self.log.warn("MQTT reading of {device!r} dropped: {reason} (logged once per connection)",
                              device=name, reason=str(error))
            return None
        try:
            bridge.admit(name)  # logs once per streak of readings over the limit
        except errors.RateLimited:
            return None
        d = bridge.report(device_topic(name), name, value)
        d.addCallback(lambda _: bridge.registry.seen(name) if bridge.registry is not None else None)
        d.addErrback(lambda failure: self.log.warn("MQTT reading of {device!r} not published: {error}",
                                                   device=name, error=failure.getErrorMessage()))
        return None
