"""
Runs the demo sources in one process (the dev node's guest worker
``demo``): the simulated Arduino behind ``<node dir>/run/arduino``, the
demo OData service on ``127.0.0.1:DEMO_ODATA_PORT`` and the demo device
posting to ``http://127.0.0.1:PORT/publish``. A part whose environment
cannot run it (no pseudo-terminals, the client database or the
key-encryption key unusable) is logged and left out, and the process stays
up. A setting that cannot be used, or the demo OData port taken by another
process (whose data the OData panel would show), refuses the process with
one line (:mod:`components.core.refusal`, exit 78); as the dev node's guest
worker (``--stop-node``) it stops the node too (:func:`stopping_node`).
"""

import os

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.web.server import Site

from components.core import core_settings, refusal
from components.core.settings import SettingsError
from components.db import db_settings
from components.iot import iot_settings
from components.iot.demo import ARDUINO_LINK, DEVICE_CREDENTIALS, DEVICE_NAME, ODATA_PATH
from components.iot.demo.odata_service import DemoTable, IoTTableResource
from components.iot.demo.potentiometer import ArduinoSimulator
from components.iot.demo.pty_device import PseudoTerminal

PARTS = ("arduino", "odata", "device")


def stopping_node(exit=os._exit, kill=os.kill, parent=os.getppid):
    """
    An ``exit`` for a demo run as the dev node's guest worker (``--stop-node``):
    Crossbar does not stop a node when a guest worker exits, so a refusal
    first sends SIGTERM to the node's controller (this process's parent),
    which shuts the node down, then exits.
    """
    import signal

    def stop(code):
        kill(parent(), signal.SIGTERM)
        exit(code)
    return stop


def port_taken_line(error):
    """The refusal line for the demo OData service's port taken (``error``: the CannotListenError)."""
    return ("{} the demo OData port 127.0.0.1:{} is taken ({}), so the OData panel would show another "
            "process's data: set DEMO_ODATA_PORT to a free port and ODATA_URL to "
            "http://127.0.0.1:<that port>{}, or stop the other process, or DEMO=off".format(
                refusal.PREFIX, error.port, error.socketError, ODATA_PATH))


class DemoRunner:
    """Starts the ``parts`` asked for with ``settings`` (a Settings of the node directory) on ``reactor``."""

    log = Logger()

    def __init__(self, reactor, settings, parts=PARTS, exit=os._exit):
        self.reactor = reactor
        self.exit = exit
        self.settings = settings
        self.parts = parts
        self.arduino = self.pty = self.table = self.listening = self.device = self.pool = None
        self._registry = None

    @property
    def directory(self):
        return self.settings.node_directory

    def start(self):
        """Start every part; fire when the device part has its credentials (or gave up)."""
        for part in PARTS:
            if part in self.parts and part != "device":
                try:
                    getattr(self, "start_" + part)()
                except SettingsError as error:
                    refusal.refuse(refusal.settings_line(error, "the demo's " + part), self.log, self.exit)
                    return defer.succeed(None)
                except CannotListenError as error:
                    refusal.refuse(port_taken_line(error), self.log, self.exit)
                    return defer.succeed(None)
                except OSError as error:
                    self.log.error("demo: {part} not started: {reason}", part=part, reason=error)
        if "device" in self.parts:
            return self.start_device()
        return defer.succeed(None)

    def start_arduino(self):
        self.pty = PseudoTerminal(os.path.join(self.directory, ARDUINO_LINK))
        link = self.pty.open()
        self.arduino = ArduinoSimulator(self.reactor, self.pty.write)
        self.arduino.start()
        self.log.info("demo: simulated Arduino on {link} -> {device} (random walk 0..1023, dead band {band}, "
                      "every {ms} ms)", link=link, device=self.pty.device, band=self.arduino.reporter.band,
                      ms=int(self.arduino.interval * 1000))

    def start_odata(self):
        port = self.settings.get(iot_settings.DEMO_ODATA_PORT)
        interval = self.settings.get(iot_settings.DEMO_ODATA_INTERVAL)
        self.table = DemoTable(self.reactor, interval=interval)
        site = Site(IoTTableResource(self.table))
        site.noisy = False
        site.log = lambda request: None  # no access log: the poller asks every few seconds
        self.listening = self.reactor.listenTCP(port, site, interface="127.0.0.1")
        self.table.start()
        self.log.info("demo: OData v2 service on http://127.0.0.1:{port}{path} (a row every {interval}s)",
                      port=port, path=ODATA_PATH, interval=interval)

    @defer.inlineCallbacks
    def start_device(self):
        from components.db.database import StorageConfigError, StorageUnavailable

        try:
            # imported here: a registry that cannot load costs the device part only, never the process
            from components.db.database import Database
            from components.e2e.keys import load_kek
            from components.iot.demo.device import DemoDevice, ensure_registered
            from components.iot.device_registry import DeviceRegistry

            from components.iot.device_rate import device_rate

            # never faster than the hub lets one device post (DEVICE_RATE)
            interval = max(self.settings.get(iot_settings.DEMO_DEVICE_INTERVAL),
                           1.0 / device_rate(self.settings))
            port = self.settings.get(core_settings.PORT)
            self._registry = DeviceRegistry(Database(self.settings.get(db_settings.DATABASE_URL)),
                                            load_kek(self.settings))
            credentials = yield ensure_registered(self._registry, DEVICE_NAME,
                                                  os.path.join(self.directory, DEVICE_CREDENTIALS))
        except (OSError, SettingsError, StorageConfigError, StorageUnavailable) as error:
            self.log.error("demo: device not started: {reason}", reason=error)
            return None
        except Exception:
            self.log.failure("demo: device not started")
            return None
        finally:
            if self._registry is not None:
                self._registry.db.close()
                self._registry = None
        if credentials is None:
            self.log.warn("demo: device {name} is revoked; it posts nothing (add it under another name, or "
                          "delete the client database to start afresh)", name=DEVICE_NAME)
            return None
        import treq.client
        from twisted.web.client import Agent

        from components.core.quietpool import QuietConnectionPool
        url = "http://127.0.0.1:{}/publish".format(port)
        self.pool = QuietConnectionPool(self.reactor)
        http = treq.client.HTTPClient(Agent(self.reactor, pool=self.pool, connectTimeout=5))
        self.device = DemoDevice(self.reactor, http, url, credentials, interval=interval)
        self.device.start()
        self.log.info("demo: device {name} posting to {url} every {interval}s (credentials in {path})",
                      name=DEVICE_NAME, url=url, interval=interval,
                      path=os.path.join(self.directory, DEVICE_CREDENTIALS))
        return credentials

    def stop(self):
        """Stop every part and remove the Arduino's link."""
        for part in (self.arduino, self.table, self.device):
            if part is not None:
                part.stop()
        if self.pty is not None:
            self.pty.close()
        if self.pool is not None:
            self.pool.closeCachedConnections()
        if self.listening is not None:
            return self.listening.stopListening()
        return None
