"""
Per-session bounds on what a WAMP session can make a router worker keep:
the length of every URI it names, and the number of subscriptions and
registrations it holds at once.

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
  a topic the session already holds is not refused: it adds nothing).

The counts are the broker's and dealer's own maps of the session's live
subscriptions and registrations, so an UNSUBSCRIBE frees a place at once and
nothing extra is kept. Crossbar's own sessions (authrole ``trusted``) are not
bounded, and router-link sessions (``rlink``, which subscribe and register
on behalf of a whole other node) only by the URI length. Events, results and
calls to existing URIs pay one ``len()`` of the URI per message and no
per-subscriber work.
"""

import sys

from components.core import errors
from components.core.settings import Settings
from components.node import node_settings
from components.node.patches import PatchUnavailable, replacement, unpatched

NAME = "session_bounds"
SECURITY = True
WORKERS = ("router",)
SUMMARY = ("per-session bounds: URI length on SUBSCRIBE/PUBLISH/REGISTER/CALL, live subscriptions and "
           "registrations per session")
UPSTREAM = "docs/upstream/session_bounds.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1", "twisted": "26.10.0", "txaio": "26.6.1"}

PATCHED = "_reactive_hub_session_bounds"
INVALID_URI = "wamp.error.invalid_uri"
# sessions that carry a whole other node's subscriptions and registrations: bounded by URI length only
UNCOUNTED_ROLES = ("rlink",)
TRUSTED_ROLE = "trusted"


class SessionBounds:
    """
    The bounds a router worker holds every session to (all five are settings,
    declared in :mod:`components.node.node_settings`): subscriptions and registrations per session, URI
    characters, unsent bytes per connection (components/node/patches/send_bound.py)
    and entries of the router's authorization cache (authcache_bound.py).
    """

    def __init__(self, subscriptions=node_settings.SESSION_MAX_SUBSCRIPTIONS.default,
                 registrations=node_settings.SESSION_MAX_REGISTRATIONS.default,
                 uri_length=node_settings.SESSION_MAX_URI_LENGTH.default,
                 send_queue=node_settings.SESSION_SEND_QUEUE_LIMIT.default,
                 authorization_cache=node_settings.AUTHORIZATION_CACHE_SIZE.default):
        self.subscriptions = subscriptions
        self.registrations = registrations
        self.uri_length = uri_length
        self.send_queue = send_queue
        self.authorization_cache = authorization_cache

    @classmethod
    def from_settings(cls, settings):
        """``SESSION_MAX_SUBSCRIPTIONS``, ``SESSION_MAX_REGISTRATIONS``, ``SESSION_MAX_URI_LENGTH``,
        ``SESSION_SEND_QUEUE_LIMIT`` (bytes) and ``AUTHORIZATION_CACHE_SIZE`` (entries)."""
        return cls(
            subscriptions=settings.get(node_settings.SESSION_MAX_SUBSCRIPTIONS),
            registrations=settings.get(node_settings.SESSION_MAX_REGISTRATIONS),
            uri_length=settings.get(node_settings.SESSION_MAX_URI_LENGTH),
            send_queue=settings.get(node_settings.SESSION_SEND_QUEUE_LIMIT),
            authorization_cache=settings.get(node_settings.AUTHORIZATION_CACHE_SIZE))

    def describe(self):
        """The bounds as one line of text for the worker log."""
        return ("{} subscriptions and {} registrations per session, URIs up to {} characters, {} unsent bytes "
                "per connection, {} authorization cache entries").format(
            self.subscriptions, self.registrations, self.uri_length, self.send_queue, self.authorization_cache)


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


def bounded_publish(process_publish, bounds):
    """``Broker.processPublish`` that refuses over-long topics (an error only when acknowledged)."""
    from autobahn.wamp import message

    def processPublish(self, session, publish):
        topic = publish.topic
        if _too_long(bounds, topic) and session._authrole != TRUSTED_ROLE:
            if publish.acknowledge:
                _refuse(self._router, session, message.Publish.MESSAGE_TYPE, publish.request, INVALID_URI,
                        _long_text(bounds, "publication", topic))
            return None
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
    the environment when not given); True if patched now, False if already.
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
    for klass, name, wrapper, original in planned:
        setattr(klass, name, wrapper(original, bounds))
    return True
