"""
The shared click counter: ``counter.click(n=1, name="default")`` adds ``n``
to a named counter in the database and, once the transaction has committed,
answers with the new state ``{"value", "seq", "ts", "name"}`` and publishes it
on ``counter.changed``; ``counter.get(name="default")`` returns the current
state. ``seq`` is the counter's version in the database, so answers from
several instances (shared registration) and from before a restart order
correctly.

Bad input is refused with ``reactive.error.invalid_argument`` before anything
happens; each caller session may click ``rate`` times per second (burst
``burst``), else ``reactive.error.rate_limited`` with ``retry_after``; a
database that is down or does not answer within ``timeout`` seconds gives
``reactive.error.unavailable``. Clicks arriving while a transaction runs are
committed together in the next one (group commit), each still answered with
its own state.
"""

import re

from autobahn import wamp
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer

from components.core import errors
from components.core.batching import Batcher, NotStarted, OutcomeUnknown
from components.core.component import HubComponent
from components.core.errors import InvalidArgument, RateLimited, Unavailable
from components.core.ratelimit import RateLimiter
from components.core.state import epoch_ms
from components.counter import CLICK, DEFAULT_NAME, GET, store, topic_of
from components.db.database import Database, StorageUnavailable
from components.db.migrations import SchemaOnDemand

NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-]{1,64}")

# the callee's view of the caller; named so no caller keyword can collide with it
_OPTIONS = RegisterOptions(details_arg="call_details", invoke="roundrobin")
_REFUSALS = (errors.INVALID_ARGUMENT, errors.RATE_LIMITED, errors.UNAVAILABLE)


def bind(procedure, args, kwargs, defaults):
    """
    Bind positional ``args`` and keyword ``kwargs`` to the parameters named in
    ``defaults`` (an ordered dict of name -> default), refusing extra or
    unknown arguments the way a Python signature would, but with our error.
    """
    names = list(defaults)
    if len(args) > len(names):
        raise InvalidArgument("{} takes at most {} positional argument(s), got {}".format(
            procedure, len(names), len(args)))
    bound = dict(zip(names, args))
    unknown = sorted(str(key) for key in kwargs if key not in defaults)
    if unknown:
        raise InvalidArgument("{} got unknown argument(s): {}".format(procedure, ", ".join(unknown)))
    for key, value in kwargs.items():
        if key in bound:
            raise InvalidArgument("{} got two values for {!r}".format(procedure, key))
        bound[key] = value
    return [bound.get(name, default) for name, default in defaults.items()]


def check_name(name):
    """A counter name: 1-64 ASCII letters, digits, ``_`` or ``-`` (it becomes a URI component)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidArgument("name must be 1-64 characters: letters, digits, '_' or '-'; got {!r}".format(
            name if not isinstance(name, str) or len(name) <= 80 else name[:80] + "..."))
    return name


def check_n(n, maximum):
    """A click count: an integer (not a bool) from 1 to ``maximum``."""
    if type(n) is not int:
        raise InvalidArgument("n must be an integer from 1 to {}, got {} {!r}".format(maximum, type(n).__name__, n))
    if not 1 <= n <= maximum:
        raise InvalidArgument("n must be an integer from 1 to {}, got {}".format(maximum, n))
    return n


def click_arguments(args, kwargs, max_per_call):
    """``(n, name)`` of a valid ``counter.click`` call, else invalid_argument."""
    n, name = bind(CLICK, args, kwargs, {"n": 1, "name": DEFAULT_NAME})
    return check_n(n, max_per_call), check_name(name)


def get_arguments(args, kwargs):
    """``name`` of a valid ``counter.get`` call, else invalid_argument."""
    (name,) = bind(GET, args, kwargs, {"name": DEFAULT_NAME})
    return check_name(name)


class ClickGate:
    """Validation and the per-session rate limit of ``counter.click``, time from ``clock``."""

    def __init__(self, max_per_call, rate, burst, clock):
        self.max_per_call = max_per_call
        self.limiter = RateLimiter(rate, burst, clock=clock)

    def admit(self, args, kwargs, session):
        """``(n, name)`` for an admitted click; ApplicationError for a refused one (nothing changes)."""
        n, name = click_arguments(args, kwargs, self.max_per_call)
        allowed, retry_after = self.limiter.check(session)
        if not allowed:
            retry_after = round(retry_after, 3)
            raise RateLimited("too many clicks from this session; retry in {:.3f} s".format(retry_after),
                              retry_after=retry_after)
        return n, name


def latest_per_counter(states):
    """The state with the highest seq of every counter in ``states``."""
    latest = {}
    for item in states:
        current = latest.get(item["name"])
        if current is None or item["seq"] > current["seq"]:
            latest[item["name"]] = item
    return list(latest.values())


class CounterComponent(HubComponent):
    """Serves ``counter.click`` / ``counter.get`` and publishes ``counter.changed``."""

    db = None
    batcher = None

    def start(self):
        settings = self.settings
        self.timeout = settings.duration("COUNTER_TIMEOUT", 5.0, minimum=0.1, maximum=300)
        self.gate = ClickGate(
            max_per_call=settings.int("COUNTER_MAX_PER_CALL", 100, minimum=1, maximum=10 ** 9),
            rate=settings.float("COUNTER_RATE", 10.0, minimum=0.001),
            burst=settings.int("COUNTER_BURST", 20, minimum=1),
            clock=self.reactor.seconds)
        self.db = Database(settings.database_url("client"),
                           pool_size=settings.int("COUNTER_POOL_SIZE", 3, minimum=1, maximum=100))
        self.schema = SchemaOnDemand(self.db, "counter", store.MIGRATIONS)
        self.batcher = Batcher(self._commit, max_batch=settings.int("COUNTER_BATCH", 200, minimum=1))
        self.schema.ready().addErrback(lambda failure: self.log.warn(
            "counter schema not ready yet ({error}); retrying on the next call", error=failure.value))
        d = self.register(self)
        d.addCallback(lambda _: self.log.info(
            "counter ready on {db!r}: max {max} per call, {rate}/s burst {burst} per session, batches of {batch}",
            db=self.db, max=self.gate.max_per_call, rate=self.gate.limiter.rate, burst=self.gate.limiter.burst,
            batch=self.batcher.max_batch))
        return d

    @wamp.register(CLICK, options=_OPTIONS)
    def click(self, *args, call_details=None, **kwargs):
        session = getattr(call_details, "caller", None) or getattr(call_details, "caller_authid", None)
        n, name = self.gate.admit(args, kwargs, session)
        return self._answer(self.batcher.submit((name, n)), "click")

    @wamp.register(GET, options=_OPTIONS)
    def get(self, *args, call_details=None, **kwargs):
        name = get_arguments(args, kwargs)
        d = self.schema.ready()
        d.addCallback(lambda _: self.db.run(store.read, name, epoch_ms(self.reactor.seconds)))
        return self._answer(d, "get")

    def _commit(self, clicks):
        """One transaction for a batch of ``(name, n)``; publishes the newest state of each counter."""
        d = self.schema.ready()
        d.addCallback(lambda _: self.db.run(store.add_clicks, clicks, epoch_ms(self.reactor.seconds)))
        d.addCallback(self._publish)
        return d

    def _publish(self, states):
        # committed: whatever happens to the event, the clicks are answered
        for item in latest_per_counter(states):
            topic = topic_of(item["name"])
            try:
                self.publish(topic, item)
            except Exception:
                self.log.failure("publishing {topic} failed", topic=topic)
        return states

    def _answer(self, d, what):
        """Bound ``d`` by the timeout and turn storage failures into ``unavailable``."""
        timer = self.reactor.callLater(self.timeout, d.cancel)

        def stop_timer(result):
            if timer.active():
                timer.cancel()
            return result

        def unavailable(failure):
            late = "database did not answer within {} s".format(self.timeout)
            if failure.check(StorageUnavailable):
                message, outcome = "database unavailable ({})".format(failure.value), "nothing was changed"
            elif failure.check(NotStarted, defer.CancelledError):
                message, outcome = late, "nothing was changed"
            elif failure.check(OutcomeUnknown):
                message, outcome = late, "the click may still be counted"
            else:
                self.log.failure("counter {what} failed", failure=failure, what=what)
                message, outcome = "counter {} failed: {}".format(what, failure.getErrorMessage()), \
                    "the click may still be counted"
            if what == "click":
                message += "; " + outcome
            raise Unavailable(message)

        d.addBoth(stop_timer)
        d.addErrback(unavailable)
        return d

    def onUserError(self, fail, msg):
        # refusals are answers to the caller, not faults of the hub: keep a flood of them out of the log
        if fail.check(ApplicationError) and fail.value.error in _REFUSALS:
            self.log.debug("{msg}: {error}", msg=msg, error=fail.value)
            return
        HubComponent.onUserError(self, fail, msg)

    def onLeave(self, details):
        if self.batcher is not None:
            self.batcher.fail_waiting(StorageUnavailable("counter component stopping"))
        if self.db is not None:
            self.db.close()
        HubComponent.onLeave(self, details)
