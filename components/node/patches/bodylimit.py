"""
Request-body limits for the web transport, enforced while the body arrives.

Twisted's ``HTTPChannel`` reads a request's whole body into
``request.content`` (a temporary file above 100 KB) before any resource
sees it, so a resource's own size check comes too late: on a stock router
``POST /auth/login`` declaring ``Content-Length: 2000000000`` had 150 MB
written to a temporary file in 0.2 s before the 16 KiB check ran. Crossbar's
web transport also sets no idle timeout, so a client that sends a body one
byte at a time holds its connection for ever.

``install(limits)`` wraps four ``HTTPChannel`` methods, in every channel of
the process (router and proxy workers serve only the hub's web transports):

- ``allHeadersReceived`` (request line and headers read, nothing of the body
  yet): a declared ``Content-Length`` above the path's limit is answered
  ``413`` with ``{"error": "reactive.error.invalid_argument", "message":
  "request body too large"}`` and the connection closed (aborted
  ``abortTimeout`` seconds later if the peer does not read), before Twisted
  creates the body's file or sends ``100 Continue``. A chunked body gets a
  counter on its decoded bytes and is refused the same way once past the
  limit. Every body gets a deadline (``timeout`` seconds from the end of the
  headers); a body not complete by then is answered ``408`` and dropped.
- ``rawDataReceived``: nothing more is read from a refused connection.
- ``allContentReceived``: a refused request never reaches a resource; a
  complete body cancels its deadline.
- ``connectionLost``: cancels the deadline.

So no body held in memory or on disk exceeds its limit. The connection is
not drained after a refusal: a client still sending its body may see a reset
instead of the answer (one that waits for ``100 Continue`` always reads it). The limit is chosen
by the first path segment, decoded as Twisted's ``Site`` does to pick the
resource: ``/auth/*`` ``MAX_BODY`` of ``components.core.httpjson`` (16 KiB),
``/publish`` ``DEVICE_BODY_LIMIT`` (4096), ``/apps/*`` ``APPS_BODY_LIMIT`` (64 KiB), every other path
``HTTP_BODY_LIMIT`` (1024; static files, ``/health``, ``/metrics`` and the
``/ws`` upgrade take no body); the deadline is ``HTTP_BODY_TIMEOUT`` (10 s).

The patch registry (``components.node.patches.registry``) installs it in
router and proxy workers and logs the limits; a malformed setting stops the
worker with an error naming it. It is a security patch: on a Twisted release
without the internals read here (``_path``, ``length``, ``_transferDecoder``
and its ``dataCallback``, ``callLater``, ``abortTimeout``,
``forceAbortClient``) ``install()`` raises ``PatchUnavailable`` and the
worker refuses to start. HTTP/2 (``H2Connection``, TLS with ALPN
and the ``h2`` package) does not go through ``HTTPChannel`` and is not
covered.
"""

import json
import os
import sys

from twisted.web import http

from components.node.patches import PatchUnavailable, names_used, replacement, unpatched
from components.applications import applications_settings
from components.core import errors
from components.core.httpjson import MAX_BODY
from components.core.settings import Settings
from components.iot import iot_settings
from components.node import node_settings

NAME = "bodylimit"
SECURITY = True
WORKERS = ("router", "proxy")
SUMMARY = ("request bodies refused (413/408) past their path's limit or deadline while they arrive, "
           "header deadline; Twisted buffers any body before a resource sees it")
UPSTREAM = "docs/upstream/bodylimit.patch"
VERIFIED = {"Twisted": "26.10.0", "crossbar": "26.10.1"}

PATCHED = "_reactive_hub_body_limit"
TOO_LARGE = "request body too large"
TOO_SLOW = "request body not received in time"
BAD_HOST = "the request needs one ASCII Host header"
HEADERS_TOO_SLOW = "request headers not received in time"
_HEADER_CLOCK = "_reactive_hub_header_clock"

_BODY = "_reactive_hub_body"
_REFUSED = "_reactive_hub_refused"
_HOOKED = ("allHeadersReceived", "rawDataReceived", "allContentReceived", "connectionLost", "connectionMade",
           "requestDone")
_CHANNEL_INTERNALS = ("length", "callLater", "abortTimeout", "_abortingCall", "forceAbortClient",
                      "loseConnection", "lineReceived", "_maybeChooseTransferDecoder")


class BodyLimits:
    """
    The most bytes a request body may have, by the first segment of its path
    (``by_segment``, bytes to int; ``default`` for the rest), and the seconds
    a body may take to arrive.
    """

    def __init__(self, default, by_segment, timeout, header_timeout=15.0):
        self.default = default
        self.by_segment = dict(by_segment)
        self.timeout = timeout
        self.header_timeout = header_timeout

    @classmethod
    def from_settings(cls, settings):
        """``HTTP_BODY_LIMIT``, ``DEVICE_BODY_LIMIT`` (/publish), ``APPS_BODY_LIMIT`` (/apps), ``HTTP_BODY_TIMEOUT``;
        MAX_BODY (/auth)."""
        return cls(default=settings.get(node_settings.HTTP_BODY_LIMIT),
                   by_segment={b"auth": MAX_BODY,
                               b"publish": settings.get(iot_settings.DEVICE_BODY_LIMIT),
                               b"apps": settings.get(applications_settings.APPS_BODY_LIMIT)},
                   timeout=settings.get(node_settings.HTTP_BODY_TIMEOUT),
                   header_timeout=settings.get(node_settings.HTTP_HEADER_TIMEOUT))

    def for_target(self, target):
        """The limit for a request target (``/auth/x?y``): by its first path segment, unquoted like Site."""
        path = target.split(b"?", 1)[0]
        return self.by_segment.get(http.unquote(path[1:].split(b"/", 1)[0]), self.default)

    def describe(self):
        """The limits as one line of text for the worker log."""
        paths = ", ".join("/{} {}".format(segment.decode("ascii", "replace"), limit)
                          for segment, limit in sorted(self.by_segment.items()))
        return "{}, anything else {} bytes; {:g} s per body, {:g} s for a request's headers".format(
            paths, self.default, self.timeout, self.header_timeout)


def limits_from_environment(argv, environ):
    """The limits as the worker's environment sets them (SettingsError naming a malformed one)."""
    return BodyLimits.from_settings(Settings.of_process(argv, environ))


def _answer(channel, status, message):
    """Answer ``status`` with the hub's JSON error, read no more, close (abort if the peer won't read)."""
    setattr(channel, _REFUSED, True)
    _cancel_deadline(channel)
    body = json.dumps({"error": errors.INVALID_ARGUMENT, "message": message}).encode("utf-8")
    head = ("HTTP/1.1 {} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n").format(
        status, http.RESPONSES.get(status, b"Error").decode("ascii"), len(body)).encode("ascii")
    channel.transport.write(head + body)
    if channel.abortTimeout is not None and getattr(channel, "_abortingCall", None) is None:
        # as Twisted's own timeout does: a peer that never reads must not hold the connection open
        channel._abortingCall = channel.callLater(channel.abortTimeout, channel.forceAbortClient)
    channel.loseConnection()


def _cancel_deadline(channel):
    body = getattr(channel, _BODY, None)
    setattr(channel, _BODY, None)
    if body is not None and body.deadline is not None and body.deadline.active():
        body.deadline.cancel()


class _Body:
    """The body being received on a channel: bytes still allowed (chunked only) and its deadline."""

    __slots__ = ("remaining", "deadline")

    def __init__(self, remaining):
        self.remaining = remaining
        self.deadline = None


def _counted(channel, body, deliver):
    """A decoder's ``dataCallback`` that refuses the request once ``body.remaining`` is used up."""

    def dataCallback(data):
        if getattr(channel, _REFUSED, False):
            return
        body.remaining -= len(data)
        if body.remaining < 0:
            _answer(channel, 413, TOO_LARGE)
            return
        deliver(data)

    return dataCallback


def _one_ascii_host(channel):
    """True when the request being received has exactly one Host header, in ASCII."""
    requests = getattr(channel, "requests", None)
    if not requests:
        return True  # nothing to judge by (another Twisted): leave it to the resources
    hosts = requests[-1].requestHeaders.getRawHeaders(b"host") or []
    if len(hosts) != 1 or not hosts[0]:
        return False
    try:
        hosts[0].decode("ascii")
    except UnicodeDecodeError:
        return False
    return True


def checking_headers(all_headers_received, limits):
    """``allHeadersReceived`` that refuses a declared length over the limit and meters the rest."""

    def allHeadersReceived(self):
        _stop_header_clock(self)
        if not _one_ascii_host(self):
            # Crossbar's reverse proxy (a client node's public /health, /metrics, /publish) fails with a 500
            # and a traceback on a missing or non-ASCII Host
            _answer(self, 400, BAD_HOST)
            return
        limit = limits.for_target(getattr(self, "_path", b"") or b"")
        declared = self.length
        if declared is not None and declared > limit:
            _answer(self, 413, TOO_LARGE)
            return
        all_headers_received(self)
        if declared == 0 or getattr(self, _REFUSED, False):
            return
        body = _Body(limit)
        if declared is None:  # chunked: count what the decoder delivers
            decoder = self._transferDecoder
            decoder.dataCallback = _counted(self, body, decoder.dataCallback)
        body.deadline = self.callLater(limits.timeout, lambda: _too_slow(self, body))
        setattr(self, _BODY, body)

    return replacement(allHeadersReceived, checking_headers, PATCHED)


def _too_slow(channel, body):
    if getattr(channel, _BODY, None) is body and not getattr(channel, _REFUSED, False):
        body.deadline = None
        _answer(channel, 408, TOO_SLOW)


def dropping_refused(raw_data_received):
    """``rawDataReceived`` that discards whatever arrives after a refusal."""

    def rawDataReceived(self, data):
        if getattr(self, _REFUSED, False):
            return
        return raw_data_received(self, data)

    return replacement(rawDataReceived, dropping_refused, PATCHED)


def completing_body(all_content_received):
    """``allContentReceived`` that cancels the body's deadline and never hands on a refused request."""

    def allContentReceived(self):
        if getattr(self, _REFUSED, False):
            return
        _cancel_deadline(self)
        return all_content_received(self)

    return replacement(allContentReceived, completing_body, PATCHED)


def cancelling_deadline(connection_lost):
    """``connectionLost`` that also cancels a pending body or header deadline."""

    def connectionLost(self, reason):
        _cancel_deadline(self)
        _stop_header_clock(self)
        return connection_lost(self, reason)

    return replacement(connectionLost, cancelling_deadline, PATCHED)


def _start_header_clock(channel, timeout):
    """A connection idle, or sending headers, for ``timeout`` seconds gets 408 and is closed."""
    _stop_header_clock(channel)
    setattr(channel, _HEADER_CLOCK, channel.callLater(timeout, _headers_too_slow, channel))


def _stop_header_clock(channel):
    clock = getattr(channel, _HEADER_CLOCK, None)
    setattr(channel, _HEADER_CLOCK, None)
    if clock is not None and clock.active():
        clock.cancel()


def _headers_too_slow(channel):
    setattr(channel, _HEADER_CLOCK, None)
    if channel.transport is not None and not getattr(channel, _REFUSED, False):
        _answer(channel, 408, HEADERS_TOO_SLOW)


def clocking_headers(connection_made, limits):
    """``connectionMade`` that starts the header clock: the first request's headers must come in time."""

    def connectionMade(self):
        connection_made(self)
        _start_header_clock(self, limits.header_timeout)

    return replacement(connectionMade, clocking_headers, PATCHED)


def clocking_next_request(request_done, limits):
    """``requestDone`` that restarts the header clock for the next request of a kept-alive connection."""

    def requestDone(self, request):
        request_done(self, request)
        # a taken-over transport (a WebSocket) is no HTTP connection any more
        if self.transport is not None and not self._handlingRequest and not getattr(self, _REFUSED, False):
            _start_header_clock(self, limits.header_timeout)

    return replacement(requestDone, clocking_next_request, PATCHED)


def missing_internals(channel_class, chunked_decoder_class):
    """What ``channel_class`` and the chunked decoder lack of everything the wrappers read (empty: nothing)."""
    missing = [name for name in _CHANNEL_INTERNALS + _HOOKED if not hasattr(channel_class, name)]
    if missing:
        return missing
    # instance attributes, set by the parsing code the wrappers run after
    if not _assigns(channel_class.lineReceived, "_path"):
        missing.append("_path (set by lineReceived)")
    if not _assigns(channel_class._maybeChooseTransferDecoder, "_transferDecoder"):
        missing.append("_transferDecoder (set by _maybeChooseTransferDecoder)")
    if not _assigns(chunked_decoder_class.__init__, "dataCallback"):
        missing.append("the chunked decoder's dataCallback")
    return missing


def has_internals(channel_class, chunked_decoder_class):
    """True when ``channel_class`` and the chunked decoder have everything the wrappers read."""
    return not missing_internals(channel_class, chunked_decoder_class)


def _assigns(function, attribute):
    """Whether ``function``'s code names ``attribute`` (how a release's parser is seen to set it)."""
    return attribute in names_used(function)


def forwarding_whole_bodies(proxy_client_init):
    """
    ``ProxyClient.__init__`` that frames the body it forwards by its length:
    the channel has already decoded a chunked body, so the request's
    ``Transfer-Encoding: chunked`` must not be passed on with it (the router
    behind a proxy worker would wait for chunks that never come).
    """

    def __init__(self, command, rest, version, headers, data, father):
        if headers.pop(b"transfer-encoding", None) is not None:
            headers[b"content-length"] = str(len(data)).encode("ascii")
        proxy_client_init(self, command, rest, version, headers, data, father)

    return replacement(__init__, forwarding_whole_bodies, PATCHED)


def install_proxy_framing(proxy_client_class=None):
    """Make Twisted's reverse-proxy client forward decoded bodies with a Content-Length; True if patched now."""
    if proxy_client_class is None:
        from twisted.web.proxy import ProxyClient as proxy_client_class
    original = unpatched(proxy_client_class, "__init__", PATCHED)
    if original is not None:
        proxy_client_class.__init__ = forwarding_whole_bodies(original)
    return original is not None


def install(limits=None, channel_class=None, chunked_decoder_class=None, proxy_client_class=None):
    """
    Make Twisted's ``HTTPChannel`` (or ``channel_class``) enforce ``limits``
    (by default the worker's settings; SettingsError names a malformed one)
    and its reverse-proxy client forward whole bodies. Returns the limits as
    text when patched now, False when already patched; PatchUnavailable when
    the channel or the chunked decoder lacks the internals the wrappers read.
    """
    channel_class = channel_class or http.HTTPChannel
    chunked_decoder_class = chunked_decoder_class or getattr(http, "_ChunkedTransferDecoder", None)
    if limits is None:
        limits = limits_from_environment(sys.argv, os.environ)
    if all(getattr(getattr(channel_class, name, None), PATCHED, False) for name in _HOOKED):
        return False
    if chunked_decoder_class is None:
        raise PatchUnavailable("twisted.web.http has no _ChunkedTransferDecoder")
    missing = missing_internals(channel_class, chunked_decoder_class)
    if missing:
        raise PatchUnavailable("{} lacks {}".format(channel_class.__name__, ", ".join(missing)))
    originals = [unpatched(channel_class, name, PATCHED) for name in _HOOKED]
    if None in originals:
        raise PatchUnavailable("{} is partly patched already".format(channel_class.__name__))
    headers, raw, content, lost, made, done = originals
    channel_class.allHeadersReceived = checking_headers(headers, limits)
    channel_class.rawDataReceived = dropping_refused(raw)
    channel_class.allContentReceived = completing_body(content)
    channel_class.connectionLost = cancelling_deadline(lost)
    channel_class.connectionMade = clocking_headers(made, limits)
    channel_class.requestDone = clocking_next_request(done, limits)
    install_proxy_framing(proxy_client_class)
    return limits.describe()
