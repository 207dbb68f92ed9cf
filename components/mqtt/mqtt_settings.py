"""MQTT in: the listener's port, interface, TLS files and bounds."""

from components.core.settings import BOOL, CLIENT, DEV, DURATION, FILE, INT, TEXT, Setting

_ROLES = (DEV, CLIENT)

MQTT_PORT = Setting(
    "MQTT_PORT", INT, "MQTT 3.1.1 listener for registered devices (username = device key, password = its "
    "secret, topic `iot/device/<name>`); 0: off", default=0, minimum=0, maximum=65535, roles=_ROLES,
    shown="0: off (dev config: 1884; 1883 is left to a Mosquitto on the machine)")
MQTT_INTERFACE = Setting("MQTT_INTERFACE", TEXT, "IPv4 address the MQTT listener binds", default="0.0.0.0",
                         roles=_ROLES)
MQTT_TLS_CERT = Setting("MQTT_TLS_CERT", FILE, "PEM certificate of the MQTT listener (with `MQTT_TLS_KEY`: "
                        "MQTT over TLS)", roles=_ROLES, shown="plain MQTT")
MQTT_TLS_KEY = Setting("MQTT_TLS_KEY", FILE, "PEM private key of the MQTT listener", roles=_ROLES,
                       shown="plain MQTT")
MQTT_ALLOW_PLAIN = Setting(
    "MQTT_ALLOW_PLAIN", BOOL, "serve plain MQTT although `PUBLIC_URL` is `https://` (TLS ends at a proxy in "
    "front of the MQTT port); without it such a node refuses to start", default=False, roles=_ROLES)
MQTT_MAX_CONNECTIONS = Setting("MQTT_MAX_CONNECTIONS", INT, "most MQTT connections per router worker (more "
                               "are closed at once)", default=1000, minimum=1, maximum=100000, roles=_ROLES)
MQTT_CONNECT_TIMEOUT = Setting("MQTT_CONNECT_TIMEOUT", DURATION, "seconds a new connection has to send its "
                               "CONNECT", default=10.0, minimum=0.1, maximum=600, roles=_ROLES)

MQTT_KEEPALIVE_MAX = Setting(
    "MQTT_KEEPALIVE_MAX", DURATION, "longest keep-alive the hub honours: a device that asks for none (0) or a "
    "longer one is closed, and marked offline, after no packet for 1.5 times this", default=120.0, minimum=1,
    maximum=65535, roles=_ROLES)

SETTINGS = (MQTT_PORT, MQTT_INTERFACE, MQTT_TLS_CERT, MQTT_TLS_KEY, MQTT_ALLOW_PLAIN, MQTT_MAX_CONNECTIONS,
            MQTT_CONNECT_TIMEOUT, MQTT_KEEPALIVE_MAX)
