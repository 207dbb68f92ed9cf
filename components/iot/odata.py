"""
The OData poller of the SCP IoT post: every ``ODATA_INTERVAL`` seconds it
asks ``ODATA_URL`` for the newest row (``$top=1&$orderby=G_CREATED desc``,
HTTP basic auth), reads ``ODATA_FIELD`` from an OData v2
(``d.results[0].<field>``) or v4 (``value[0].<field>``) answer, publishes
``iot.odata.value`` when the value changes and serves ``iot.odata.get``.

Timeouts, HTTP errors, 401, garbage and unexpected JSON keep the last value
(marked ``stale``), are logged once per failure streak and back off; the
next good answer clears the mark. A poll starts only after the previous one
ended, so a slow server never gets overlapping requests. Off when
``ODATA_URL`` is unset. Every published state is also kept in the IoT history,
and seq continues above the highest stored one
(:mod:`components.iot.history_writer`, :mod:`components.iot.history_seed`).
"""

import json
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import treq
from autobahn import wamp
from twisted.internet import defer
from twisted.logger import Logger

from components.core.arguments import no_arguments
from components.core.backoff import Backoff
from components.iot import ODATA_GET, ODATA_TOPIC, iot_settings
from components.iot.live import LiveValue
from components.iot.source import SourceComponent

MAX_BODY = 1024 * 1024
SCALARS = (str, int, float, bool, type(None))


class PollError(Exception):
    """One failed poll; the message says why."""


def query_url(url, orderby="G_CREATED desc"):
    """``url`` with ``$top=1`` and ``$orderby`` added unless it already sets them."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in params}
    if "$top" not in present:
        params.append(("$top", "1"))
    if "$orderby" not in present and orderby:
        params.append(("$orderby", orderby))
    query = urlencode(params, quote_via=quote, safe="$,'()")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def extract_value(document, field):
    """The ``field`` of the first row of an OData v2 or v4 JSON answer, else PollError."""
    if not isinstance(document, dict):
        raise PollError("answer is not a JSON object")
    if "d" in document:
        rows = document["d"]
        if isinstance(rows, dict):
            rows = rows.get("results")
    elif "value" in document:
        rows = document["value"]
    else:
        raise PollError("answer has neither 'd' (OData v2) nor 'value' (OData v4)")
    if not isinstance(rows, list):
        raise PollError("answer rows are not a list")
    if not rows:
        raise PollError("answer has no rows")
    row = rows[0]
    if not isinstance(row, dict) or field not in row:
        raise PollError("first row has no field {!r}".format(field))
    value = row[field]
    if not isinstance(value, SCALARS):
        raise PollError("field {!r} is not a scalar".format(field))
    return value


class _Limited:
    """A body collector that refuses more than ``limit`` bytes."""

    def __init__(self, limit):
        self.limit = limit
        self.chunks = []
        self.size = 0

    def __call__(self, data):
        self.size += len(data)
        if self.size > self.limit:
            raise PollError("answer larger than {} bytes".format(self.limit))
        self.chunks.append(data)

    def body(self):
        return b"".join(self.chunks)


class ODataPoller:
    """
    Polls with ``http`` (a ``treq.client.HTTPClient``) on ``clock``;
    ``publish(state)`` sends an event.
    """

    log = Logger()

    def __init__(self, http, clock, url, publish, user="", password="", field="C_VALUE",
                 orderby="G_CREATED desc", interval=5.0, timeout=10.0, backoff_max=60.0, max_body=MAX_BODY,
                 backoff=None):
        self.http = http
        self.clock = clock
        self.url = query_url(url, orderby)
        self.publish = publish
        self.auth = (user, password) if user else None
        self.field = field
        self.interval = interval
        self.timeout = timeout
        # the first retry waits (up to) two intervals, then twice as long per failure
        self.backoff = backoff or Backoff(2 * interval, max(backoff_max, 2 * interval))
        self.max_body = max_body
        self.live = LiveValue(clock.seconds)
        self.failures = 0
        self.polls = 0
        self._next = None
        self._inflight = None
        self._stopped = False

    def start(self):
        self._stopped = False
        self._schedule(0)

    def stop(self):
        self._stopped = True
        if self._next is not None and self._next.active():
            self._next.cancel()
        if self._inflight is not None:
            self._inflight.cancel()

    def state(self):
        return self.live.snapshot()

    def _schedule(self, delay):
        if not self._stopped:
            self._next = self.clock.callLater(delay, self.poll)

    def poll(self):
        """One poll; the next is scheduled when it ends. Returns its Deferred."""
        if self._inflight is not None:
            return self._inflight
        self.polls += 1
        d = self._fetch()
        d.addTimeout(self.timeout, self.clock)
        self._inflight = d
        d.addCallbacks(self._succeeded, self._failed)
        d.addBoth(self._done)
        return d

    @defer.inlineCallbacks
    def _fetch(self):
        response = yield self.http.get(self.url, headers={"Accept": ["application/json"]}, auth=self.auth,
                                       unbuffered=True)
        collector = _Limited(self.max_body)
        yield treq.collect(response, collector)
        if response.code == 401:
            raise PollError("HTTP 401 unauthorized (check ODATA_USER / ODATA_PASSWORD)")
        if response.code != 200:
            raise PollError("HTTP {}".format(response.code))
        try:
            document = json.loads(collector.body().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise PollError("answer is not JSON")
        return extract_value(document, self.field)

    def _succeeded(self, value):
        if self.failures:
            self.log.info("OData poll recovered after {count} failed poll(s)", count=self.failures)
        self.failures = 0
        self.backoff.reset()
        self._emit(self.live.offer(value))
        return self.interval

    def _failed(self, failure):
        if failure.check(defer.CancelledError) and self._stopped:
            return None
        if failure.check(defer.TimeoutError):
            reason = "no answer within {}s".format(self.timeout)
        elif failure.check(PollError):
            reason = str(failure.value)
        else:
            reason = "{}: {}".format(type(failure.value).__name__, failure.getErrorMessage())
        self.failures += 1
        if self.failures == 1:
            self.log.warn("OData poll of {url} failed ({reason}); keeping the last value as stale and "
                          "backing off", url=self.url, reason=reason)
        self._emit(self.live.lose())
        return self.backoff.next()

    def _done(self, delay):
        self._inflight = None
        if delay is not None:
            self._schedule(delay)

    def _emit(self, state):
        if state is not None:
            self.publish(state)


class ODataComponent(SourceComponent):
    """Runs an ODataPoller on ``ODATA_URL`` and serves ``iot.odata.get``."""

    topic = ODATA_TOPIC

    pool = None

    @defer.inlineCallbacks
    def start(self):
        settings = self.settings
        url = settings.get(iot_settings.ODATA_URL)
        if not url:
            self.log.info("OData poller off (ODATA_URL unset)")
            return
        from twisted.web.client import Agent

        from components.core.quietpool import QuietConnectionPool
        interval = settings.get(iot_settings.ODATA_INTERVAL)
        timeout = settings.get(iot_settings.ODATA_TIMEOUT)
        backoff_max = settings.get(iot_settings.ODATA_BACKOFF_MAX)
        self.pool = QuietConnectionPool(self.reactor)  # no factory log lines per failed poll
        http = treq.client.HTTPClient(Agent(self.reactor, pool=self.pool, connectTimeout=timeout))
        self.source = ODataPoller(
            http, self.reactor, url, self.publish_state, user=settings.get(iot_settings.ODATA_USER),
            password=settings.get(iot_settings.ODATA_PASSWORD), field=settings.get(iot_settings.ODATA_FIELD),
            orderby=settings.get(iot_settings.ODATA_ORDERBY), interval=interval, timeout=timeout,
            backoff_max=backoff_max)
        yield self.seed_history(self.source.live)
        yield self.register(self)
        self.source.start()
        self.log.info("OData poller on {url} every {interval}s", url=self.source.url, interval=interval)

    @wamp.register(ODATA_GET)
    def get(self, /, *args, **kwargs):
        """The latest state; ``iot.odata.get`` takes no arguments (invalid_argument otherwise)."""
        no_arguments(ODATA_GET, args, kwargs)
        return self.current()

    def onLeave(self, details):
        SourceComponent.onLeave(self, details)
        if self.pool is not None:
            self.pool.closeCachedConnections()
            self.pool = None
