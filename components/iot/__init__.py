"""
IoT sources: the serial reader (an Arduino on a serial port), the OData
poller (SCP's IoT service) and devices publishing over the signed HTTP
bridge. Their topics, procedures and error URIs are defined here, once.
"""

from components.core.errors import family

SERIAL_TOPIC = "iot.serial.reader"
SERIAL_GET = "iot.serial.get"
ODATA_TOPIC = "iot.odata.value"
ODATA_GET = "iot.odata.get"
# what devices (the HTTP bridge and ``device`` tokens, the router's ``device`` role) may publish under;
# every other ``iot.`` topic belongs to our components (role ``backend``)
DEVICE_PREFIX = "iot.device."
# the deprecated shared key's topic (DEVICE_SHARED_KEY=on): the device is named in the payload only
DEVICE_TOPIC = DEVICE_PREFIX + "reading"


def device_topic(name):
    """The topic of the registered device ``name``: ``iot.device.<name>`` (names: components.iot.device_registry)."""
    return DEVICE_PREFIX + name


# how a device with a ``device`` token reports a reading over WAMP: the bridge session validates it, names the
# device after the token's subject and publishes it with the hub's seq (devices may not publish themselves)
DEVICE_PUBLISH = "iot.device.publish"
# the stored states of one IoT source (its topic URI), and the list of sources with their latest state
HISTORY = "iot.history"
SOURCES = "iot.sources"
# alarms: raised and cleared on one topic, the current ones listed, acknowledged by an admin (components.iot.alarm_*)
ALARM_TOPIC = "iot.alarm"
ALARMS = "iot.alarms"
ALARM_ACK = "iot.alarm.ack"

# the device HTTP publisher (/publish) refuses a signed request it has seen before
DEVICE_REPLAYED = "reactive.error.device.replayed"
Replayed = family("Replayed", DEVICE_REPLAYED, "A signed device request that was seen before: nothing published.",
                  401, module=__name__)
