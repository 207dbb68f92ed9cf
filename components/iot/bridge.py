"""
Devices publishing over HTTP: ``POST /publish`` is Crossbar's HTTP bridge
publisher (its request parsing and signature check, subclassed) with
settings Crossbar's own ``publisher`` service cannot take:

- key and secret from ``DEVICE_KEY`` / ``DEVICE_SECRET`` (Crossbar reads a
  publisher's key and secret literally from the config file; it has no
  ``$VAR`` support there), or, when both are unset, dev credentials created
  on first start in ``<node dir>/secrets/device_key`` and ``device_secret``
  (mode 0600); when only one is set the bridge answers 503;
- a replay guard: a signed request is accepted once; Crossbar only checks the
  timestamp window (``DEVICE_TIMESTAMP_LIMIT`` seconds, 30 by default);
- topics outside ``iot.`` get 403 before they reach the router, which also
  refuses them: the bridge publishes as the router component
  ``DeviceBridgeSession``, role ``device`` (may publish ``iot.*`` only).
"""

import collections
import json
import os
import re
import time

from autobahn.wamp.exception import ApplicationError
from crossbar.bridge.rest.publisher import PublisherResource
from twisted.logger import Logger

from components.core import errors
from components.core.component import HubComponent
from components.core.secretfiles import read_or_create_secret
from components.core.settings import SettingsError
from components.iot import DEVICE_PREFIX
from components.iot.signing import KEY_FILE, SECRET_FILE

_KEY = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")


class DeviceBridgeSession(HubComponent):
    """The WAMP session (role ``device``) the ``/publish`` resource publishes through."""

    def start(self):
        self.log.info("device HTTP bridge session joined")


def device_credentials(settings, directory):
    """``(key, secret)`` from the settings, else dev files in ``directory``; SettingsError when half set."""
    key = settings.text("DEVICE_KEY")
    secret = settings.text("DEVICE_SECRET")
    if bool(key) != bool(secret):
        raise SettingsError("set both DEVICE_KEY and DEVICE_SECRET, or neither (dev credentials)")
    if not key:
        key = read_or_create_secret(os.path.join(directory, KEY_FILE))
        secret = read_or_create_secret(os.path.join(directory, SECRET_FILE))
    if not _KEY.match(key):
        raise SettingsError("DEVICE_KEY may only hold letters, digits and . _ ~ -")
    if len(secret.encode("utf-8")) < 16:
        raise SettingsError("DEVICE_SECRET must be at least 16 bytes")
    return key, secret


class ReplayGuard:
    """Remembers signatures for ``window`` seconds; ``seen(signature)`` is true for a repeat."""

    def __init__(self, window, clock=time.monotonic):
        self.window = window
        self.clock = clock
        self.expiry = collections.OrderedDict()

    def seen(self, signature):
        now = self.clock()
        while self.expiry:
            oldest, expires = next(iter(self.expiry.items()))
            if expires > now:
                break
            del self.expiry[oldest]
        if signature in self.expiry:
            return True
        self.expiry[signature] = now + self.window
        return False


def _refuse(request, code, uri, message):
    request.setResponseCode(code)
    return json.dumps({"error": uri, "args": [message], "kwargs": {}}).encode("utf-8")


class DevicePublishResource(PublisherResource):
    """
    ``/publish``: signed device events into the realm, published through the
    session ``session_source()`` gives (503 while there is none).
    """

    log = Logger()

    def __init__(self, settings, session_source):
        self.session_source = session_source
        self.disabled = None
        limit = settings.int("DEVICE_TIMESTAMP_LIMIT", 30, minimum=1, maximum=3600)
        options = {"timestamp_delta_limit": limit,
                   "post_body_limit": settings.int("DEVICE_BODY_LIMIT", 4096, minimum=64),
                   "require_tls": settings.bool("DEVICE_REQUIRE_TLS", False)}
        try:
            options["key"], options["secret"] = device_credentials(settings, settings.node_directory)
        except SettingsError as error:
            self.disabled = str(error)
            self.log.error("device HTTP bridge disabled: {reason}", reason=self.disabled)
        PublisherResource.__init__(self, options, None)
        # a request stays valid for the timestamp window on either side of now
        self.replays = ReplayGuard(2 * limit + 2)

    @property
    def _session(self):
        return self.session_source()

    @_session.setter
    def _session(self, value):
        """Crossbar's constructor stores a session here; ours comes from ``session_source``."""

    def render(self, request):
        if request.method != b"OPTIONS":
            if self.disabled is not None:
                self._set_common_headers(request)
                return _refuse(request, 503, errors.UNAVAILABLE, "device bridge disabled: " + self.disabled)
            if self._session is None:
                self._set_common_headers(request)
                return _refuse(request, 503, errors.UNAVAILABLE, "device bridge session not joined yet")
        return PublisherResource.render(self, request)

    def _process(self, request, event):
        # reached only after Crossbar checked key, timestamp window and signature
        topic = event.get("topic")
        if not isinstance(topic, str) or not topic.startswith(DEVICE_PREFIX):
            return _refuse(request, 403, errors.NOT_AUTHORIZED, "devices may publish iot.* topics only")
        signature = (request.args.get(b"signature") or [b""])[0]
        if self.replays.seen(signature):
            self.log.warn("device HTTP bridge refused a replayed request (key {key})",
                          key=(request.args.get(b"key") or [b""])[0].decode("utf-8", "replace"))
            return _refuse(request, 401, errors.DEVICE_REPLAYED, "request already seen")
        return PublisherResource._process(self, request, event)

    def _fail_request(self, request, **kwargs):
        failure = kwargs.get("failure")
        if failure is not None and failure.check(ApplicationError) and \
                failure.value.error == ApplicationError.NOT_AUTHORIZED:
            request.write(_refuse(request, 403, errors.NOT_AUTHORIZED, failure.value.error_message()))
            request.finish()
            return
        PublisherResource._fail_request(self, request, **kwargs)
