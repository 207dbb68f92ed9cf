"""
The shared click counter: ``counter.click(n=1, name="default")`` adds ``n``
to a named counter in the database and, once the transaction has committed,
answers with the new state ``{"value", "seq", "ts", "name"}`` and publishes it
on ``counter.changed``; ``counter.get(name="default")`` returns the current
state. ``seq`` is the counter's version in the database, so answers from
several instances (shared registration) and from before a restart order
correctly.

Bad input is refused with ``reactive.error.invalid_argument`` before anything
happens; each caller (its authid: every session of one user shares the
budget) may click ``rate`` times per second (burst ``burst``) and create
``new_rate`` new counters per second (burst ``new_burst``), else
``reactive.error.rate_limited`` with ``retry_after``; once ``max_names``
counters exist, a click that would create another is
``reactive.error.invalid_argument`` (``field`` ``name``) while clicks on
existing counters go on; a database that is down or does not answer within
``timeout`` seconds gives ``reactive.error.unavailable``. Clicks arriving
while a transaction runs are committed together in the next one (group
commit), each still answered with its own state.
"""

import re

from autobahn import wamp
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer

from components.core import errors
from components.core.arguments import bind, shown
from components.core.batching import Batcher, NotStarted, OutcomeUnknown
from components.core.component import HubComponent
from components.core.errors import HubError, InvalidArgument, RateLimited, Unavailable
from components.core.ratelimit import RateLimiter
from components.core.state import epoch_ms
from components.counter import CLICK, DEFAULT_NAME, GET, counter_settings, store, topic_of
from components.db import db_settings
from components.db.database import Database, StorageUnavailable
from components.db.migrations import SchemaOnDemand

NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-]{1,64}")
# defaults of COUNTER_NEW_NAME_RATE / COUNTER_NEW_NAME_BURST (per user) and COUNTER_MAX_NAMES (in total)
NEW_NAME_RATE = counter_settings.COUNTER_NEW_NAME_RATE.default
NEW_NAME_BURST = counter_settings.COUNTER_NEW_NAME_BURST.default
MAX_NAMES = counter_settings.COUNTER_MAX_NAMES.default

# the callee's view of the caller; named so no caller keyword can collide with it
_OPTIONS = RegisterOptions(details_arg="call_details", invoke="roundrobin")
_REFUSALS = (errors.INVALID_ARGUMENT, errors.RATE_LIMITED, errors.UNAVAILABLE)


def check_name(name):
    """A counter name: 1-64 ASCII letters, digits, ``_`` or ``-`` (it becomes a URI component)."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidArgument("name must be 1-64 characters: letters, digits, '_' or '-'; got {}".format(
            shown(name)), field="name")
    return name


def check_n(n, maximum):
    """A click count: an integer (not a bool) from 1 to ``maximum``."""
    if type(n) is not int:
        raise InvalidArgument("n must be an integer from 1 to {}, got {} {}".format(
            maximum, type(n).__name__, shown(n)), field="n")
    if not 1 <= n <= maximum:
        raise InvalidArgument("n must be an integer from 1 to {}, got {}".format(maximum, n), field="n")
    return n


def click_arguments(args, kwargs, max_per_call):
    """``(n, name)`` of a valid ``counter.click`` call, else invalid_argument."""
    n, name = bind(CLICK, args, kwargs, {"n": 1, "name": DEFAULT_NAME})
    return check_n(n, max_per_call), check_name(name)


def get_arguments(args, kwargs):
    """``name`` of a valid ``counter.get`` call, else invalid_argument."""
    (name,) = bind(GET, args, kwargs, {"name": DEFAULT_NAME})
    return check_name(name)


def caller_of(call_details):
    """
    Whose budget a call spends: the caller's authid, so all sessions of one
    user share it; the session id only for a caller without one.
    """
    authid = getattr(call_details, "caller_authid", None)
    if authid:
        return ("authid", authid)
    return ("session", getattr(call_details, "caller", None))


def _spend(limiter, caller, what):
    allowed, retry_after = limiter.check(caller)
    if not allowed:
        retry_after = round(retry_after, 3)
        raise RateLimited("too many {} from this user; retry in {:.3f} s".format(what, retry_after),
                          retry_after=retry_after)


class ClickGate:
    """
    Validation and the per-caller rate limits of ``counter.click``, time from
    ``clock``: ``rate``/``burst`` clicks and ``new_rate``/``new_burst`` new
    counters per caller (see :func:`caller_of`).
    """

    def __init__(self, max_per_call, rate, burst, clock, new_rate=NEW_NAME_RATE, new_burst=NEW_NAME_BURST):
        self.max_per_call = max_per_call
        self.limiter = RateLimiter(rate, burst, clock=clock)
        self.new_names = RateLimiter(new_rate, new_burst, clock=clock)

    def admit(self, args, kwargs, caller):
        """``(n, name)`` for an admitted click; ApplicationError for a refused one (nothing changes)."""
        n, name = click_arguments(args, kwargs, self.max_per_call)
        _spend(self.limiter, caller, "clicks")
        return n, name

    def admit_new_name(self, caller):
        """Spend one of ``caller``'s new counters; rate_limited when there is none left."""
        _spend(self.new_names, caller, "new counters")


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

    bounded_procedures = frozenset([GET])  # counter.click has its rate limit
    db = None
    batcher = None
    known = creating = frozenset()

    def start(self):
        settings = self.settings
        self.timeout = settings.get(counter_settings.COUNTER_TIMEOUT)
        self.gate = ClickGate(
            max_per_call=settings.get(counter_settings.COUNTER_MAX_PER_CALL),
            rate=settings.get(counter_settings.COUNTER_RATE),
            burst=settings.get(counter_settings.COUNTER_BURST),
            new_rate=settings.get(counter_settings.COUNTER_NEW_NAME_RATE),
            new_burst=settings.get(counter_settings.COUNTER_NEW_NAME_BURST),
            clock=self.reactor.seconds)
        self.max_names = settings.get(counter_settings.COUNTER_MAX_NAMES)
        # names known to have a row, and names whose creation was admitted and is under way:
        # clicks on either skip the new-counter checks (a burst on a new counter spends one new counter)
        self.known = set()
        self.creating = set()
        self.db = Database(settings.get(db_settings.DATABASE_URL))
        self.schema = SchemaOnDemand(self.db, "counter", store.MIGRATIONS)
        self.batcher = Batcher(self._commit, max_batch=settings.get(counter_settings.COUNTER_BATCH))
        self.schema.ready().addErrback(lambda failure: self.log.warn(
            "counter schema not ready yet ({error}); retrying on the next call", error=failure.value))
        d = self.register(self)
        d.addCallback(lambda _: self.log.info(
            "counter ready on {db!r}: max {max} per call, {rate}/s burst {burst} per user, new counters "
            "{new_rate}/s burst {new_burst} per user, at most {names} in total, batches of {batch}",
            db=self.db, max=self.gate.max_per_call, rate=self.gate.limiter.rate,
            burst=self.gate.limiter.burst,
            new_rate=self.gate.new_names.rate, new_burst=self.gate.new_names.burst, names=self.max_names,
            batch=self.batcher.max_batch))
        return d

    @wamp.register(CLICK, options=_OPTIONS)
    def click(self, /, *args, call_details=None, **kwargs):
        caller = caller_of(call_details)
        n, name = self.gate.admit(args, kwargs, caller)
        if name in self.known:
            d = self.batcher.submit((name, n))
        else:
            d = self._first_click(caller, name, n)
        d.addCallback(self._counted, name)
        return self._answer(d, "click")

    def _first_click(self, caller, name, n):
        """
        A click on a name this instance has not seen: if it has no row yet,
        and no creation of it is under way, it spends one of the caller's new
        counters (the store still applies the total cap).
        """
        if name in self.creating:
            return self.batcher.submit((name, n))
        d = self.schema.ready()
        d.addCallback(lambda _: self.db.run(store.exists, name))

        def submit(exists):
            if exists:
                self.known.add(name)
            elif name not in self.known and name not in self.creating:
                self.gate.admit_new_name(caller)
                self.creating.add(name)
                return self.batcher.submit((name, n)).addBoth(self._created, name)
            return self.batcher.submit((name, n))
        d.addCallback(submit)
        return d

    def _created(self, result, name):
        self.creating.discard(name)
        return result

    def _counted(self, state, name):
        if state is None:  # the store refused to create the row
            raise InvalidArgument("no new counters: the hub holds its maximum of {} counters; "
                                  "click an existing one".format(self.max_names), field="name")
        self.known.add(name)
        return state

    @wamp.register(GET, options=_OPTIONS)
    def get(self, /, *args, call_details=None, **kwargs):
        name = get_arguments(args, kwargs)
        d = self.schema.ready()
        d.addCallback(lambda _: self.db.run(store.read, name, epoch_ms(self.reactor.seconds)))
        d.addCallback(self._seen)
        return self._answer(d, "get")

    def _seen(self, state):
        if state["seq"] > 0:
            self.known.add(state["name"])
        return state

    def _commit(self, clicks):
        """One transaction for a batch of ``(name, n)``; publishes the newest state of each counter."""
        d = self.schema.ready()
        d.addCallback(lambda _: self.db.run(store.add_clicks, clicks, epoch_ms(self.reactor.seconds),
                                            self.max_names))
        d.addCallback(self._publish)
        return d

    def _publish(self, states):
        # committed: whatever happens to the event, the clicks are answered
        for item in latest_per_counter(state for state in states if state is not None):
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
            # callers read generic words; the database's own (which server, which port) stay in the log
            late = "The hub's database did not answer within {} s.".format(self.timeout)
            if failure.check(StorageUnavailable):
                self.log.warn("counter {what}: {error}", what=what, error=failure.value)
                message, outcome = errors.DATABASE_UNAVAILABLE, "Nothing was changed."
            elif failure.check(HubError):  # a refusal of this call (new counter limits): the caller's answer
                return failure
            elif failure.check(NotStarted, defer.CancelledError):
                message, outcome = late, "Nothing was changed."
            elif failure.check(OutcomeUnknown):
                message, outcome = late, "The click may still be counted."
            else:
                self.log.failure("counter {what} failed", failure=failure, what=what)
                message, outcome = errors.INTERNAL_MESSAGE, "The click may still be counted."
            if what == "click":
                message += " " + outcome
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
