"""
MQTT in: registered devices publish their readings over MQTT 3.1.1 on
``MQTT_PORT`` (username = device key, password = secret, topic
``iot/device/<name>``, payload ``{"value": ...}``), and the hub marks a
device offline when its connection ends without DISCONNECT or (any device)
when it stays silent. Readings go through the device bridge session of
:mod:`components.iot.http_publish`, so seq/ts, history and the rate limit
are the HTTP path's.
"""

# the MQTT topic of a device is this prefix + its registered name (the WAMP topic: ``iot.device.<name>``)
MQTT_DEVICE_PREFIX = "iot/device/"


def mqtt_topic(name):
    """The one MQTT topic the device ``name`` may publish on."""
    return MQTT_DEVICE_PREFIX + name
