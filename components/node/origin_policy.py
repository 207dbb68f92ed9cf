"""
Which browser origins may open the hub's WebSocket: the page's own origin
(the handshake's ``Host``, or ``PUBLIC_URL``) and the ``ALLOWED_ORIGINS``
allowlist; nothing else, never ``null`` (a file or sandboxed page).
A handshake without ``Origin`` (a server, a device, another node) is not
a browser's and is not checked here. Origins compare as
``(scheme, host, port)`` with the scheme's default port filled in.
"""

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_triple(origin):
    """``(scheme, host, port)`` of an origin such as ``http://127.0.0.1:8000``; ValueError otherwise."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query \
            or parts.fragment or parts.username is not None:
        raise ValueError("{!r} is not an origin such as http://127.0.0.1:8000 (scheme and host, "
                         "no path)".format(origin[:80]))
    return scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[scheme]


def same_host(origin, host_header):
    """True when ``origin`` (a triple) names the host and port of an HTTP ``Host`` header."""
    scheme, host, port = origin
    try:
        parts = urlsplit("//" + host_header.strip())
        return parts.hostname == host and (parts.port or DEFAULT_PORTS[scheme]) == port
    except ValueError:
        return False


class OriginPolicy:
    """The origins allowed besides the page's own: ``allowed`` triples, ``public`` (PUBLIC_URL's) or None."""

    def __init__(self, allowed, public=None):
        self.allowed = frozenset(allowed)
        if public is not None:
            self.allowed |= {public}

    def allows(self, origin, host_header):
        """True when a browser page of ``origin`` (text) may connect to a handshake with ``host_header``."""
        try:
            triple = origin_triple(origin)
        except ValueError:
            return False
        return triple in self.allowed or (host_header is not None and same_host(triple, host_header))
