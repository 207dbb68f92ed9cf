"""
IoT's settings: the serial reader, the OData poller, the device bridge
(``/publish``), device rates, the history of states, and the dev node's demo.
"""

import re

from components.core.settings import (
    BOOL, CLIENT, DEV, DEVICE, DURATION, FLOAT, INT, LIST, TEXT, URL, Setting)

_ROLES = (DEV, CLIENT)
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\[\]:-]+\Z")
MIN_DEVICE_SECRET_BYTES = 16


def _origins(origins):
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError("{!r} is not an origin such as https://app.example.org (scheme and host, no path)".format(
                origin[:80]))
    return frozenset(origin.encode("ascii") for origin in origins)


def _positive(number):
    if number <= 0:
        raise ValueError("must be a number above 0, got {!r}".format(number))
    return number


SERIAL_URL = Setting(
    "SERIAL_URL", TEXT, "serial device as a pyserial URL (`/dev/ttyACM0`, `socket://`, `rfc2217://`, `loop://`; a "
    "relative path is under the node directory)", roles=_ROLES,
    shown="serial reader off (dev config: `run/arduino`, the demo's simulated Arduino)")
SERIAL_BAUD = Setting("SERIAL_BAUD", INT, "the serial line's baud rate", default=9600, minimum=50, maximum=4000000,
                      roles=_ROLES)
SERIAL_DEADBAND = Setting("SERIAL_DEADBAND", FLOAT, "publish a reading only when it moved by more than this",
                          default=0.0, minimum=0, roles=_ROLES)
ODATA_URL = Setting(
    "ODATA_URL", URL, "OData entity set to poll", roles=_ROLES,
    shown="OData poller off (dev config: the demo service `http://127.0.0.1:4580/demo/odata.svc/T_IOT_DEMO`)")
ODATA_USER = Setting("ODATA_USER", TEXT, "basic-auth user of the OData service", roles=_ROLES, shown="no auth")
ODATA_PASSWORD = Setting("ODATA_PASSWORD", TEXT, "basic-auth password of the OData service", secret=True,
                         roles=_ROLES, shown="no auth")
ODATA_FIELD = Setting("ODATA_FIELD", TEXT, "field read from the newest row", default="C_VALUE", roles=_ROLES)
ODATA_ORDERBY = Setting("ODATA_ORDERBY", TEXT, "the ordering that puts the newest row first",
                        default="G_CREATED desc", roles=_ROLES)
ODATA_INTERVAL = Setting("ODATA_INTERVAL", DURATION, "seconds between polls", default=5.0, minimum=0.05,
                         roles=_ROLES)
ODATA_TIMEOUT = Setting("ODATA_TIMEOUT", DURATION, "seconds one request may take", default=10.0, minimum=0.05,
                        roles=_ROLES)
ODATA_BACKOFF_MAX = Setting("ODATA_BACKOFF_MAX", DURATION, "longest wait between polls after failures",
                            default=60.0, minimum=0.05, roles=_ROLES)
DEVICE_SHARED_KEY = Setting(
    "DEVICE_SHARED_KEY", BOOL, "deprecated: also accept the one shared `DEVICE_KEY` on `/publish` (logs a warning); "
    "devices have their own keys (`reactive-hub device add NAME`)", default=False, roles=_ROLES)
DEVICE_KEY = Setting(
    "DEVICE_KEY", TEXT, "the shared device key (with `DEVICE_SHARED_KEY=on`), and the simulator's key",
    roles=(DEV, CLIENT, DEVICE), shown="generated into `<node dir>/secrets/device_key`")
DEVICE_SECRET = Setting(
    "DEVICE_SECRET", TEXT, "the shared device secret (at least 16 bytes), and the simulator's secret", secret=True,
    min_length=MIN_DEVICE_SECRET_BYTES, roles=(DEV, CLIENT, DEVICE),
    shown="generated into `<node dir>/secrets/device_secret`")
DEVICE_NAME = Setting("DEVICE_NAME", TEXT, "the device simulator's device name", default="nodemcu-1",
                      roles=(DEVICE,))
DEVICE_TIMESTAMP_LIMIT = Setting(
    "DEVICE_TIMESTAMP_LIMIT", INT, "seconds of clock difference accepted on a signed device request", default=30,
    minimum=1, maximum=3600, roles=_ROLES)
DEVICE_REQUIRE_TLS = Setting(
    "DEVICE_REQUIRE_TLS", BOOL, "refuse device posts over plain HTTP (a request counts as TLS also when "
    "`PUBLIC_URL` is `https://`)", default=False, roles=_ROLES)
DEVICE_CORS_ORIGINS = Setting(
    "DEVICE_CORS_ORIGINS", LIST, "origins (`https://app.example.org`, comma-separated, or `*`) whose pages may post "
    "to `/publish` from a browser; never with credentials", default=frozenset(), parse=_origins, roles=_ROLES,
    shown="unset: no CORS headers")
DEVICE_BODY_LIMIT = Setting("DEVICE_BODY_LIMIT", INT, "most bytes of a `POST /publish` body, enforced while it "
                            "arrives", default=4096, minimum=64, roles=_ROLES)
DEVICE_RATE = Setting(
    "DEVICE_RATE", FLOAT, "readings per second each device may send over `/publish` and `iot.device.publish` "
    "together (per router worker; beyond: 429 / `reactive.error.rate_limited`)", default=10.0, minimum=0.01,
    maximum=1000, roles=_ROLES)
DEVICE_BURST = Setting("DEVICE_BURST", INT, "readings each device may send at once", default=20, minimum=1,
                       maximum=1000, roles=_ROLES)
HISTORY = Setting("HISTORY", BOOL, "keep every IoT source's states in the client database (`off`: nothing stored, "
                  "`iot.history`/`iot.sources` answer `unavailable`)", default=True, roles=_ROLES)
HISTORY_MAX_AGE = Setting("HISTORY_MAX_AGE", DURATION, "raw states older than this are pruned (when "
                          "`HISTORY_RAW_DAYS` is unset)", default=24 * 3600.0,
                          minimum=1, roles=_ROLES)
HISTORY_MAX_STATES = Setting("HISTORY_MAX_STATES", INT, "most states kept per source", default=10000, minimum=1,
                             roles=_ROLES)
HISTORY_PRUNE_INTERVAL = Setting("HISTORY_PRUNE_INTERVAL", DURATION, "how often pruning runs", default=60.0,
                                 minimum=0.1, roles=_ROLES)
HISTORY_FLUSH_INTERVAL = Setting("HISTORY_FLUSH_INTERVAL", DURATION, "longest wait of a state in memory before it "
                                 "is written", default=0.5, minimum=0.01, maximum=60, roles=_ROLES)
HISTORY_BATCH = Setting("HISTORY_BATCH", INT, "a write starts as soon as this many states wait", default=500,
                        minimum=1, maximum=10000, roles=_ROLES)
HISTORY_QUEUE_LIMIT = Setting("HISTORY_QUEUE_LIMIT", INT, "states kept in memory while the database is unavailable; "
                              "beyond it the oldest are dropped (logged)", default=100000, minimum=1, roles=_ROLES)
HISTORY_RAW_DAYS = Setting(
    "HISTORY_RAW_DAYS", FLOAT, "days (above 0) of raw states kept per source (`HISTORY_MAX_STATES` still "
    "bounds their count)",
    parse=_positive, roles=_ROLES, shown="unset: `HISTORY_MAX_AGE`")
HISTORY_ROLLUP_DAYS = Setting("HISTORY_ROLLUP_DAYS", FLOAT, "days of 1-minute and 1-hour rollups kept per "
                              "source", default=90.0, minimum=0.0001, roles=_ROLES)
IOT_STALE_AFTER = Setting("IOT_STALE_AFTER", DURATION, "a device with no reading for this long is listed as not live "
                          "by `iot.sources`", default=30.0, minimum=0.1, roles=_ROLES)
ALARM_RELOAD_INTERVAL = Setting("ALARM_RELOAD_INTERVAL", DURATION, "seconds between reads of the alarm rules (a rule "
                                "added or removed with `reactive-hub alarm` takes effect within this)", default=2.0,
                                minimum=0.05, maximum=3600, roles=_ROLES)
DEMO = Setting("DEMO", BOOL, "dev node only: `off` makes the `demo` worker idle (no simulated Arduino, demo OData "
               "service or demo device)", default=True, roles=(DEV,))
DEMO_ODATA_PORT = Setting("DEMO_ODATA_PORT", INT, "loopback port of the demo OData service (when you change it, set "
                          "`ODATA_URL` to match)", default=4580, minimum=1, maximum=65535, roles=(DEV,))
DEMO_ODATA_INTERVAL = Setting("DEMO_ODATA_INTERVAL", DURATION, "seconds between new rows of the demo OData table",
                              default=1.0, minimum=0.05, roles=(DEV,))
DEMO_DEVICE_INTERVAL = Setting("DEMO_DEVICE_INTERVAL", DURATION, "seconds between the demo device's posts",
                               default=1.0, minimum=0.05, roles=(DEV,))

SETTINGS = (SERIAL_URL, SERIAL_BAUD, SERIAL_DEADBAND, ODATA_URL, ODATA_USER, ODATA_PASSWORD, ODATA_FIELD,
            ODATA_ORDERBY, ODATA_INTERVAL, ODATA_TIMEOUT, ODATA_BACKOFF_MAX, DEVICE_SHARED_KEY, DEVICE_KEY,
            DEVICE_SECRET, DEVICE_NAME, DEVICE_TIMESTAMP_LIMIT, DEVICE_REQUIRE_TLS, DEVICE_CORS_ORIGINS,
            DEVICE_BODY_LIMIT, DEVICE_RATE, DEVICE_BURST, HISTORY, HISTORY_MAX_AGE, HISTORY_MAX_STATES,
            HISTORY_PRUNE_INTERVAL, HISTORY_FLUSH_INTERVAL, HISTORY_BATCH, HISTORY_QUEUE_LIMIT,
            HISTORY_RAW_DAYS, HISTORY_ROLLUP_DAYS, IOT_STALE_AFTER,
            ALARM_RELOAD_INTERVAL, DEMO, DEMO_ODATA_PORT, DEMO_ODATA_INTERVAL, DEMO_DEVICE_INTERVAL)
