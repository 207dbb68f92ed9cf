"""
How the parts of one worker process meet. Crossbar builds router components
and web resources separately, each from its class name in the node config,
and gives the two nothing in common; a web resource that works through a
component's WAMP session (``/publish`` through the device session,
``/health`` and ``/metrics`` through the monitor) is handed that session
here. The node config names the classes and factories of this module for
those pairs, so this wiring exists once, in the node layer, and the feature
code only ever sees a ``session_source`` callable in its constructor.

    "classname": "components.node.assembly.MonitorComponent"     (component)
    "classname": "components.node.assembly.HealthResource"       (web resource)
"""

from twisted.internet import defer

from components.applications import component as app_component, http_api as app_http
from components.applications.app_registry import AppRegistry
from components.core.refusal import refusing
from components.core.settings import Settings, SettingsError
from components.db import db_settings
from components.db.database import Database, StorageConfigError
from components.e2e.keys import load_kek
from components.iot import DEVICE_PREFIX, http_publish, history_seed
from components.mqtt import mqtt_bridge
from components.node import boot, webui
from components.ops import health, metrics, monitor, ops_settings


class WorkerSessions:
    """The joined sessions of one worker process, by the name the assembly gives them."""

    def __init__(self):
        self._sessions = {}

    def joined(self, name, session):
        self._sessions[name] = session

    def left(self, name, session):
        if self._sessions.get(name) is session:
            del self._sessions[name]

    def current(self, name):
        """The session joined as ``name``, or None."""
        session = self._sessions.get(name)
        return session if session is not None and session.is_attached() else None

    def source(self, name):
        """A ``session_source`` for resources: calls give the current session ``name`` or None."""
        return lambda: self.current(name)


# The one meeting point of a worker process's components and resources (see the module docstring).
SESSIONS = WorkerSessions()

# every worker that loads this module answers HTTP (also transports without the UI at "/", such as a
# client node's internal port, whose answers the proxies pass on): no Crossbar version in "Server"
webui.hide_server_version()


def announced(component_class, name, sessions=SESSIONS):
    """``component_class`` that enters ``sessions`` as ``name`` once started and leaves it on leave."""

    class Announced(component_class):
        def __init__(self, *args, **kwargs):
            boot.ensure("router", component_class.__name__)
            component_class.__init__(self, *args, **kwargs)

        def start(self):
            d = defer.maybeDeferred(component_class.start, self)
            d.addCallback(lambda result: sessions.joined(name, self) or result)
            return d

        def onLeave(self, details):
            sessions.left(name, self)
            return component_class.onLeave(self, details)

    Announced.__name__ = Announced.__qualname__ = component_class.__name__
    Announced.__doc__ = component_class.__doc__
    return Announced


MONITOR = "monitor"
DEVICE_BRIDGE = "device_bridge"
APP_BRIDGE = "app_bridge"

MonitorComponent = announced(monitor.MonitorComponent, MONITOR)
# each device topic's seq continues above the highest seq in the IoT history (a clock stepped back);
# MQTT devices (MQTT_PORT) and the offline marks go through the same session
DeviceBridgeSession = announced(
    mqtt_bridge.with_mqtt(history_seed.seeded(http_publish.DeviceBridgeSession, "states", DEVICE_PREFIX)),
    DEVICE_BRIDGE)
AppBridgeSession = announced(app_component.AppBridgeSession, APP_BRIDGE)


@refusing
def HealthResource(extra=None):
    """``/health``: probes answered by this worker's monitor."""
    boot.ensure("proxy", "HealthResource")
    settings = Settings(extra)
    return health.HealthResource(settings.node_directory, SESSIONS.source(MONITOR))


@refusing
def MetricsResource(extra=None):
    """
    ``/metrics``: this worker's monitor as Prometheus text. Open on a service the
    node config marks ``"extra": {"transport": "internal"}`` (a config marker, never
    read from the environment); elsewhere it needs ``Authorization: Bearer
    <METRICS_TOKEN>`` and is off (404) without ``METRICS_TOKEN``.
    """
    settings = Settings(extra)
    internal = settings.extra.get("transport") == "internal"
    token = "" if internal else settings.get(ops_settings.METRICS_TOKEN)
    return metrics.MetricsResource(SESSIONS.source(MONITOR), token=token, internal=internal)


@refusing
def DevicePublishResource(extra=None):
    """``/publish``: signed device posts, published through this worker's device session; replay memory in
    the client database."""
    settings = Settings(extra)
    return http_publish.DevicePublishResource(settings, SESSIONS.source(DEVICE_BRIDGE),
                                        Database(settings.get(db_settings.DATABASE_URL)))


@refusing
def AppsResource(extra=None):
    """``/apps``: ``/apps/publish`` of registered applications, published through this worker's application
    session; the registry in the client database (503 to every request when it cannot be opened)."""
    from twisted.internet import reactor
    settings = Settings(extra)
    registry, disabled = None, None
    try:
        registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
    except (SettingsError, StorageConfigError, OSError) as error:
        disabled = str(error)
        app_http.AppPublishResource.log.error("application publishing disabled: {reason}", reason=disabled)
    return app_http.AppsResource(app_http.AppPublishResource(settings, SESSIONS.source(APP_BRIDGE), registry,
                                                             reactor.seconds, disabled=disabled))


@refusing
def WebUIResource(extra=None):
    """``/``: the static UI with its security headers (``WEB_DIR``, ``PUBLIC_URL`` from ``extra``)."""
    return webui.WebUIResource(Settings(extra))
