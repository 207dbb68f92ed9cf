"""
The device bridge session with MQTT in and device presence:
:func:`with_mqtt` adds to a device bridge class (``states``, ``registry``,
``admit``, ``report``, ``publish_reading``: :mod:`components.iot.http_publish`)

- the offline marks of :mod:`components.mqtt.device_presence` (always on;
  silence after ``IOT_STALE_AFTER``);
- the MQTT listener on ``MQTT_PORT`` when it is set (a setting that cannot be
  used stops the process with one line; a port in use too).
"""

from twisted.internet import defer

from components.core.settings import SettingsError
from components.iot import device_topic, iot_settings
from components.mqtt import mqtt_settings
from components.mqtt.device_presence import DevicePresence
from components.mqtt.mqtt_listener import MqttListener, tls_options


def with_mqtt(bridge_class):
    """``bridge_class`` that also serves MQTT devices and marks devices offline (see the module doc)."""

    class MqttBridge(bridge_class):
        presence = None
        listener = None

        @defer.inlineCallbacks
        def start(self):
            port = self.settings.get(mqtt_settings.MQTT_PORT)
            # before anything runs: a plain port on an https node is refused
            tls = tls_options(self.settings) if port else None
            result = yield defer.maybeDeferred(bridge_class.start, self)
            silent_after = self.settings.get(iot_settings.IOT_STALE_AFTER)
            self.presence = DevicePresence(self, self.reactor, silent_after)
            if port:
                if self.registry is None:  # why is in the log (the bridge's start)
                    raise SettingsError("MQTT_PORT is set but the device registry cannot be opened "
                                        "(see above)")
                self.listener = MqttListener(
                    self.bridge_session, self.registry, self.presence, self.reactor,
                    max_connections=self.settings.get(mqtt_settings.MQTT_MAX_CONNECTIONS),
                    connect_timeout=self.settings.get(mqtt_settings.MQTT_CONNECT_TIMEOUT),
                    keepalive_max=self.settings.get(mqtt_settings.MQTT_KEEPALIVE_MAX))
                self.presence.connected = self.listener.connected
                interface = self.settings.get(mqtt_settings.MQTT_INTERFACE)
                try:
                    self.listener.listen(interface, port, tls)
                except OSError as error:
                    raise SettingsError("MQTT_PORT {}: cannot listen on {}: {}".format(
                        port, interface, error.strerror or error)) from None
                self.log.info("MQTT in: devices connect to {interface}:{port} ({kind})", interface=interface,
                              port=port, kind="TLS" if tls is not None else "plain MQTT")
            self.presence.start()
            return result

        def bridge_session(self):
            """This session while it is attached (readings are dropped otherwise)."""
            return self if self.is_attached() else None

        def report(self, topic, device, value):
            d = bridge_class.report(self, topic, device, value)
            if self.presence is not None and topic == device_topic(device):  # not the shared key's topic
                self.presence.reading(device)
            return d

        def onLeave(self, details):
            if self.presence is not None:
                self.presence.stop()
            if self.listener is not None:
                self.listener.stop_listening()
                self.listener = None
            return bridge_class.onLeave(self, details)

    MqttBridge.__name__ = MqttBridge.__qualname__ = bridge_class.__name__
    MqttBridge.__doc__ = bridge_class.__doc__
    return MqttBridge
