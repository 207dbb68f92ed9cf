"""
The static web UI at ``/`` of the web transport, served with security
headers: a Content-Security-Policy that allows only our own scripts and the
WAMP WebSocket endpoint, ``X-Content-Type-Options: nosniff``, a strict
``Referrer-Policy`` and no framing. Crossbar's ``static`` service cannot add
headers (and answers with permissive CORS headers), so the node mounts this
resource instead::

    "/": {"type": "resource", "classname": "components.node.assembly.WebUIResource",
          "extra": {"WEB_DIR": "${WEB_DIR}", "PUBLIC_URL": "${PUBLIC_URL}"}}

The other paths of the transport (``ws``, ``auth``, ``health``) are children
of this resource, so the headers reach their responses too.

Only the UI's own files are served: pages, scripts, styles and images of
``web/``, and of ``web/node_modules`` the one autobahn file the pages load;
``package.json``, the lock file, the rest of ``node_modules``, dot files and
directories answer 404 (in the hub's one error body, ``reactive.error.not_found``),
and so does a path no file system could hold (a NUL byte, bytes that are not
UTF-8), never 500. Every answer says
``Server: reactive-hub``, never a version.

Behind a TLS-terminating proxy the request looks like plain HTTP; with
``PUBLIC_URL`` (``https://hub.example.org``) the CSP allows the WebSocket of
that origin only (``wss://`` for https) and sends ``Strict-Transport-Security``.
"""

import os
import re
from urllib.parse import urlsplit

import twisted.web.server
from twisted.web.static import File

from components.core import core_settings
from components.core.httpjson import NotFound
from components.core.settings import SettingsError
from components.node import node_settings


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIRECTORY = os.path.join(REPO, "web")
WEBSOCKET_PATH = "/ws"

SERVER = b"reactive-hub"
HSTS = b"max-age=31536000"
# what a page may load: the UI's own file types, outside node_modules ...
UI_SUFFIXES = (".html", ".js", ".css", ".svg", ".png", ".ico")
# ... and of node_modules only what web/js/autobahn.js imports
VENDORED = ("node_modules/autobahn-browser/autobahn.min.js",)

_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")

STATIC_HEADERS = {
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
    b"X-Frame-Options": b"DENY",
    b"Cross-Origin-Opener-Policy": b"same-origin",
    b"Cross-Origin-Resource-Policy": b"same-origin",
    b"Permissions-Policy": b"camera=(), microphone=(), geolocation=(), payment=()",
}


def websocket_sources(host, secure, path=WEBSOCKET_PATH):
    """
    The ``connect-src`` entries for the WAMP endpoint on ``host`` (the
    request's Host header); none when the header is not a plain host[:port],
    so a forged header can never inject policy text.
    """
    if not host or not _HOST.match(host):
        return []
    sources = ["wss://{}{}".format(host, path)]
    if not secure:
        sources.append("ws://{}{}".format(host, path))
    return sources


def content_security_policy(host, secure, path=WEBSOCKET_PATH):
    """Only our own scripts, styles, images and workers; network only to ourselves and the WebSocket endpoint."""
    connect = " ".join(["'self'"] + websocket_sources(host, secure, path))
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "worker-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src " + connect,
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def public_origin(url):
    """
    ``(host, secure)`` of a ``PUBLIC_URL`` such as ``https://hub.example.org``
    (secure for https), or None when ``url`` is empty; SettingsError when its
    host is not a plain host[:port].
    """
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if not _HOST.match(host):
        raise SettingsError("setting 'PUBLIC_URL' must be an origin like https://hub.example.org, got {!r}".format(
            url))
    return host, parts.scheme == "https"


def apply_security_headers(request, path=WEBSOCKET_PATH, public=None):
    """
    Set the security headers on ``request``'s response; ``public`` is
    :func:`public_origin` of PUBLIC_URL, else the request's Host and scheme count.
    """
    if public is None:
        host = request.getHeader(b"host") or b""
        if isinstance(host, bytes):
            host = host.decode("latin-1")
        secure = request.isSecure()
    else:
        host, secure = public
        if secure:
            request.setHeader(b"Strict-Transport-Security", HSTS)
    request.setHeader(b"Content-Security-Policy", content_security_policy(host, secure, path).encode("ascii"))
    for name, value in STATIC_HEADERS.items():
        request.setHeader(name, value)
    request.setHeader(b"Server", SERVER)


def hide_server_version():
    """
    Make every HTTP answer of this worker process say ``Server: reactive-hub``
    (Crossbar sets Twisted's default to ``Crossbar/<version>`` when a worker starts).
    """
    twisted.web.server.version = SERVER


def servable(relative):
    """Whether the file at ``relative`` (``/``-separated, under the UI directory) is part of the UI."""
    parts = relative.split("/")
    if any(not part or part.startswith(".") for part in parts):
        return False
    if relative in VENDORED:
        return True
    return parts[0] != "node_modules" and os.path.splitext(relative)[1].lower() in UI_SUFFIXES


def _plain_segment(segment):
    """Whether a path segment could name one of our files: UTF-8, no NUL byte, no dot file."""
    try:
        text = segment.decode("utf-8") if isinstance(segment, bytes) else segment
    except UnicodeDecodeError:
        return False
    return "\x00" not in text and not text.startswith(".")


class SecureStatic(File):
    """
    The UI files under ``path`` (see :func:`servable`), without directory
    listings, every answer carrying the security headers (``public``: see
    :func:`apply_security_headers`); what is not served is a 404 in the
    hub's one error body.
    """

    childNotFound = NotFound()

    def __init__(self, path, *args, public=None, top=None, **kwargs):
        File.__init__(self, path, *args, **kwargs)
        self.public = public
        self.top = top or self.path

    def createSimilarFile(self, path):
        similar = File.createSimilarFile(self, path)
        similar.public, similar.top = self.public, self.top
        return similar

    def getChildWithDefault(self, path, request):
        apply_security_headers(request, public=self.public)
        if path not in self.children and not _plain_segment(path):
            return self.childNotFound
        child = File.getChildWithDefault(self, path, request)
        if isinstance(child, SecureStatic) and not child.isdir():
            if not servable(os.path.relpath(child.path, self.top).replace(os.sep, "/")):
                return self.childNotFound
        return child

    def render(self, request):
        apply_security_headers(request, public=self.public)
        if self.isdir():
            return self.directoryListing().render(request)
        request.setHeader(b"Cache-Control", b"no-cache")
        return File.render(self, request)

    def directoryListing(self):
        return self.childNotFound


def ui_directory(configured, node_directory):
    """
    The UI directory: ``configured`` (absolute, or relative to the node
    directory) when set; else ``web/`` beside the node directory (the
    repository and image layout) when it holds an index.html; else the
    ``web/`` beside this package.
    """
    if configured:
        return os.path.normpath(os.path.join(node_directory, configured))
    beside = os.path.normpath(os.path.join(node_directory, "..", "web"))
    if os.path.isfile(os.path.join(beside, "index.html")):
        return beside
    return DEFAULT_DIRECTORY


def WebUIResource(settings):
    """The UI resource; ``WEB_DIR`` overrides the UI directory, ``PUBLIC_URL`` names the public origin."""
    public = public_origin(settings.get(core_settings.PUBLIC_URL))
    return SecureStatic(ui_directory(settings.get(node_settings.WEB_DIR), settings.node_directory), public=public)
