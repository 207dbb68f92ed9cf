"""The settings of the stored event history (``hub.history`` and the feed topics)."""

from components.core.settings import CLIENT, DEV, DURATION, FLOAT, INT, LIST, Setting

_ROLES = (DEV, CLIENT)

HISTORY_TOPICS = Setting(
    "HISTORY_TOPICS", LIST, "topics whose events are stored for `hub.history` and resumed by hub.js: "
    "prefixes ending in `.` or exact topics, comma-separated; `none` turns the stored history off",
    default=("app.", "iot.device.", "iot.serial.reader", "iot.odata.value", "iot.alarm"), roles=_ROLES)
HISTORY_TOPIC_MAX_EVENTS = Setting(
    "HISTORY_TOPIC_MAX_EVENTS", INT, "most events kept per history topic (older ones are pruned)",
    default=1000, minimum=1, maximum=10000000, roles=_ROLES)
HISTORY_TOPIC_MAX_AGE = Setting(
    "HISTORY_TOPIC_MAX_AGE", DURATION, "how long an event of a history topic is kept (`7d`, `12h`)",
    default=7 * 86400.0, minimum=1.0, maximum=10 * 366 * 86400.0, roles=_ROLES)
HISTORY_TOPIC_PRUNE_INTERVAL = Setting(
    "HISTORY_TOPIC_PRUNE_INTERVAL", DURATION, "seconds between prunings of the stored topic history",
    default=60.0, minimum=0.05, maximum=86400.0, roles=_ROLES)

HISTORY_EVENT_MAX_BYTES = Setting(
    "HISTORY_EVENT_MAX_BYTES", INT, "an event whose args and kwargs take more bytes (as JSON) is delivered "
    "but not stored (readers resuming past it are told `pruned`)", default=65536, minimum=256,
    maximum=16777216, roles=_ROLES)
HISTORY_MAX_BYTES = Setting(
    "HISTORY_MAX_BYTES", INT, "most bytes of stored events over all history topics; the oldest are pruned "
    "first",
    default=256 * 1024 * 1024, minimum=1024 * 1024, maximum=2 ** 50, roles=_ROLES)
HISTORY_STORE_RATE = Setting(
    "HISTORY_STORE_RATE", FLOAT, "events per second stored per application (all its topics) or per other "
    "topic; events above it are delivered but not stored", default=100.0, minimum=0.01, maximum=1000000,
    roles=_ROLES)
HISTORY_STORE_BURST = Setting(
    "HISTORY_STORE_BURST", FLOAT, "events stored at once above `HISTORY_STORE_RATE`", default=200.0,
    minimum=1, maximum=10000000, roles=_ROLES)

SETTINGS = (HISTORY_TOPICS, HISTORY_TOPIC_MAX_EVENTS, HISTORY_TOPIC_MAX_AGE, HISTORY_TOPIC_PRUNE_INTERVAL,
            HISTORY_EVENT_MAX_BYTES, HISTORY_MAX_BYTES, HISTORY_STORE_RATE, HISTORY_STORE_BURST)
