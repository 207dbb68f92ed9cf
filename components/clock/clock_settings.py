"""
The clock's settings: how often it ticks and in which time zone.
"""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from components.core.settings import CLIENT, DEV, DURATION, TEXT, Setting


def _zone_name(text):
    """``text`` when it names an IANA time zone (a leading ``:`` allowed), else ValueError."""
    try:
        ZoneInfo(text.strip().lstrip(":"))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/Zurich, got {!r}".format(text[:64]))
    return text.strip()


CLOCK_INTERVAL = Setting("CLOCK_INTERVAL", DURATION, "seconds between `time.tic` events", default=0.5, minimum=0.05,
                         maximum=3600, roles=(DEV, CLIENT))
TZ = Setting("TZ", TEXT, "the clock's time zone (IANA name)", parse=_zone_name, roles=(DEV, CLIENT),
             shown="the system's")

SETTINGS = (CLOCK_INTERVAL, TZ)
