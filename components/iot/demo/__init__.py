"""
The dev node's demo sources, so every IoT panel is live out of the box
without hardware or an SCP account: a simulated Arduino on a
pseudo-terminal (read by the real serial reader), a demo OData v2 service
shaped like SCP's IoT table (polled by the real OData poller) and one
registered demo device posting signed readings through the node's own
``/publish``. They run in the dev node's guest worker ``demo``
(``python -m components.iot.demo``) and never in the production configs:
``components.node.topology`` drops the worker and turns the dev defaults
below back into plain ``${VAR}`` references.

The names, paths and defaults are defined here, once (the settings' in
:mod:`components.iot.iot_settings`).
"""

from components.iot import iot_settings

# the guest worker of .crossbar/config.json that runs all of them
WORKER = "demo"
# the simulated Arduino's stable device path, relative to the node directory (the router worker's cwd)
ARDUINO_LINK = "run/arduino"
# the demo OData service: loopback port (8080 hub, 8090 internal, 4566 SNS/SQS emulator) and entity set
ODATA_PORT = iot_settings.DEMO_ODATA_PORT.default
ODATA_PATH = "/demo/odata.svc/T_IOT_DEMO"
ODATA_URL = "http://127.0.0.1:{}{}".format(ODATA_PORT, ODATA_PATH)
# the registered demo device and where its key and secret are kept (mode 0600)
DEVICE_NAME = "demo-device"
DEVICE_CREDENTIALS = "secrets/demo_device.json"

# the dev config's defaults pointing the real components at the demo, and what production configs say
DEV_DEFAULTS = {
    "${SERIAL_URL:-" + ARDUINO_LINK + "}": "${SERIAL_URL}",
    "${ODATA_URL:-" + ODATA_URL + "}": "${ODATA_URL}",
    # the dev node's MQTT listener (components.mqtt): production and test nodes only listen when MQTT_PORT is set
    "${MQTT_PORT:-1884}": "${MQTT_PORT}",
    "${MQTT_INTERFACE:-127.0.0.1}": "${MQTT_INTERFACE}",
}


def is_worker(item):
    """True for the demo's guest worker in a config's ``workers`` list."""
    return isinstance(item, dict) and item.get("type") == "guest" and item.get("id") == WORKER


def without_demo(value):
    """
    ``value`` (a node config or part of one) without the demo: no guest
    worker ``demo``, and the dev defaults above turned back into plain
    ``${VAR}`` references (the sources are off unless configured).
    """
    if isinstance(value, dict):
        return {key: without_demo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_demo(item) for item in value if not is_worker(item)]
    return DEV_DEFAULTS.get(value, value) if isinstance(value, str) else value
