"""
The static web UI at ``/`` of the web transport, served with security
headers: a Content-Security-Policy that allows only our own scripts and the
WAMP WebSocket endpoint, ``X-Content-Type-Options: nosniff``, a strict
``Referrer-Policy`` and no framing. Crossbar's ``static`` service cannot add
headers (and answers with permissive CORS headers), so the node mounts this
resource instead::

    "/": {"type": "resource", "classname": "components.node.assembly.WebUIResource",
          "extra": {"WEB_DIR": "${WEB_DIR}"}}

The other paths of the transport (``ws``, ``auth``, ``health``) are children
of this resource, so the headers reach their responses too.
"""

import os
import re

from twisted.web.resource import NoResource
from twisted.web.static import File


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DIRECTORY = os.path.join(REPO, "web")
WEBSOCKET_PATH = "/ws"

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


def apply_security_headers(request, path=WEBSOCKET_PATH):
    """Set the security headers on ``request``'s response."""
    host = request.getHeader(b"host") or b""
    if isinstance(host, bytes):
        host = host.decode("latin-1")
    request.setHeader(b"Content-Security-Policy",
                      content_security_policy(host, request.isSecure(), path).encode("ascii"))
    for name, value in STATIC_HEADERS.items():
        request.setHeader(name, value)


class SecureStatic(File):
    """A static file tree without directory listings whose every answer carries the security headers."""

    def getChildWithDefault(self, path, request):
        apply_security_headers(request)
        return File.getChildWithDefault(self, path, request)

    def render(self, request):
        apply_security_headers(request)
        if not self.isdir():
            request.setHeader(b"Cache-Control", b"no-cache")
        return File.render(self, request)

    def directoryListing(self):
        return NoResource("no such page")


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
    """The UI resource; ``WEB_DIR`` overrides the UI directory."""
    return SecureStatic(ui_directory(settings.text("WEB_DIR"), settings.node_directory))
