"""
Per-session bounds on what a WAMP session can make a router worker keep
or do: the length of every URI it names, the number of subscriptions and
registrations it holds at once, and the rate at which a client session
publishes.

Crossbar has no option for either (its ``RouterOptions`` know only the URI
check mode and the dispatch chunk size), and its URI patterns admit URIs of
any length: a ``user`` session could subscribe 20,000 topics under
``counter.changed.`` with 8,000-character URIs. ``install()`` wraps the
broker's ``processSubscribe`` and ``processPublish`` and the dealer's
``processRegister`` and ``processCall``; before Crossbar's own checks they
answer

- a URI longer than ``SESSION_MAX_URI_LENGTH`` characters (SUBSCRIBE,
  PUBLISH, REGISTER, CALL) with ``wamp.error.invalid_uri`` (a PUBLISH only
  when it asked for an acknowledgement, as Crossbar does for its invalid
  URIs);
- a SUBSCRIBE of a session that already holds ``SESSION_MAX_SUBSCRIPTIONS``
  subscriptions, or a REGISTER of one holding ``SESSION_MAX_REGISTRATIONS``
  registrations, with ``reactive.error.session_limit`` (subscribing again to
  a topic the session already holds is not refused: it adds nothing);
- a PUBLISH of a client session past its token bucket (``SESSION_PUBLISH_BURST``
  at once, then ``SESSION_PUBLISH_RATE`` per second) with
  ``reactive.error.rate_limited`` when it asked for an acknowledgement, else
  it is dropped. The bucket is an attribute of the router's session object,
  so it goes with the session; one warning per session per
  ``RATE_LOG_INTERVAL`` seconds names the session and how many were refused.
  Not bounded: Crossbar's own sessions (``trusted``), router links
  (``rlink``), container workers (``backend``) and the components embedded
  in the router worker (the broker gets their ``ApplicationSession``, whose
  transport is Crossbar's ``RouterApplicationSession``): the clock, the IoT
  components, the HTTP bridges publishing for devices and applications.

The counts are the broker's and dealer's own maps of the session's live
subscriptions and registrations, so an UNSUBSCRIBE frees a place at once and
nothing extra is kept. Crossbar's own sessions (authrole ``trusted``) are not
bounded, and router-link sessions (``rlink``, which subscribe and register
on behalf of a whole other node) only by the URI length. Events, results and
calls to existing URIs pay one ``len()`` of the URI per message and no
per-subscriber work; a client session's PUBLISH also one clock read and the
bucket's arithmetic (bench/publish_bound.py).
"""

import sys
import time

from twisted.logger import Logger

from components.core import errors
from components.core.settings import Settings
from components.node import node_settings
from components.node.patches import PatchUnavailable, replacement, unpatched

NAME = "session_bounds"
SECURITY = True
WORKERS = ("router",)
SUMMARY = ("per-session bounds: URI length on SUBSCRIBE/PUBLISH/REGISTER/CALL, live subscriptions and "
           "registrations per session, publications per second per client session")
UPSTREAM = "docs/upstream/session_bounds.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}

PATCHED = "_reactive_hub_session_bounds"
INVALID_URI = "wamp.error.invalid_uri"
# sessions that carry a whole other node's subscriptions and registrations: bounded by URI length only
UNCOUNTED_ROLES = ("rlink",)
TRUSTED_ROLE = "trusted"
# the hub's own sessions: their publications are not rate bounded
UNMETERED_ROLES = frozenset((TRUSTED_ROLE, "rlink", "backend"))
BUCKET = "_reactive_hub_publish_bucket"  # the session attribute holding its PublishBucket (False: not metered)
RATE_LOG_INTERVAL = 10.0

log = Logger(namespace="reactive_hub.session_bounds")


class SessionBounds:
    """
    The bounds a router worker holds every session to (all seven are settings,
    declared in :mod:`components.node.node_settings`): subscriptions and registrations per session,
    publications per second and at once per client session, URI characters, unsent bytes per connection
    (components/node/patches/send_bound.py) and entries of the router's authorization cache
    (authcache_bound.py).
    """

    def __init__(self, subscriptions=node_settings.SESSION_MAX_SUBSCRIPTIONS.default,
                 registrations=node_settings.SESSION_MAX_REGISTRATIONS.default,
                 uri_length=node_settings.SESSION_MAX_URI_LENGTH.default,
                 send_queue=node_settings.SESSION_SEND_QUEUE_LIMIT.default,
                 authorization_cache=node_settings.AUTHORIZATION_CACHE_SIZE.default,
                 publish_rate=node_settings.SESSION_PUBLISH_RATE.default,
                 publish_burst=node_settings.SESSION_PUBLISH_BURST.default):
        self.subscriptions = subscriptions
        self.registrations = registrations
        self.uri_length = uri_length
        self.send_queue = send_queue
        self.authorization_cache = authorization_cache
        self.publish_rate = float(publish_rate)
        self.publish_burst = publish_burst

    @classmethod
    def from_settings(cls, settings):
        """``SESSION_MAX_SUBSCRIPTIONS``, ``SESSION_MAX_REGISTRATIONS``, ``SESSION_MAX_URI_LENGTH``,
        ``SESSION_SEND_QUEUE_LIMIT`` (bytes), ``AUTHORIZATION_CACHE_SIZE`` (entries), ``SESSION_PUBLISH_RATE``
        and ``SESSION_PUBLISH_BURST``."""
        return cls(
            subscriptions=settings.get(node_settings.SESSION_MAX_SUBSCRIPTIONS),
            registrations=settings.get(node_settings.SESSION_MAX_REGISTRATIONS),
            uri_length=settings.get(node_settings.SESSION_MAX_URI_LENGTH),
            send_queue=settings.get(node_settings.SESSION_SEND_QUEUE_LIMIT),
            authorization_cache=settings.get(node_settings.AUTHORIZATION_CACHE_SIZE),
            publish_rate=settings.get(node_settings.SESSION_PUBLISH_RATE),
            publish_burst=settings.get(node_settings.SESSION_PUBLISH_BURST))

    def describe(self):
        """The bounds as one line of text for the worker log."""
        return ("{} subscriptions and {} registrations per session, URIs up to {} characters, {} unsent bytes "
                "per connection, {} authorization cache entries, {:g} publications per second per client session "
                "(bursts of {})").format(
            self.subscriptions, self.registrations, self.uri_length, self.send_queue, self.authorization_cache,
            self.publish_rate, self.publish_burst)


def bounds_from_environment(argv=None, environ=None):
    """The bounds as this worker's environment sets them (SettingsError naming a malformed one)."""
    argv = getattr(sys, "orig_argv", sys.argv) if argv is None else argv
    return SessionBounds.from_settings(Settings.of_process(argv, environ))


def _refuse(router, session, request_type, request, uri, text):
    from autobahn.wamp import message
    router.send(session, message.Error(request_type, request, uri, [text]))


def _too_long(bounds, uri):
    return uri.__class__ is str and len(uri) > bounds.uri_length


def _long_text(bounds, noun, uri):
    return "URI of {} characters refused ({}): this hub takes URIs of at most {}".format(
        len(uri), noun, bounds.uri_length)


def _holds(observation_map, session, uri, match):
    """True if ``session`` already observes ``uri`` with ``match`` in a broker's or dealer's map."""
    observation = observation_map.get_observation(uri, match)
    return observation is not None and session in observation.observers


def _bounded_declaration(process, bounds, request_type, uri_of, held_of, limit, noun, already_held):
    """
    A broker's or dealer's handler for SUBSCRIBE or REGISTER that refuses an
    over-long URI, and one more ``noun`` past ``limit`` unless ``already_held``.
    """

    def bounded(self, session, request):
        role = session._authrole
        if role != TRUSTED_ROLE:
            uri = uri_of(request)
            if _too_long(bounds, uri):
                return _refuse(self._router, session, request_type, request.request, INVALID_URI,
                               _long_text(bounds, noun, uri))
            held = held_of(self).get(session)
            if (role not in UNCOUNTED_ROLES and held is not None and len(held) >= limit
                    and not already_held(self, session, request)):
                return _refuse(self._router, session, request_type, request.request, errors.SESSION_LIMIT,
                               "this session holds {} {}s, the most this hub allows".format(len(held), noun))
        return process(self, session, request)

    return bounded


def bounded_subscribe(process_subscribe, bounds):
    """``Broker.processSubscribe`` that refuses over-long topics and subscriptions past the session's bound."""
    from autobahn.wamp import message

    bounded = _bounded_declaration(
        process_subscribe, bounds, message.Subscribe.MESSAGE_TYPE, lambda subscribe: subscribe.topic,
        lambda broker: broker._session_to_subscriptions, bounds.subscriptions, "subscription",
        lambda broker, session, subscribe: _holds(broker._subscription_map, session, subscribe.topic,
                                                  subscribe.match or "exact"))

    def processSubscribe(self, session, subscribe):
        return bounded(self, session, subscribe)

    return replacement(processSubscribe, bounded_subscribe, PATCHED)


class PublishBucket:
    """
    One client session's publication tokens (``tokens`` at ``last``, a clock
    reading) and what it had refused since its last warning (``refused``,
    ``logged``: the clock reading of that warning).
    """

    __slots__ = ("tokens", "last", "refused", "logged")

    def __init__(self, tokens, now):
        self.tokens, self.last, self.refused, self.logged = tokens, now, 0, float("-inf")


def _embedded(session):
    """True for a component running inside the router worker: Crossbar passes its own ApplicationSession,
    whose transport is the router's pass-through ``RouterApplicationSession``."""
    from crossbar.router.session import RouterApplicationSession
    return isinstance(getattr(session, "_transport", None), RouterApplicationSession)


def _bucket_of(session, bounds, now):
    """The session's bucket, made full at its first publication; False for an embedded component (kept too)."""
    bucket = False if _embedded(session) else PublishBucket(float(bounds.publish_burst), now)
    setattr(session, BUCKET, bucket)
    return bucket


def _over_rate(router, session, publish, bucket, now, text, request_type):
    """Refuse (acknowledged) or drop one publication past the bucket; warn at most once per interval."""
    if publish.acknowledge:
        _refuse(router, session, request_type, publish.request, errors.RATE_LIMITED, text)
    bucket.refused += 1
    if now - bucket.logged >= RATE_LOG_INTERVAL:
        log.warn("publish rate bound: session {session} (authrole {authrole}, authid {authid}) publishes faster "
                 "than its bound; {refused} publications refused or dropped since the last line",
                 session=getattr(session, "_session_id", None), authrole=session._authrole,
                 authid=getattr(session, "_authid", None), refused=bucket.refused)
        bucket.refused, bucket.logged = 0, now


def bounded_publish(process_publish, bounds, clock=time.monotonic):
    """
    ``Broker.processPublish`` that refuses over-long topics (an error only when acknowledged), and a client
    session's publications past its token bucket (``clock``: seconds, monotonic).
    """
    from autobahn.wamp import message

    request_type = message.Publish.MESSAGE_TYPE
    rate, burst, uri_length = bounds.publish_rate, float(bounds.publish_burst), bounds.uri_length
    text = "this session publishes faster than the hub allows ({:g} per second, bursts of {})".format(
        rate, bounds.publish_burst)

    def processPublish(self, session, publish):
        role = session._authrole
        if role != TRUSTED_ROLE:
            topic = publish.topic  # a property of autobahn's message: read once
            if topic.__class__ is str and len(topic) > uri_length:
                if publish.acknowledge:
                    _refuse(self._router, session, request_type, publish.request, INVALID_URI,
                            _long_text(bounds, "publication", topic))
                return None
        if role not in UNMETERED_ROLES:
            try:
                bucket = session._reactive_hub_publish_bucket  # BUCKET, read as a plain attribute
            except AttributeError:
                bucket = _bucket_of(session, bounds, clock())
            if bucket is not False:
                now = clock()
                tokens = bucket.tokens + (now - bucket.last) * rate
                if tokens > burst:
                    tokens = burst
                bucket.last = now
                if tokens < 1.0:
                    bucket.tokens = tokens
                    return _over_rate(self._router, session, publish, bucket, now, text, request_type)
                bucket.tokens = tokens - 1.0
        return process_publish(self, session, publish)

    return replacement(processPublish, bounded_publish, PATCHED)


def bounded_register(process_register, bounds):
    """``Dealer.processRegister`` that refuses over-long procedures and registrations past the bound."""
    from autobahn.wamp import message

    bounded = _bounded_declaration(
        process_register, bounds, message.Register.MESSAGE_TYPE, lambda register: register.procedure,
        lambda dealer: dealer._session_to_registrations, bounds.registrations, "registration",
        lambda dealer, session, register: False)

    def processRegister(self, session, register):
        return bounded(self, session, register)

    return replacement(processRegister, bounded_register, PATCHED)


def bounded_call(process_call, bounds):
    """``Dealer.processCall`` that refuses over-long procedure URIs."""
    from autobahn.wamp import message

    def processCall(self, session, call):
        procedure = call.procedure
        if _too_long(bounds, procedure) and session._authrole != TRUSTED_ROLE:
            return _refuse(self._router, session, message.Call.MESSAGE_TYPE, call.request, INVALID_URI,
                           _long_text(bounds, "call", procedure))
        return process_call(self, session, call)

    return replacement(processCall, bounded_call, PATCHED)


_WRAPPERS = (("processSubscribe", bounded_subscribe), ("processPublish", bounded_publish))
_DEALER_WRAPPERS = (("processRegister", bounded_register), ("processCall", bounded_call))
# what the wrappers read of Crossbar's broker and dealer (set in their __init__, so checked by name in the source)
_BROKER_STATE = ("_session_to_subscriptions", "_subscription_map", "_router")
_DEALER_STATE = ("_session_to_registrations", "_router")


def _check_state(klass, names):
    import inspect
    try:
        source = inspect.getsource(klass.__init__)
    except (OSError, TypeError):
        raise PatchUnavailable("cannot read {}.__init__ to check its state".format(klass.__name__))
    missing = [name for name in names if "self.{} =".format(name) not in source]
    if missing:
        raise PatchUnavailable("{} no longer keeps {}".format(klass.__name__, ", ".join(missing)))


def install(bounds=None, broker_class=None, dealer_class=None):
    """
    Wrap the broker's and dealer's request handlers with ``bounds`` (read from
    the environment when not given); the bounds' description (for the log
    line) if patched now, False if already.
    PatchUnavailable when Crossbar's broker or dealer differ from the verified ones.
    """
    if broker_class is None or dealer_class is None:
        try:
            from crossbar.router.broker import Broker as broker_class
            from crossbar.router.dealer import Dealer as dealer_class
        except ImportError as error:
            raise PatchUnavailable("crossbar's broker or dealer cannot be imported: {}".format(error))
    if bounds is None:
        bounds = bounds_from_environment()
    planned = []
    for klass, wrappers in ((broker_class, _WRAPPERS), (dealer_class, _DEALER_WRAPPERS)):
        for name, wrapper in wrappers:
            if not hasattr(klass, name):
                raise PatchUnavailable("{}.{} is missing".format(klass.__name__, name))
            original = unpatched(klass, name, PATCHED)
            if original is not None:
                planned.append((klass, name, wrapper, original))
    if not planned:
        return False
    _check_state(broker_class, _BROKER_STATE)
    _check_state(dealer_class, _DEALER_STATE)
    try:
        from crossbar.router.observation import UriObservationMap
    except ImportError as error:
        raise PatchUnavailable("crossbar's observation map cannot be imported: {}".format(error))
    if not hasattr(UriObservationMap, "get_observation"):
        raise PatchUnavailable("UriObservationMap.get_observation is missing")
    try:
        from crossbar.router import session as router_session
    except ImportError as error:
        raise PatchUnavailable("crossbar's router sessions cannot be imported: {}".format(error))
    if not hasattr(router_session, "RouterApplicationSession"):  # what tells the embedded components apart
        raise PatchUnavailable("crossbar.router.session.RouterApplicationSession is missing")
    for klass, name, wrapper, original in planned:
        setattr(klass, name, wrapper(original, bounds))
    return bounds.describe()
