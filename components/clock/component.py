"""
The clock: publishes ``time.tic`` every ``interval`` seconds (0.5 by default)
with ``{"value": "HH:MM:SS", "iso", "seq", "ts"}`` in the ``TZ`` time zone,
and answers ``time.get`` with the latest state.
"""

import datetime
import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from autobahn import wamp
from twisted.internet import task

from components.clock import GET, TOPIC
from components.clock import clock_settings
from components.core.arguments import no_arguments
from components.core.component import HubComponent
from components.core.errors import Unavailable
from components.core.settings import SettingsError
from components.core.state import TopicState


def resolve_zone(name):
    """A tzinfo for ``name`` (IANA), or the system zone when empty."""
    if not name:
        return None
    try:
        return ZoneInfo(name.lstrip(":"))
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError("unknown time zone {!r}".format(name))


class Clock:
    """The clock's state, driven by ``tick()``; time comes from ``clock``."""

    def __init__(self, zone=None, clock=time.time):
        self.zone = zone
        self.clock = clock
        self.state = TopicState(clock)

    def tick(self):
        """Read the time, store it as the new state and return the state dict."""
        moment = datetime.datetime.fromtimestamp(self.clock(), tz=datetime.timezone.utc)
        local = moment.astimezone(self.zone) if self.zone is not None else moment.astimezone()
        return self.state.update(local.strftime("%H:%M:%S"), iso=local.isoformat(timespec="milliseconds"))

    def current(self):
        return self.state.snapshot() or self.tick()


class ClockComponent(HubComponent):
    """Publishes the clock on ``time.tic`` and serves ``time.get``."""

    clock = None

    def start(self):
        interval = self.settings.get(clock_settings.CLOCK_INTERVAL)
        self.clock = Clock(resolve_zone(self.settings.get(clock_settings.TZ)), clock=self.reactor.seconds)
        self.clock.tick()
        self._loop = task.LoopingCall(self._publish)
        self._loop.clock = self.reactor
        d = self.register(self)
        d.addCallback(lambda _: self._start_loop(interval))
        d.addCallback(lambda _: self.log.info("clock ticking every {interval}s", interval=interval))
        return d

    def _start_loop(self, interval):
        self._loop.start(interval, now=True).addErrback(
            lambda failure: self.log.failure("clock loop stopped", failure=failure))

    def _publish(self):
        state = self.clock.tick()
        try:
            self.publish(TOPIC, state)
        except Exception:
            self.log.failure("publishing {topic} failed", topic=TOPIC)

    @wamp.register(GET)
    def get(self, /, *args, **kwargs):
        """The latest state; ``time.get`` takes no arguments (invalid_argument otherwise)."""
        no_arguments(GET, args, kwargs)
        if self.clock is None:
            raise Unavailable("clock not started")
        return self.clock.current()

    def onLeave(self, details):
        loop = getattr(self, "_loop", None)
        if loop is not None and loop.running:
            loop.stop()
        HubComponent.onLeave(self, details)
