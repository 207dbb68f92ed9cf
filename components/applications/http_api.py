"""
``POST /apps/publish``: an application's server publishes on its own topics.

- HTTP Basic ``key:secret`` of a registered application
  (:mod:`components.applications.app_registry`); anything else is 401 with
  ``WWW-Authenticate``. A revoked or rotated key is refused within the
  registry's cache life (1 s).
- The body is ``{"topic", "args", "kwargs", "to_users"}`` (only ``topic``
  required; strict JSON, no NaN or Infinity; no kwargs named ``options``,
  ``topic`` or ``self``): 400 for anything else, 413 over ``APPS_BODY_LIMIT``, 403 for a
  topic outside the application's prefix ``app.<name>.``.
- ``to_users``: the event reaches only those users' sessions (published
  with ``eligible_authid`` here and relayed to linked nodes, see
  :mod:`components.applications.component`). A private application must name
  ``to_users`` (400 without), so its events never reach a subscriber the
  application did not name.
- A rate limit per application (``APPS_RATE``/s, ``APPS_BURST`` at once) in
  each router worker: 429 with ``Retry-After`` over it, nothing published.
- When ``PUBLIC_URL`` is ``https://``, a request must come over TLS, from a
  ``TRUSTED_PROXIES`` proxy (where TLS ends) or from loopback: 400 otherwise,
  so a misconfigured client notices before its secret travels in clear again.
- Answers: ``200 {"publication": <id>}``; every refusal in the hub's one
  error body (:func:`components.core.httpjson.write_error`).

Secrets never reach a log line.
"""

import base64
import binascii
import hmac
import json
import re

from autobahn.wamp.types import PublishOptions
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import Resource

from components.applications import MAX_URI, RESERVED_KWARGS, app_prefix
from components.applications import applications_settings as settings_of
from components.core import core_settings, errors
from components.core.clientaddress import parse_address, peer_address
from components.core.httpjson import HTTPError, NotFound, write_error, write_json
from components.core.ratelimit import RateLimiter

_WORD = re.compile(r"[0-9a-z_]+(\.[0-9a-z_]+)*")
MAX_USERNAME = 150
FIELDS = frozenset(("topic", "args", "kwargs", "to_users"))
REALM_HEADER = 'Basic realm="reactive-hub applications", charset="UTF-8"'


def unauthorized(message="send HTTP Basic key:secret of a registered application"):
    """The 401 answer's error."""
    return HTTPError(401, errors.NOT_AUTHORIZED, message, headers={"WWW-Authenticate": REALM_HEADER})


def basic_credentials(header):
    """``(key, secret)`` of an ``Authorization: Basic`` header value (bytes or None), else None."""
    if not header or not header[:6].lower() == b"basic ":
        return None
    try:
        key, sep, secret = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (key, secret) if sep and key and secret else None


def _no_constant(name):
    raise ValueError("{} is not JSON".format(name))


def publication(body, name, private, max_users=1000):
    """
    ``(topic, args, kwargs, to_users)`` of a request ``body`` (bytes) from
    application ``name``: InvalidArgument for a malformed body, NotAuthorized
    for a topic outside ``app.<name>.``; ``to_users`` is None when absent.
    """
    try:
        event = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise errors.InvalidArgument("the body is not JSON (NaN and Infinity are not JSON either)")
    if not isinstance(event, dict) or "topic" not in event or not set(event) <= FIELDS:
        raise errors.InvalidArgument('the body is {"topic": ..., "args": [...], "kwargs": {...}, '
                                     '"to_users": [...]} (only topic required)')
    topic, args, kwargs = event["topic"], event.get("args", []), event.get("kwargs", {})
    to_users = event.get("to_users")
    if not isinstance(topic, str) or len(topic) > MAX_URI or not _WORD.fullmatch(topic):
        raise errors.InvalidArgument("topic must be a URI of lower-case words such as {}orders".format(
            app_prefix(name)))
    if not topic.startswith(app_prefix(name)) or topic == app_prefix(name).rstrip("."):
        raise errors.NotAuthorized("application {!r} publishes on {}* only".format(name, app_prefix(name)))
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise errors.InvalidArgument("args must be a list and kwargs an object")
    if RESERVED_KWARGS & set(kwargs):
        raise errors.InvalidArgument("kwargs may not have the keys {} (WAMP's publish takes them)".format(
            ", ".join(sorted(RESERVED_KWARGS))))
    if to_users is not None:
        if not isinstance(to_users, list) or not 1 <= len(to_users) <= max_users or not all(
                isinstance(user, str) and 0 < len(user) <= MAX_USERNAME for user in to_users):
            raise errors.InvalidArgument("to_users must be a list of 1 to {} user names".format(max_users))
        to_users = sorted(set(to_users))
    elif private:
        raise errors.InvalidArgument("application {!r} is private: name its users in to_users".format(name))
    return topic, args, kwargs, to_users


def plain_allowed(request, behind_tls, trusted):
    """True when ``request`` may come without TLS: no https ``PUBLIC_URL``, or from loopback or a trusted
    proxy (where TLS ends)."""
    if not behind_tls or request.isSecure():
        return True
    address = parse_address(peer_address(request))
    if address is None:
        return False
    return address.is_loopback or any(address.version == network.version and address in network
                                      for network in trusted)


class AppsResource(Resource):
    """``/apps``: ``/apps/publish``; any other path a JSON 404."""

    def __init__(self, publish):
        Resource.__init__(self)
        self.putChild(b"publish", publish)

    def getChild(self, path, request):
        return NotFound()

    def render(self, request):
        return NotFound().render(request)


class AppPublishResource(Resource):
    """
    ``/apps/publish`` for the applications in ``registry``, published
    through the session ``session_source()`` gives (503 while there is none);
    ``settings`` gives the limits and TLS policy, ``clock`` seconds for the
    rate limit. ``disabled`` (a reason) answers 503 to everything.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, settings, session_source, registry, clock, disabled=None):
        Resource.__init__(self)
        self.session_source = session_source
        self.registry = registry
        self.disabled = disabled
        self.body_limit = settings.get(settings_of.APPS_BODY_LIMIT)
        self.max_users = settings.get(settings_of.APPS_MAX_USERS)
        self.limiter = RateLimiter(settings.get(settings_of.APPS_RATE), settings.get(settings_of.APPS_BURST),
                                   clock=clock)
        self.behind_tls = settings.get(core_settings.PUBLIC_URL).startswith("https://")
        self.trusted = settings.get(core_settings.TRUSTED_PROXIES)

    def render(self, request):
        if request.method != b"POST":
            request.setHeader(b"allow", b"POST")
            return write_error(request, HTTPError(405, errors.INVALID_ARGUMENT, "use POST"))
        if self.disabled is not None:
            return write_error(request, errors.Unavailable("application publishing is unavailable here"))
        if not plain_allowed(request, self.behind_tls, self.trusted):
            return write_error(request, errors.InvalidArgument("PUBLIC_URL is https: post over https"))
        body = request.content.read(self.body_limit + 1)
        if len(body) > self.body_limit:
            return write_error(request, HTTPError(413, errors.INVALID_ARGUMENT, "request body too large"))
        credentials = basic_credentials(request.getHeader(b"authorization"))
        if credentials is None:
            return write_error(request, unauthorized())
        lost = []
        request.notifyFinish().addErrback(lost.append)
        d = self.registry.lookup(credentials[0])
        d.addCallback(self._publish, credentials[1], body)
        d.addCallback(lambda publication_id: (200, {"publication": publication_id}, {}))
        d.addBoth(self._answer, request, lost)
        return server.NOT_DONE_YET

    @defer.inlineCallbacks
    def _publish(self, app, secret, body):
        if app is None or not hmac.compare_digest(app.secret.encode("utf-8"), secret.encode("utf-8")):
            raise unauthorized("unknown application key or wrong secret")
        topic, args, kwargs, to_users = publication(body, app.name, app.private, self.max_users)
        allowed, retry_after = self.limiter.check(app.name)
        if not allowed:
            raise errors.RateLimited("application {!r} publishes more than {:g}/s; retry in {:.3f} s".format(
                app.name, self.limiter.rate, retry_after), retry_after=round(retry_after, 3))
        session = self.session_source()
        if session is None:
            self.limiter.refund(app.name)
            raise errors.Unavailable("application bridge session not joined yet")
        try:
            if to_users is None:
                options = PublishOptions(acknowledge=True)
                published = yield session.publish(topic, *args, options=options, **kwargs)
            else:
                published = yield session.publish_to_users(topic, args, kwargs, to_users)
        except Exception:
            self.limiter.refund(app.name)
            raise
        return published.id

    def _answer(self, result, request, lost):
        if lost:
            return
        if isinstance(result, tuple):
            request.write(write_json(request, *result))
        else:
            request.write(write_error(request, result, self.log, "application publish"))
        request.finish()
