"""
Devices publishing over HTTP: ``POST /publish`` is Crossbar's HTTP bridge
publisher (its request parsing and signature check, subclassed) with what
Crossbar's own ``publisher`` service cannot do:

- a key and secret per device, from the device registry in the client
  database (:mod:`components.iot.device_registry`): the request's ``key`` names
  the device, its secret checks the signature, and the reading is published
  on that device's own topic ``iot.device.<name>``; a body naming another
  device (in ``topic`` or ``device``) is refused with 403, never renamed.
  A revoked or rotated key is refused within the registry's cache life (1 s);
- the old shared key (``DEVICE_KEY`` / ``DEVICE_SECRET``, or dev credentials
  in ``<node dir>/secrets/device_key`` and ``device_secret``) only while
  ``DEVICE_SHARED_KEY`` is on (deprecated, logged as such at start): its
  posts name their device in the body and are published on
  ``iot.device.reading`` only;
- a replay guard shared by every node on the client database
  (:mod:`components.iot.replays`): a signed request is accepted once;
  Crossbar only checks the timestamp window (``DEVICE_TIMESTAMP_LIMIT``);
- one body shape, a device reading (:func:`reading_body`): anything else,
  a topic that is no WAMP URI included, gets 400; a topic outside
  ``iot.device.`` gets 403 before it reaches the router, which also refuses
  it (the bridge publishes as the router component ``DeviceBridgeSession``,
  role ``device_bridge``);
- the published event is the contract's state dict with ``seq`` and ``ts``
  set here, strictly increasing per topic (also across restarts): whatever
  a device sends, it cannot claim a newer state than the hub's;
- a rate limit per device (:mod:`components.iot.device_rate`), shared with
  ``iot.device.publish``: a signed post over it gets 429 with
  ``Retry-After`` and is not published (a replayed or failed one gives its
  token back);
- no CORS headers unless ``DEVICE_CORS_ORIGINS`` names origins;
- ``DEVICE_REQUIRE_TLS`` also counts a request as TLS when ``PUBLIC_URL`` is
  ``https://`` (TLS ends at a proxy in front of the hub).

Secrets (the shared one, a device's) never reach a log line.
"""

import json
import math
import os
import re
import secrets
import time

from autobahn.wamp.types import PublishOptions, RegisterOptions
from crossbar.bridge.rest.publisher import PublisherResource
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server

from components.core import errors
from components.core.arguments import REQUIRED, bind
from components.core.component import HubComponent
from components.core.devsecrets import require_development
from components.core.httpjson import HTTPError, write_error
from components.core.secretfiles import read_or_create_secret
from components.core.settings import SettingsError
from components.core.state import TopicState
from components.core import core_settings
from components.db import db_settings
from components.db.database import Database, StorageConfigError, StorageUnavailable
from components.e2e.keys import load_kek
from components.iot import DEVICE_PREFIX, DEVICE_PUBLISH, DEVICE_TOPIC, Replayed, device_topic
from components.iot import history_writer, iot_settings
from components.iot.device_rate import device_limiter
from components.iot.device_registry import DeviceRegistry
from components.iot.replays import ReplayStore
from components.iot.request_signing import KEY_FILE, SECRET_FILE

_log = Logger()
# what devices read when publishing cannot work here for a reason of the hub's (settings, KEK): the log says which
PUBLISH_UNAVAILABLE = "Device publishing is unavailable on this hub; its operators have the reason in the log."
_KEY = re.compile(r"[A-Za-z0-9._~-]{1,128}")
# a WAMP URI (loose rules: no empty component, no whitespace, '.' or '#' inside one)
_URI = re.compile(r"[^\s.#]+(\.[^\s.#]+)*")
MAX_TOPIC = 255
# what a shared-key post may call its device (registered names are stricter: components.iot.device_registry.NAME)
_DEVICE_NAME = re.compile(r"[A-Za-z0-9._~-]{1,64}")
MAX_TEXT_VALUE = 256
# the integers a browser represents exactly
MAX_SAFE_INTEGER = 2 ** 53 - 1
# who signed a request with the deprecated shared key (a registered device is named by its registry name)
SHARED = object()
SHARED_KEY_WARNING = ("DEVICE_SHARED_KEY is on (deprecated): whoever holds the shared DEVICE_KEY/DEVICE_SECRET "
                      "can post as any device on {}; give each device its own key with "
                      "'python -m components.iot device add NAME' and turn it off").format(DEVICE_TOPIC)


def _ascii_query(request):
    """True when every query name and value of ``request`` is ASCII."""
    try:
        for name, values in request.args.items():
            name.decode("ascii")
            for value in values:
                value.decode("ascii")
    except UnicodeDecodeError:
        return False
    return True


def client_registry(settings):
    """A :class:`DeviceRegistry` on the client database with the KEK of ``settings`` (SettingsError,
    StorageConfigError when they cannot be used)."""
    return DeviceRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))


class DeviceBridgeSession(HubComponent):
    """
    The one publisher of device readings (role ``device_bridge``): the
    ``/publish`` resource publishes through it, and devices with a ``device``
    token call ``iot.device.publish(value)``, which it validates like a post
    and publishes on ``iot.device.<sub>`` when ``sub`` is a registered,
    unrevoked device. Either way the published state carries this session's
    ``seq`` and ``ts`` (one :class:`TopicState` per device topic); a device
    never publishes on its own, so no device can claim a newer state. Both
    ways draw on one rate limit per device (:meth:`admit`).
    """

    states = None
    registry = None
    registry_error = None
    limiter = None

    def start(self):
        self.states = {}
        self.limiter = device_limiter(self.settings, self.reactor.seconds)
        self._limited = set()
        try:
            self.registry = client_registry(self.settings)
        except (SettingsError, StorageConfigError, OSError) as error:
            self.registry_error = str(error)
            self.log.error("device tokens refused: the device registry cannot be opened: {reason}",
                           reason=self.registry_error)
        d = self.register(self.publish_for_device, DEVICE_PUBLISH,
                          options=RegisterOptions(details_arg="call_details", invoke="roundrobin"))
        d.addCallback(lambda _: self.log.info("device bridge session joined ({procedure} registered)",
                                              procedure=DEVICE_PUBLISH))
        return d

    def onLeave(self, details):
        if self.registry is not None:
            self.registry.db.close()
        return HubComponent.onLeave(self, details)

    def admit(self, device):
        """
        Take one reading of ``device`` (its registry name; the shared key's
        posts are keyed by the name in their body) from its bucket;
        RateLimited with ``retry_after`` (seconds) when the bucket is empty.
        One warning per device for each streak of refusals.
        """
        allowed, retry_after = self.limiter.check(device)
        if allowed:
            self._limited.discard(device)
            return
        if device not in self._limited:
            self._limited.add(device)
            self.log.warn("device {device!r} is over its rate limit ({rate:g} readings/s, burst {burst:g}); "
                          "its readings are refused until it slows down", device=device, rate=self.limiter.rate,
                          burst=self.limiter.burst)
        raise errors.RateLimited("device sends more than {:g} readings/s; retry in {:.3f} s".format(
            self.limiter.rate, retry_after), retry_after=round(retry_after, 3))

    def give_back(self, device):
        """Return the token :meth:`admit` took for a reading that was not published after all."""
        self.limiter.refund(device)

    def next_state(self, topic, device, value):
        """The new state dict of ``topic``: ``value`` of ``device`` with this hub's seq and ts."""
        state = self.states.get(topic)
        if state is None:
            state = self.states[topic] = TopicState(self.reactor.seconds)
        return state.update(value, device=device)

    def publish_reading(self, topic, state):
        """
        Publish the device ``state`` dict on ``topic``; fire with
        ``(publication, state)``. Every device state goes out through here.
        """
        d = self.publish(topic, state, options=PublishOptions(acknowledge=True))
        d.addCallback(history_writer.recorded, self, topic, state)
        return d.addCallback(lambda publication: (publication, state))

    def report(self, topic, device, value):
        """Publish a reading of ``device`` on ``topic`` with the next seq; fire with ``(publication, state)``."""
        return self.publish_reading(topic, self.next_state(topic, device, value))

    @defer.inlineCallbacks
    def publish_for_device(self, /, *args, call_details=None, **kwargs):
        """``iot.device.publish(value)``: one reading of the calling device; fires with ``{"seq"}``."""
        value, topic = bind(DEVICE_PUBLISH, args, kwargs, {"value": REQUIRED, "topic": None})
        name = getattr(call_details, "caller_authid", None)
        check_value(value)
        own = device_topic(name) if isinstance(name, str) else None
        if topic is not None and topic != own:
            raise errors.NotAuthorized("device {!r} may publish on {} only".format(name, own))
        if self.registry is None:  # why is in the log (start)
            raise errors.Unavailable("device registry unavailable")
        try:
            registered = yield self.registry.active(name)
        except StorageUnavailable as error:  # the database's words stay in the log
            self.log.warn("device token refused: device registry unavailable: {error}", error=error)
            raise errors.Unavailable(errors.DATABASE_UNAVAILABLE) from None
        if not registered:
            self.log.warn("device token refused: {name!r} is no registered, unrevoked device", name=name)
            raise errors.NotAuthorized("{!r} is not a registered device (or it was revoked)".format(name))
        self.admit(name)
        _, state = yield self.report(own, name, value)
        self.registry.seen(name)
        return {"seq": state["seq"]}


def device_credentials(settings, directory):
    """The shared ``(key, secret)`` from the settings, else dev files in ``directory``; SettingsError when
    half set."""
    key = settings.get(iot_settings.DEVICE_KEY)
    secret = settings.get(iot_settings.DEVICE_SECRET)
    if bool(key) != bool(secret):
        raise SettingsError("set both DEVICE_KEY and DEVICE_SECRET, or neither (dev credentials)")
    if not key:
        require_development(settings, "the shared device key (DEVICE_SHARED_KEY is on)",
                            "set DEVICE_KEY and DEVICE_SECRET, or turn DEVICE_SHARED_KEY off (devices sign with their "
                            "own credentials: `reactive-hub device add`)")
        key = read_or_create_secret(os.path.join(directory, KEY_FILE))
        secret = read_or_create_secret(os.path.join(directory, SECRET_FILE))
    if not _KEY.fullmatch(key):
        raise SettingsError("DEVICE_KEY may only hold letters, digits and . _ ~ -")
    if len(secret.encode("utf-8")) < iot_settings.MIN_DEVICE_SECRET_BYTES:
        raise SettingsError("DEVICE_SECRET must be at least {} bytes".format(iot_settings.MIN_DEVICE_SECRET_BYTES))
    return key, secret


def check_value(value):
    """``value`` when it is a reading (a JSON scalar a browser shows as sent), else InvalidArgument."""
    if not _scalar(value):
        raise errors.InvalidArgument("value must be a number, text of at most {} characters, true, false or "
                                     "null".format(MAX_TEXT_VALUE))
    return value


def reading_body(event):
    """
    ``(topic, device, value)`` of a post ``{"topic": "iot.device.<name>",
    "args": [{"value": <scalar>}]}`` (``"device": <name>`` beside ``value``
    optional: ``device`` is None without it); InvalidArgument for any other
    shape (a topic that is no WAMP URI, other or missing keys, a value that
    is no JSON scalar, text over ``MAX_TEXT_VALUE`` characters, an integer a
    browser cannot represent), NotAuthorized for a topic outside
    ``DEVICE_PREFIX``.
    """
    if not isinstance(event, dict) or set(event) != {"topic", "args"}:
        raise errors.InvalidArgument('the body must be {"topic": ..., "args": [...]} and nothing else')
    topic, args = event["topic"], event["args"]
    if not isinstance(topic, str) or len(topic) > MAX_TOPIC or not _URI.fullmatch(topic):
        raise errors.InvalidArgument("topic must be a WAMP URI such as {}<device name>".format(DEVICE_PREFIX))
    if not topic.startswith(DEVICE_PREFIX):
        raise errors.NotAuthorized("devices may publish {}* topics only".format(DEVICE_PREFIX))
    if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict) or \
            set(args[0]) not in ({"value"}, {"device", "value"}):
        raise errors.InvalidArgument('args must be [{"value": <scalar>}] (a "device" beside it optional) '
                                     'and nothing else')
    device, value = args[0].get("device"), args[0]["value"]
    if "device" in args[0] and (not isinstance(device, str) or not _DEVICE_NAME.fullmatch(device)):
        raise errors.InvalidArgument("device must be 1-64 letters, digits or . _ ~ -")
    return topic, device, check_value(value)


def device_reading(event, name):
    """
    ``(topic, value)`` of a post signed with the key of the registered
    device ``name``: its topic must be ``iot.device.<name>`` and a
    ``device`` in the body must be ``name`` (NotAuthorized otherwise: a
    device cannot speak for another); the shape as :func:`reading_body`.
    """
    topic, claimed, value = reading_body(event)
    own = device_topic(name)
    if topic != own or claimed not in (None, name):
        raise errors.NotAuthorized("the key of device {!r} publishes on {} only, as {!r}".format(name, own, name))
    return topic, value


def shared_reading(event):
    """``(topic, device, value)`` of a post signed with the deprecated shared key: on ``iot.device.reading``
    only (NotAuthorized elsewhere), naming its device in the body (InvalidArgument without)."""
    topic, device, value = reading_body(event)
    if topic != DEVICE_TOPIC:
        raise errors.NotAuthorized("the shared key (DEVICE_SHARED_KEY) publishes on {} only".format(DEVICE_TOPIC))
    if device is None:
        raise errors.InvalidArgument('with the shared key, args must be [{"device": <name>, "value": <scalar>}]')
    return topic, device, value


def _scalar(value):
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= MAX_SAFE_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    if not isinstance(value, str) or len(value) > MAX_TEXT_VALUE:
        return False
    try:
        value.encode("utf-8")  # a lone surrogate would fail every subscriber's serializer
    except UnicodeEncodeError:
        return False
    return True


def cors_origins(settings):
    """``DEVICE_CORS_ORIGINS``: the origins (``https://app.example.org``) or ``*`` as bytes."""
    return settings.get(iot_settings.DEVICE_CORS_ORIGINS)


def _refuse(request, error, status=None, log=_log):
    """
    The answer body for ``error`` (a domain error, or any failure: logged, answered generic), its status and
    headers set on ``request`` by the hub's one HTTP error mapping (:func:`components.core.httpjson.error_answer`);
    ``status`` replaces the family's.
    """
    if status is not None:
        error = HTTPError(status, error.uri, error.message, **(error.kwargs or {}))
    return write_error(request, error, log, "device HTTP publish")


def _crossbar_uri(code):
    """The URI of a refusal Crossbar's request checks answer with ``code``."""
    if code in (401, 403):
        return errors.NOT_AUTHORIZED
    return errors.INVALID_ARGUMENT if 400 <= code < 500 else errors.INTERNAL


def _query_key(request):
    """The request's ``key`` query value, or None."""
    values = request.args.get(b"key") or [None]
    return None if values[0] is None else values[0].decode("ascii")


class DevicePublishResource(PublisherResource):
    """
    ``/publish``: signed device readings into the realm, published through
    the session ``session_source()`` gives (503 while there is none), each
    request once across every node using ``database`` (the client database,
    which also holds the device registry).
    """

    log = Logger()

    def __init__(self, settings, session_source, database, clock=time.time, registry=None):
        self.session_source = session_source
        self.disabled = None
        self.cors = frozenset()
        self.require_tls = self.behind_tls = False
        self.shared = None
        self.registry = registry
        limit = settings.get(iot_settings.DEVICE_TIMESTAMP_LIMIT)
        # Crossbar's own TLS check knows nothing of a proxy in front: ours is in render. Crossbar checks the
        # signature against key and secret set per request (render_signed); between requests they are a
        # random secret no key matches
        self._unknown = secrets.token_bytes(32)
        options = {"timestamp_delta_limit": limit,
                   "post_body_limit": settings.get(iot_settings.DEVICE_BODY_LIMIT),
                   "require_tls": False}
        try:
            if settings.get(iot_settings.DEVICE_SHARED_KEY):
                self.shared = device_credentials(settings, settings.node_directory)
                self.log.warn(SHARED_KEY_WARNING)
            if self.registry is None:
                self.registry = DeviceRegistry(database, load_kek(settings), clock=clock)
            self.cors = cors_origins(settings)
            self.require_tls = settings.get(iot_settings.DEVICE_REQUIRE_TLS)
            self.behind_tls = settings.get(core_settings.PUBLIC_URL).startswith("https://")
        except (SettingsError, OSError) as error:  # OSError: an E2E_KEK_FILE that cannot be read
            self.disabled = str(error)
            self.log.error("device HTTP bridge disabled: {reason}", reason=self.disabled)
        PublisherResource.__init__(self, options, None)
        self._key, self._secret = None, self._unknown
        self.replays = ReplayStore(database, limit, clock=clock)

    @property
    def _session(self):
        return self.session_source()

    @_session.setter
    def _session(self, value):
        """Crossbar's constructor stores a session here; ours comes from ``session_source``."""

    def _set_common_headers(self, request):
        """JSON, never cached; CORS only for a configured origin (Crossbar's allowed any, with cookies)."""
        request.setHeader(b"cache-control", b"no-store,no-cache,must-revalidate,max-age=0")
        request.setHeader(b"content-type", b"application/json; charset=UTF-8")
        if not self.cors:
            return
        request.setHeader(b"vary", b"Origin")
        origin = request.getHeader(b"origin")
        if origin is not None and (origin in self.cors or b"*" in self.cors):
            request.setHeader(b"access-control-allow-origin", b"*" if b"*" in self.cors else origin)
            request.setHeader(b"access-control-allow-headers", b"Content-Type")
            request.setHeader(b"access-control-allow-methods", b"POST, OPTIONS")

    def render(self, request):
        if request.method == b"OPTIONS":
            # a CORS preflight: answered here, as Crossbar's own answer carries CORS headers for anyone
            self._set_common_headers(request)
            request.setHeader(b"allow", b"POST, OPTIONS")
            return b""
        if request.method != b"POST":
            self._set_common_headers(request)
            request.setHeader(b"allow", b"POST, OPTIONS")
            return _refuse(request, errors.InvalidArgument("use POST"), status=405)
        refusal = self._refusal(request)
        if refusal is not None:
            self._set_common_headers(request)
            return _refuse(request, refusal)
        lost = request.hub_lost = []
        request.notifyFinish().addErrback(lost.append)
        d = self._signer(_query_key(request))
        d.addCallback(self.render_signed, request)
        d.addErrback(self._failed_early, request)
        d.addCallback(self._answer, request)
        return server.NOT_DONE_YET

    def _signer(self, key):
        """Fire with ``(who, secret)`` for the request key ``key``: ``who`` is a device name or SHARED; None
        for no key, an unknown, revoked or rotated one."""
        if key is None or not _KEY.fullmatch(key):
            return defer.succeed(None)
        if self.shared is not None and key == self.shared[0]:
            return defer.succeed((SHARED, self.shared[1]))
        d = self.registry.lookup(key)
        return d.addCallback(lambda found: None if found is None else (found.name, found.secret))

    def render_signed(self, signer, request):
        """Crossbar's render with the signer's key and secret (no signer: a secret no key matches), which
        are only set while it runs (it is synchronous up to ``_process``)."""
        request.hub_signer = signer
        if signer is not None:
            self._key, self._secret = _query_key(request).encode("ascii"), signer[1].encode("utf-8")
        try:
            return PublisherResource.render(self, request)
        finally:
            self._key, self._secret = None, self._unknown

    def _failed_early(self, failure, request):
        self._set_common_headers(request)
        return self._failed(failure, request)

    @staticmethod
    def _answer(body, request):
        """Write a body Crossbar returned (a refusal) and finish; NOT_DONE_YET means Crossbar finishes."""
        if body is server.NOT_DONE_YET or request.hub_lost:
            return
        request.write(body)
        request.finish()

    def _refusal(self, request):
        """Why this bridge cannot take ``request`` at all, or None."""
        if self.disabled is not None:
            return errors.Unavailable(PUBLISH_UNAVAILABLE)  # why is in the log (at start)
        if self._session is None:
            return errors.Unavailable("device bridge session not joined yet")
        if self.require_tls and not (request.isSecure() or self.behind_tls):
            return errors.InvalidArgument("DEVICE_REQUIRE_TLS is on: post over https")
        if not _ascii_query(request):
            # Crossbar decodes the query as ASCII and answers anything else with a 500
            return errors.InvalidArgument("the query string must be ASCII (percent-encode nothing but ASCII)")
        return None

    def _process(self, request, event):
        """Reached only after Crossbar checked key, timestamp window and signature."""
        who = request.hub_signer[0]
        session = self._session
        try:
            if who is SHARED:
                topic, device, value = shared_reading(event)
            else:
                device = who
                topic, value = device_reading(event, device)
            if session is None:
                raise errors.Unavailable("device bridge session left")
            # before the replay memory's database write: a flood is refused at the cost of a dict lookup
            # registered names have no ':', so a shared-key post never shares a registered device's bucket
            limit_key = "shared:" + device if who is SHARED else device
            session.admit(limit_key)
        except errors.HubError as error:
            if error.uri == errors.NOT_AUTHORIZED:
                self.log.warn("device HTTP bridge refused a post of {who}: {reason}",
                              who="the shared key" if who is SHARED else repr(who), reason=str(error))
            return _refuse(request, error)
        signature = (request.args.get(b"signature") or [b""])[0].decode("ascii", "replace")
        answered = defer.Deferred()

        def respond(body):
            if not request.hub_lost:  # Crossbar finishes the request once ``answered`` fires
                request.write(body)
                answered.callback(None)

        work = self._publish_once(session, limit_key, signature, topic, device, value,
                                  registered=who is not SHARED)
        work.addErrback(self._failed, request)
        work.addCallback(respond)
        return answered

    @defer.inlineCallbacks
    def _publish_once(self, admitted, limit_key, signature, topic, device, value, registered):
        """Publish a reading ``admitted`` (the bridge session) let through under ``limit_key`` unless its
        signature was seen before; the token goes back when it is not published."""
        try:
            fresh = yield self.replays.claim(signature)
        except Exception:
            admitted.give_back(limit_key)
            raise
        if not fresh:
            admitted.give_back(limit_key)  # a replay is nothing the device sent: it costs the device nothing
            self.log.warn("device HTTP bridge refused a replayed request (device {device})", device=device)
            raise Replayed("request already seen")
        session = self._session
        if session is None:
            raise errors.Unavailable("device bridge session left")
        publication, state = yield session.report(topic, device, value)
        if registered:
            self.registry.seen(device)
        return json.dumps({"id": publication.id, "seq": state["seq"]}).encode("utf-8")

    def _failed(self, failure, request):
        """A refusal as it is; a database that is down (the registry, the replay memory) or any other fault
        answered in generic words, the detail logged (errors.public)."""
        if failure.check(SettingsError):
            self.log.error("device HTTP bridge: {error} (check E2E_KEK)", error=failure.value)
            return _refuse(request, errors.Unavailable(PUBLISH_UNAVAILABLE))
        return _refuse(request, failure, log=self.log)

    def _deny_request(self, request, code, **kwargs):
        """Crossbar's own refusals (signature, timestamp, body, method) in the hub's one body shape."""
        denied = json.loads(PublisherResource._deny_request(self, request, code, **kwargs))
        return _refuse(request, HTTPError(code, _crossbar_uri(code), denied["error"]), log=self.log)
