"""
Devices publishing over HTTP: ``POST /publish`` is Crossbar's HTTP bridge
publisher (its request parsing and signature check, subclassed) with what
Crossbar's own ``publisher`` service cannot do:

- key and secret from ``DEVICE_KEY`` / ``DEVICE_SECRET`` (Crossbar reads a
  publisher's key and secret literally from the config file; it has no
  ``$VAR`` support there), or, when both are unset, dev credentials created
  on first start in ``<node dir>/secrets/device_key`` and ``device_secret``
  (mode 0600); when only one is set the bridge answers 503;
- a replay guard shared by every node on the client database
  (:mod:`components.iot.replays`): a signed request is accepted once;
  Crossbar only checks the timestamp window (``DEVICE_TIMESTAMP_LIMIT``);
- one body shape, a device reading (:func:`device_reading`): anything else,
  a topic that is no WAMP URI included, gets 400; a topic outside
  ``iot.device.`` gets 403 before it reaches the router, which also refuses
  it (the bridge publishes as the router component ``DeviceBridgeSession``,
  role ``device``);
- the published event is the contract's state dict with ``seq`` and ``ts``
  set here, strictly increasing (also across restarts): whatever a device
  sends, it cannot claim a newer state than the hub's;
- no CORS headers unless ``DEVICE_CORS_ORIGINS`` names origins;
- ``DEVICE_REQUIRE_TLS`` also counts a request as TLS when ``PUBLIC_URL`` is
  ``https://`` (TLS ends at a proxy in front of the hub).
"""

import json
import math
import os
import re
import time

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions
from crossbar.bridge.rest.publisher import PublisherResource
from twisted.internet import defer
from twisted.logger import Logger

from components.core import errors
from components.core.arguments import REQUIRED, bind
from components.core.component import HubComponent
from components.core.secretfiles import read_or_create_secret
from components.core.settings import SettingsError
from components.core.state import TopicState
from components.db.database import StorageUnavailable
from components.iot import DEVICE_PREFIX, DEVICE_PUBLISH, DEVICE_TOPIC
from components.iot.replays import ReplayStore
from components.iot.signing import KEY_FILE, SECRET_FILE

_KEY = re.compile(r"[A-Za-z0-9._~-]{1,128}")
# a WAMP URI (loose rules: no empty component, no whitespace, '.' or '#' inside one)
_URI = re.compile(r"[^\s.#]+(\.[^\s.#]+)*")
MAX_TOPIC = 255
_DEVICE_NAME = re.compile(r"[A-Za-z0-9._~-]{1,64}")
MAX_TEXT_VALUE = 256
# the integers a browser represents exactly
MAX_SAFE_INTEGER = 2 ** 53 - 1


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


class DeviceBridgeSession(HubComponent):
    """
    The one publisher of device readings (role ``device_bridge``): the
    ``/publish`` resource publishes through it, and devices with a ``device``
    token call ``iot.device.publish(value, topic=iot.device.reading)``, which
    it validates like a post (the device is the token's subject). Either way
    the published state carries this session's ``seq`` and ``ts``; a device
    never publishes on its own, so no device can claim a newer state.
    """

    sequence = None

    def start(self):
        # one sequence for every device topic: strictly increasing per topic, and never below epoch ms
        self.sequence = TopicState(self.reactor.seconds)
        d = self.register(self.publish_for_device, DEVICE_PUBLISH,
                          options=RegisterOptions(details_arg="call_details", invoke="roundrobin"))
        d.addCallback(lambda _: self.log.info("device bridge session joined ({procedure} registered)",
                                              procedure=DEVICE_PUBLISH))
        return d

    def publish_reading(self, topic, device, value):
        """Publish ``value`` of ``device`` on ``topic`` with the hub's seq; fire with ``(publication, state)``."""
        state = self.sequence.update(value, device=device)
        d = self.publish(topic, state, options=PublishOptions(acknowledge=True))
        return d.addCallback(lambda publication: (publication, state))

    def publish_for_device(self, /, *args, call_details=None, **kwargs):
        """``iot.device.publish``: one reading of the calling device; fires with ``{"seq"}``."""
        value, topic = bind(DEVICE_PUBLISH, args, kwargs, {"value": REQUIRED, "topic": DEVICE_TOPIC})
        device = getattr(call_details, "caller_authid", None)
        topic, device, value = device_reading({"topic": topic, "args": [{"device": device, "value": value}]})
        return self.publish_reading(topic, device, value).addCallback(lambda result: {"seq": result[1]["seq"]})


def device_credentials(settings, directory):
    """``(key, secret)`` from the settings, else dev files in ``directory``; SettingsError when half set."""
    key = settings.text("DEVICE_KEY")
    secret = settings.text("DEVICE_SECRET")
    if bool(key) != bool(secret):
        raise SettingsError("set both DEVICE_KEY and DEVICE_SECRET, or neither (dev credentials)")
    if not key:
        key = read_or_create_secret(os.path.join(directory, KEY_FILE))
        secret = read_or_create_secret(os.path.join(directory, SECRET_FILE))
    if not _KEY.fullmatch(key):
        raise SettingsError("DEVICE_KEY may only hold letters, digits and . _ ~ -")
    if len(secret.encode("utf-8")) < 16:
        raise SettingsError("DEVICE_SECRET must be at least 16 bytes")
    return key, secret


def device_reading(event):
    """
    ``(topic, device, value)`` of a device's post ``{"topic":
    "iot.device.<name>", "args": [{"device": <name>, "value": <scalar>}]}``;
    InvalidArgument for any other shape (a topic that is no WAMP URI, other
    or missing keys, a value that is no JSON scalar, text over
    ``MAX_TEXT_VALUE`` characters, an integer a browser cannot represent),
    NotAuthorized for a topic outside ``DEVICE_PREFIX``.
    """
    if not isinstance(event, dict) or set(event) != {"topic", "args"}:
        raise errors.InvalidArgument('the body must be {"topic": ..., "args": [...]} and nothing else')
    topic, args = event["topic"], event["args"]
    if not isinstance(topic, str) or len(topic) > MAX_TOPIC or not _URI.fullmatch(topic):
        raise errors.InvalidArgument("topic must be a WAMP URI such as {}reading".format(DEVICE_PREFIX))
    if not topic.startswith(DEVICE_PREFIX):
        raise errors.NotAuthorized("devices may publish {}* topics only".format(DEVICE_PREFIX))
    if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict) or \
            set(args[0]) != {"device", "value"}:
        raise errors.InvalidArgument('args must be [{"device": <name>, "value": <scalar>}] and nothing else')
    device, value = args[0]["device"], args[0]["value"]
    if not isinstance(device, str) or not _DEVICE_NAME.fullmatch(device):
        raise errors.InvalidArgument("device must be 1-64 letters, digits or . _ ~ -")
    if not _scalar(value):
        raise errors.InvalidArgument("value must be a number, text of at most {} characters, true, false or "
                                     "null".format(MAX_TEXT_VALUE))
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
    """``DEVICE_CORS_ORIGINS``: origins (``https://app.example.org``) or ``*``, comma-separated."""
    origins = [item.strip() for item in settings.text("DEVICE_CORS_ORIGINS").split(",") if item.strip()]
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\[\]:-]+", origin):
            raise SettingsError("DEVICE_CORS_ORIGINS: {!r} is not an origin such as https://app.example.org "
                                "(scheme and host, no path)".format(origin))
    return frozenset(origin.encode("ascii") for origin in origins)


_HTTP_CODES = {errors.INVALID_ARGUMENT: 400, errors.NOT_AUTHORIZED: 403, errors.DEVICE_REPLAYED: 401,
               errors.UNAVAILABLE: 503}


def _refuse(request, error, status=None):
    """The answer body for a domain error, with its HTTP status (``status``, else the one for its URI)."""
    request.setResponseCode(status or _HTTP_CODES.get(error.uri, 500))
    return json.dumps({"error": error.uri, "args": [str(error)], "kwargs": {}}).encode("utf-8")


class DevicePublishResource(PublisherResource):
    """
    ``/publish``: signed device readings into the realm, published through
    the session ``session_source()`` gives (503 while there is none), each
    request once across every node using ``database`` (the client database).
    """

    log = Logger()

    def __init__(self, settings, session_source, database, clock=time.time):
        self.session_source = session_source
        self.disabled = None
        self.cors = frozenset()
        self.require_tls = self.behind_tls = False
        limit = settings.int("DEVICE_TIMESTAMP_LIMIT", 30, minimum=1, maximum=3600)
        # Crossbar's own TLS check knows nothing of a proxy in front: ours is in render
        options = {"timestamp_delta_limit": limit,
                   "post_body_limit": settings.int("DEVICE_BODY_LIMIT", 4096, minimum=64),
                   "require_tls": False}
        try:
            options["key"], options["secret"] = device_credentials(settings, settings.node_directory)
            self.cors = cors_origins(settings)
            self.require_tls = settings.bool("DEVICE_REQUIRE_TLS", False)
            self.behind_tls = settings.url("PUBLIC_URL").startswith("https://")
        except SettingsError as error:
            self.disabled = str(error)
            self.log.error("device HTTP bridge disabled: {reason}", reason=self.disabled)
        PublisherResource.__init__(self, options, None)
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
        return PublisherResource.render(self, request)

    def _refusal(self, request):
        """Why this bridge cannot take ``request`` at all, or None."""
        if self.disabled is not None:
            return errors.Unavailable("device bridge disabled: " + self.disabled)
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
        try:
            topic, device, value = device_reading(event)
        except errors.HubError as error:
            return _refuse(request, error)
        signature = (request.args.get(b"signature") or [b""])[0].decode("ascii", "replace")
        lost = []
        request.notifyFinish().addErrback(lost.append)
        answered = defer.Deferred()

        def respond(body):
            if not lost:  # Crossbar finishes the request once ``answered`` fires
                request.write(body)
                answered.callback(None)

        work = self._publish_once(request, signature, topic, device, value)
        work.addErrback(self._failed, request)
        work.addCallback(respond)
        return answered

    @defer.inlineCallbacks
    def _publish_once(self, request, signature, topic, device, value):
        fresh = yield self.replays.claim(signature)
        if not fresh:
            self.log.warn("device HTTP bridge refused a replayed request (device {device})", device=device)
            raise errors.HubError("request already seen", uri=errors.DEVICE_REPLAYED)
        session = self._session
        if session is None:
            raise errors.Unavailable("device bridge session left")
        publication, state = yield session.publish_reading(topic, device, value)
        request.setResponseCode(200)
        return json.dumps({"id": publication.id, "seq": state["seq"]}).encode("utf-8")

    def _failed(self, failure, request):
        if failure.check(errors.HubError):
            return _refuse(request, failure.value)
        if failure.check(ApplicationError) and failure.value.error == ApplicationError.NOT_AUTHORIZED:
            return _refuse(request, errors.NotAuthorized(failure.value.error_message()))
        if failure.check(ApplicationError) and failure.value.error == ApplicationError.INVALID_URI:
            return _refuse(request, errors.InvalidArgument(failure.value.error_message()))
        if failure.check(StorageUnavailable):
            self.log.warn("device HTTP bridge: replay store unavailable: {error}", error=failure.value)
            return _refuse(request, errors.Unavailable("replay store unavailable"))
        self.log.failure("device HTTP bridge: publishing failed", failure=failure)
        return _refuse(request, errors.Unavailable("publishing failed"))
