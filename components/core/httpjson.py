"""
Small helpers for the hub's Twisted Web resources: JSON bodies, JSON
answers from Deferreds, finishing a deferred answer unless the client has
gone, and the same-origin check that guards state-changing endpoints against
cross-site requests.

:func:`error_answer` is the one place an error becomes an HTTP answer:
every resource (``/auth``, ``/publish``, ``/health``, the JSON 405s) answers
a domain error with its family's status and ``{"error": <uri>, "message":
<text>}`` (``"details"`` beside them when the error has keyword details,
``Retry-After`` for a rate limit), and anything else as a logged internal
error (:func:`components.core.errors.public`).
"""

import json
import math
from urllib.parse import parse_qs, urlparse

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from components.core import errors

log = Logger()
MAX_BODY = 16 * 1024


class HTTPError(errors.HubError):
    """A domain error with its own HTTP ``status`` and extra response ``headers``."""

    def __init__(self, status, uri, message, headers=None, **details):
        errors.HubError.__init__(self, message, uri=uri, **details)
        self.status = status
        self.headers = headers or {}


def error_answer(error, log=log, what="request"):
    """``(status, body, headers)`` of the HTTP answer to ``error`` (an exception or a Failure)."""
    error = errors.public(error, log, what)
    headers = dict(getattr(error, "headers", None) or {})
    retry_after = (error.kwargs or {}).get("retry_after")
    if error.status == 429 and isinstance(retry_after, (int, float)):
        headers.setdefault("Retry-After", max(1, math.ceil(retry_after)))
    return error.status, errors.body(error.uri, error.message, error.kwargs), headers


def header(request, name):
    """A request header as text ('' when absent)."""
    value = request.getHeader(name.encode("ascii"))
    return value.decode("latin-1") if isinstance(value, bytes) else (value or "")


def write_json(request, status, body, headers=None):
    payload = json.dumps(body).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode("ascii"), str(value).encode("latin-1"))
    request.setHeader(b"Content-Length", str(len(payload)).encode("ascii"))
    return payload


def write_error(request, error, log=log, what="request"):
    """Set the status and headers of the answer to ``error`` on ``request``; return its JSON body."""
    status, body, headers = error_answer(error, log, what)
    return write_json(request, status, body, headers)


def respond(request, handler):
    """Run ``handler(request)`` (may return a Deferred of ``(status, body[, headers])``) and answer in JSON."""
    finished = []
    request.notifyFinish().addErrback(lambda _: finished.append(True))

    def done(result):
        status, body = result[0], result[1]
        headers = result[2] if len(result) > 2 else None
        if not finished:
            request.write(write_json(request, status, body, headers))
            request.finish()

    def failed(failure):
        path = getattr(request, "path", None) or request.uri
        status, body, headers = error_answer(failure, what="request to {}".format(path.decode("latin-1")))
        if not finished:
            request.write(write_json(request, status, body, headers))
            request.finish()

    defer.maybeDeferred(handler, request).addCallbacks(done, failed)
    return NOT_DONE_YET


def read_fields(request):
    """The request's JSON object or form fields as a dict of strings; HTTPError 400 otherwise."""
    raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise HTTPError(413, errors.INVALID_ARGUMENT, "request body too large")
    content_type = header(request, "content-type").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            raise HTTPError(400, errors.INVALID_ARGUMENT, "body is not valid JSON")
        if not isinstance(data, dict):
            raise HTTPError(400, errors.INVALID_ARGUMENT, "body must be a JSON object")
        return data
    if content_type in ("application/x-www-form-urlencoded", ""):
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise HTTPError(400, errors.INVALID_ARGUMENT, "body is not UTF-8")
        return {key: values[0] for key, values in fields.items()}
    raise HTTPError(415, errors.INVALID_ARGUMENT, "send JSON or a form")


def check_same_origin(request):
    """
    Refuse cross-site browser requests: an ``Origin`` must match the host the
    request was sent to; ``Sec-Fetch-Site: cross-site`` is refused. Clients
    that send neither (curl, scripts, devices) pass.
    """
    origin = request.getHeader(b"origin")
    if origin is not None:
        origin = header(request, "origin")
        host = header(request, "host")
        parsed = urlparse(origin)
        if origin == "null" or parsed.netloc.lower() != host.lower():
            raise HTTPError(403, errors.NOT_AUTHORIZED, "cross-origin request refused")
    if header(request, "sec-fetch-site").lower() == "cross-site":
        raise HTTPError(403, errors.NOT_AUTHORIZED, "cross-site request refused")


def finish(request, code, content_type, body):
    """Complete a deferred response unless the client has gone."""
    if getattr(request, "_disconnected", False) or request.finished:
        return
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Cache-Control", b"no-store")
    request.write(body)
    request.finish()


def finish_json(request, code, body):
    finish(request, code, b"application/json", json.dumps(body).encode("utf-8"))


class NotFound(Resource):
    """A 404 in the hub's one error body (``reactive.error.not_found``), for any method."""

    isLeaf = True

    def render(self, request):
        return write_error(request, HTTPError(404, errors.NOT_FOUND, "no such page"))


class JSONMethods:
    """
    A Twisted ``Resource`` mixin: a request with a method the resource has no
    ``render_<METHOD>`` for gets a JSON 405 naming the allowed methods,
    instead of Twisted's HTML error page.
    """

    def render(self, request):
        method = request.method.decode("ascii", "replace") if isinstance(request.method, bytes) else ""
        if not method.isalpha() or getattr(self, "render_" + method, None) is None:
            allowed = sorted(name[len("render_"):] for name in dir(self)
                             if name.startswith("render_") and name[len("render_"):].isupper())
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
            return write_error(request, HTTPError(405, errors.INVALID_ARGUMENT, "use {}".format(" or ".join(allowed))))
        return super().render(request)
