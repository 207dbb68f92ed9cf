"""
The history service (role ``backend``): ``iot.history`` and ``iot.sources``
for users and admins, and the background pruning of the stored states.

- ``iot.history(source, after_seq=None, limit=500, minutes=None,
  resolution="raw")``: the stored states of ``source`` (a topic URI:
  ``iot.serial.reader``, ``iot.odata.value``, ``iot.device.<name>``) with
  ``seq > after_seq`` and, with ``minutes``, ``ts`` within the last
  ``minutes``; oldest first, at most ``limit`` (1..1000) of them:
  ``{"source", "resolution", "states", "pruned", "more"}``. With
  ``resolution`` ``"1m"`` or ``"1h"`` the states are rollup rows whose
  ``seq`` is their bucket start (:mod:`components.iot.history_rollup`). A
  well-formed source without history answers no states; anything else is
  ``invalid_argument``.
- ``iot.sources()``: every source with history, plus the serial reader and
  OData poller when they run on this node: ``[{"source", "kind", "state",
  "live", "last_seen"}]``. A source is not live when its state is marked
  stale, when (serial, OData) its component does not answer its ``.get``
  here, or when (devices) no reading came for ``IOT_STALE_AFTER``.

Pruning runs every ``HISTORY_PRUNE_INTERVAL`` and keeps per source at most
``HISTORY_MAX_STATES`` raw states no older than ``HISTORY_RAW_DAYS`` (by
default ``HISTORY_MAX_AGE``), and rollups for ``HISTORY_ROLLUP_DAYS``. With
``HISTORY=off`` nothing is stored and both procedures answer ``unavailable``.
Registered with the ``roundrobin`` invoke policy, so the component may run on
several router workers or nodes at once.
"""

import math

from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer
from twisted.logger import Logger

from components.core.arguments import REQUIRED, bind, integer, shown
from components.core.component import HubComponent
from components.core.errors import DATABASE_UNAVAILABLE, HubError, InvalidArgument, Unavailable
from components.core.periodic import Periodic
from components.core.state import epoch_ms
from components.db.database import StorageUnavailable
from components.iot import HISTORY, ODATA_GET, ODATA_TOPIC, SERIAL_GET, SERIAL_TOPIC, SOURCES, iot_settings
from components.iot.history import MAX_SOURCE, kind_of
from components.iot.history_rollup import RAW, RESOLUTIONS
from components.iot.history_writer import shared_writer

MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
MAX_MINUTES = 366 * 24 * 60
MAX_SEQ = 2 ** 63 - 1
DEFAULT_MAX_AGE = iot_settings.HISTORY_MAX_AGE.default
DEFAULT_ROLLUP_AGE = iot_settings.HISTORY_ROLLUP_DAYS.default * 86400
DEFAULT_MAX_STATES = iot_settings.HISTORY_MAX_STATES.default
DEFAULT_PRUNE_INTERVAL = iot_settings.HISTORY_PRUNE_INTERVAL.default
DEFAULT_STALE_AFTER = iot_settings.IOT_STALE_AFTER.default
# the components whose own .get tells whether they run here
_RUNNING = ((SERIAL_TOPIC, SERIAL_GET), (ODATA_TOPIC, ODATA_GET))
_GET_TIMEOUT = 2.0


def history_query(args, kwargs, now_ms):
    """
    ``(source, after_seq, limit, since_ts, resolution)`` of an ``iot.history`` call
    (``since_ts`` from ``minutes``, else None); InvalidArgument otherwise.
    """
    source, after_seq, limit, minutes, resolution = bind(HISTORY, args, kwargs, {
        "source": REQUIRED, "after_seq": None, "limit": DEFAULT_LIMIT, "minutes": None, "resolution": RAW})
    if not isinstance(source, str) or len(source) > MAX_SOURCE or kind_of(source) is None:
        raise InvalidArgument("source must be an IoT topic ({}, {} or iot.device.<name>), got {}".format(
            SERIAL_TOPIC, ODATA_TOPIC, shown(source)), field="source")
    if after_seq is not None:
        integer("after_seq", after_seq, 0, MAX_SEQ)
    integer("limit", limit, 1, MAX_LIMIT)
    since_ts = None
    if minutes is not None:
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes) \
                or not 0 < minutes <= MAX_MINUTES:
            raise InvalidArgument("minutes must be a number above 0 and at most {}, got {}".format(
                MAX_MINUTES, shown(minutes)), field="minutes")
        since_ts = now_ms - int(minutes * 60000)
    if not isinstance(resolution, str) or resolution not in RESOLUTIONS:
        raise InvalidArgument("resolution must be one of {}, got {}".format(
            ", ".join(RESOLUTIONS), shown(resolution)), field="resolution")
    return source, after_seq, limit, since_ts, resolution


def describe_sources(stored, running, now_ms, stale_after_ms):
    """
    The ``iot.sources`` list from ``stored`` (``[(source, last_ts, state)]``)
    and ``running`` (``{source: state}`` of the components answering their
    ``.get`` here), by source name.
    """
    found = {source: state for source, _, state in stored}
    for source, state in running.items():
        newer = source not in found or state.get("seq", 0) > found[source].get("seq", 0)
        if newer and not _empty(state):
            found[source] = state
    listed = []
    for source in sorted(set(found) | set(running)):
        kind = kind_of(source)
        state = found.get(source, running.get(source))
        if kind in ("serial", "odata"):
            now = running.get(source)
            live = now is not None and not now.get("stale", False)
        else:
            live = state is not None and not state.get("stale", False) and \
                now_ms - state.get("ts", 0) <= stale_after_ms
        seen = state is not None and not _empty(state)
        listed.append({"source": source, "kind": kind, "state": state, "live": live,
                       "last_seen": state.get("ts") if seen else None})
    return listed


def _empty(state):
    """The state of a source that never had a reading (``value`` None, stale)."""
    return state.get("value") is None and state.get("stale", False)


def raw_age(settings):
    """Seconds raw states are kept: ``HISTORY_RAW_DAYS`` when set, else ``HISTORY_MAX_AGE``."""
    days = settings.get(iot_settings.HISTORY_RAW_DAYS)
    return settings.get(iot_settings.HISTORY_MAX_AGE) if days == "" else days * 86400


class Pruner(Periodic):
    """
    Every ``interval`` seconds on ``clock``: ``store.prune`` of the raw states to ``max_states`` and
    ``max_age`` seconds, of the rollups to ``rollup_age`` seconds.
    """

    log = Logger()

    def __init__(self, store, clock, max_age=DEFAULT_MAX_AGE, max_states=DEFAULT_MAX_STATES,
                 interval=DEFAULT_PRUNE_INTERVAL, rollup_age=DEFAULT_ROLLUP_AGE):
        self.store = store
        self.clock = clock
        self.max_age = max_age
        self.rollup_age = rollup_age
        self.max_states = max_states
        self.interval = interval
        self.deleted = 0
        self.failing = False

    def tick(self):
        return self.prune()

    def prune(self):
        """One pass; fires with the rows deleted (0 on database trouble, which is logged once per streak)."""
        now = epoch_ms(self.clock.seconds)
        raw_oldest, rollup_oldest = now - int(self.max_age * 1000), now - int(self.rollup_age * 1000)
        d = self.store.prune(self.max_states, raw_oldest, rollup_oldest)
        d.addCallbacks(self._pruned, self._failed)
        return d

    def _pruned(self, deleted):
        self.deleted += deleted
        if self.failing:
            self.failing = False
            self.log.info("history pruning works again")
        return deleted

    def _failed(self, failure):
        if not self.failing:
            self.failing = True
            self.log.warn("history pruning failed ({error}); trying again in {interval}s",
                          error=failure.getErrorMessage(), interval=self.interval)
        return 0


class HistoryComponent(HubComponent):
    """Serves ``iot.history`` and ``iot.sources`` and prunes the history (see the module doc)."""

    bounded_procedures = frozenset([HISTORY, SOURCES])
    store = None
    pruner = None
    writer = None

    @defer.inlineCallbacks
    def start(self):
        settings = self.settings
        self.stale_after = settings.get(iot_settings.IOT_STALE_AFTER)
        writer = shared_writer(self)
        options = RegisterOptions(invoke="roundrobin")
        yield self.register(self.history, HISTORY, options=options)
        yield self.register(self.sources, SOURCES, options=options)
        if writer is None:
            self.log.info("IoT history off (HISTORY=off): {history} and {sources} answer unavailable",
                          history=HISTORY, sources=SOURCES)
            return
        self.store = writer.store
        self.writer = writer
        self.pruner = Pruner(
            self.store, self.reactor,
            max_age=raw_age(settings),
            max_states=settings.get(iot_settings.HISTORY_MAX_STATES),
            interval=settings.get(iot_settings.HISTORY_PRUNE_INTERVAL),
            rollup_age=settings.get(iot_settings.HISTORY_ROLLUP_DAYS) * 86400)
        self.pruner.start()
        self.log.info("IoT history on: at most {states} raw states per source, none older than {age}s; "
                      "rollups kept {rollup}s; pruned every {interval}s", states=self.pruner.max_states,
                      age=self.pruner.max_age, rollup=self.pruner.rollup_age, interval=self.pruner.interval)

    def _store(self):
        if self.store is None:
            raise Unavailable("IoT history is off on this node (HISTORY=off)")
        return self.store

    def _now_ms(self):
        return epoch_ms(self.reactor.seconds)

    @defer.inlineCallbacks
    def history(self, /, *args, **kwargs):
        """``iot.history``: see the module doc."""
        source, after_seq, limit, since_ts, resolution = history_query(args, kwargs, self._now_ms())
        store = self._store()
        try:
            # states still queued in this worker's writer belong in the answer: a page that resubscribed a moment
            # ago asks after_seq=<last seen> and would otherwise miss the readings published just before
            yield self.writer.drain()
            page = yield store.page(source, after_seq, limit, since_ts, resolution)
        except Exception as error:
            self._database_failed(HISTORY, error)
        return page

    @defer.inlineCallbacks
    def sources(self, /, *args, **kwargs):
        """``iot.sources``: see the module doc."""
        bind(SOURCES, args, kwargs, {})
        store = self._store()
        running = {}
        for source, procedure in _RUNNING:
            running_state = yield self._running_state(procedure)
            if running_state is not None:
                running[source] = running_state
        try:
            stored = yield store.sources()
        except Exception as error:
            self._database_failed(SOURCES, error)
        return describe_sources(stored, running, self._now_ms(), self.stale_after * 1000)

    def _database_failed(self, procedure, error):
        """
        Answer a failed read without the database's words, which stay in
        the log: ``unavailable`` when it is down, ``internal`` otherwise.
        """
        if isinstance(error, StorageUnavailable):
            self.log.warn("{procedure}: history database unavailable: {error}", procedure=procedure, error=error)
            raise Unavailable(DATABASE_UNAVAILABLE) from None
        self.log.failure("{procedure} failed", procedure=procedure)
        raise HubError("{} failed".format(procedure)) from None

    @defer.inlineCallbacks
    def _running_state(self, procedure):
        """The state ``procedure`` answers here, or None when it does not run or does not answer in time."""
        try:
            d = self.call(procedure)
            state = yield d.addTimeout(_GET_TIMEOUT, self.reactor)
        except Exception:  # not registered here, not answering, or this session is going away
            return None
        return state if isinstance(state, dict) else None

    def onLeave(self, details):
        if self.pruner is not None:
            self.pruner.stop()
            self.pruner = None
        HubComponent.onLeave(self, details)
