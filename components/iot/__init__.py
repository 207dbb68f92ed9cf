"""
IoT sources: the serial reader (an Arduino on a serial port), the OData
poller (SCP's IoT service) and devices publishing over the signed HTTP
bridge. Their topics and procedures are defined here, once.
"""

SERIAL_TOPIC = "iot.serial.reader"
SERIAL_GET = "iot.serial.get"
ODATA_TOPIC = "iot.odata.value"
ODATA_GET = "iot.odata.get"
DEVICE_TOPIC = "iot.device.reading"
# what devices may publish under (the router's ``device`` role)
DEVICE_PREFIX = "iot."
