"""
``/metrics``: the monitor's latest rendering as Prometheus text.

The monitor renders the metric families once per ``METRICS_INTERVAL``
(:meth:`components.ops.monitor.MonitorComponent.refresh`); this resource
only serves that text, with its age (the ``Age`` header and the gauge
``hub_metrics_age_seconds``), so any number of scrapes cost the router no
collection. The first request before the first rendering waits for it (up
to ``first_wait`` seconds, then 503).

Who may read it:

- on an internal transport (``internal=True``; the node config marks the
  service with ``"extra": {"transport": "internal"}``): anyone who reaches
  the port;
- on a public transport: requests with ``Authorization: Bearer <token>``
  (``METRICS_TOKEN``, compared in constant time); others get 401 with
  ``WWW-Authenticate: Bearer``. Without a token configured the service is
  off there: 404 for everyone.

Refusals (401, 404, 503) are in the hub's one error body
(``{"error": <uri>, "message": ...}``); the metrics themselves are text.
"""

import hashlib
import hmac

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from components.core import errors
from components.core.httpjson import HTTPError, JSONMethods, finish, finish_json, write_error
from components.core.settings import SettingsError
from components.ops import promtext

FIRST_WAIT = 15.0
MIN_TOKEN_LENGTH = 16
OFF_MESSAGE = ("metrics are off on this port: set METRICS_TOKEN and send Authorization: Bearer <token>, "
               "or scrape the node's internal port")


def check_token(token):
    """``token`` (METRICS_TOKEN) when usable: empty (off) or at least MIN_TOKEN_LENGTH characters."""
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise SettingsError("METRICS_TOKEN must have at least {} characters".format(MIN_TOKEN_LENGTH))
    return token


def _digest(value):
    return hashlib.sha256(value).digest()


def bearer_matches(header, token):
    """Whether the ``Authorization`` header value (bytes or None) is ``Bearer <token>``; constant time."""
    scheme, _, presented = (header or b"").partition(b" ")
    if scheme.lower() != b"bearer":
        presented = b""
    # equal-length digests: the comparison reveals neither the token nor its length
    return hmac.compare_digest(_digest(presented.strip()), _digest(token.encode("utf-8"))) and bool(token)


class MetricsResource(JSONMethods, Resource):
    """``/metrics`` (see the module docstring): ``monitor_source()`` gives the monitor or None (503)."""

    isLeaf = True

    def __init__(self, monitor_source, token="", internal=False, first_wait=FIRST_WAIT, reactor=None):
        Resource.__init__(self)
        self.monitor_source = monitor_source
        self.token = check_token(token)
        self.internal = internal
        self.first_wait = first_wait
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor

    def render_GET(self, request):
        request.setHeader(b"Cache-Control", b"no-store")
        refused = self._refusal(request)
        if refused is not None:
            return refused
        monitor = self.monitor_source()
        if monitor is None:
            return write_error(request, errors.Unavailable("monitor component not running"))
        if monitor.latest is not None:
            return self._body(request, monitor, monitor.latest)
        d = monitor.rendered()
        d.addTimeout(self.first_wait, self.reactor)
        d.addCallbacks(lambda rendered: finish(request, 200, promtext.CONTENT_TYPE,
                                               self._body(request, monitor, rendered)),
                       lambda failure: finish_json(request, 503, errors.body(
                           errors.UNAVAILABLE, "metrics not collected yet, retry shortly")))
        request.notifyFinish().addErrback(lambda _: d.cancel())
        return NOT_DONE_YET

    def _refusal(self, request):
        """The body of a refused request (its code set), or None when the request may read the metrics."""
        if self.internal:
            return None
        if not self.token:
            return write_error(request, errors.NotFound(OFF_MESSAGE))
        header = request.getHeader(b"authorization")
        if bearer_matches(header, self.token):
            return None
        challenge = b'Bearer realm="metrics"' + (b', error="invalid_token"' if header else b"")
        request.setHeader(b"WWW-Authenticate", challenge)
        return write_error(request, HTTPError(401, errors.NOT_AUTHORIZED, "send Authorization: Bearer <METRICS_TOKEN>"))

    def _body(self, request, monitor, rendered):
        age = max(0.0, monitor.reactor.seconds() - rendered.at)
        request.setHeader(b"Content-Type", promtext.CONTENT_TYPE)
        request.setHeader(b"Age", str(int(age)).encode("ascii"))
        family = promtext.Family("hub_metrics_age_seconds", "gauge", "Seconds since these metrics were collected")
        return rendered.body + promtext.render([family.add(round(age, 3))]).encode("utf-8")
