"""
Devices online and offline. A device's latest state carries ``stale``: the
device bridge publishes ``{"value": <last value>, "stale": true, ...}`` on
``iot.device.<name>`` (with the hub's next seq and ts, into the history like
any state) when

- its MQTT connection ends without a DISCONNECT packet (a killed client, a
  lost network, its keep-alive expired, its key revoked), at once;
- it sent no reading for ``IOT_STALE_AFTER`` while it holds no MQTT
  connection (HTTP devices, MQTT devices that disconnected cleanly).

Its next reading is a state without ``stale``: online again. Only devices
whose readings went through this worker's bridge are watched; a state is
marked once.
"""

from twisted.logger import Logger

from components.core.periodic import Periodic
from components.iot import DEVICE_PREFIX

# how often silence is looked for (the offline mark comes at most this late after IOT_STALE_AFTER)
CHECK_INTERVAL = 1.0


class DevicePresence(Periodic):
    """
    Offline marks of the device topics of ``bridge`` (a device bridge
    session: ``states`` and ``publish_reading``); ``connected(name)`` tells
    whether the device holds an MQTT connection here. ``clock``: a reactor
    (``seconds``, ``callLater``).
    """

    log = Logger()

    def __init__(self, bridge, clock, silent_after, connected=lambda name: False, interval=CHECK_INTERVAL):
        self.bridge = bridge
        self.clock = clock
        self.silent_after = silent_after
        self.connected = connected
        self.interval = interval
        self.last = {}  # device name -> seconds of its latest reading through this bridge

    def tick(self):
        self.check()

    def reading(self, device):
        """A reading of ``device`` was published (the state that went out is online)."""
        self.last[device] = self.clock.seconds()

    def check(self):
        """Mark offline every watched device silent for ``silent_after`` that holds no MQTT connection."""
        now = self.clock.seconds()
        for device, seen in list(self.last.items()):
            if now - seen >= self.silent_after and not self.connected(device):
                self.offline(device, "no reading for {:g} s".format(self.silent_after))

    def offline(self, device, why):
        """Publish the offline state of ``device`` unless its state is unknown here or already offline;
        fire with the state published, or None."""
        self.last.pop(device, None)
        topic = DEVICE_PREFIX + device
        topic_state = (self.bridge.states or {}).get(topic)
        if topic_state is None or topic_state.snapshot() is None or topic_state.extra.get("stale"):
            return None
        state = topic_state.mark(stale=True)
        self.log.info("device {device!r} offline ({why})", device=device, why=why)
        d = self.bridge.publish_reading(topic, state)
        d.addErrback(lambda failure: self.log.warn("offline state of {device!r} not published: {error}",
                                                   device=device, error=failure.getErrorMessage()))
        return state
