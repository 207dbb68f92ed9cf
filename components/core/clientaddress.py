"""
The address of the client behind an HTTP request, for everything the hub
keys by client (the login rate limit, log lines).

Behind a proxy every request comes from the proxy's address. Only when the
TCP peer is one of ``TRUSTED_PROXIES`` (addresses or CIDRs) is the one
header those proxies write read, ``FORWARDED_HEADER``: ``X-Forwarded-For``
(the default) or RFC 7239 ``Forwarded`` (``for=``), never the other one (a
proxy passes on whatever the client sent in a header it does not write, so
reading it would let the client pick its address). The header's lines are
joined in order, as a proxy appending to the list does, and walked from the
right (the hop nearest the hub) past every trusted proxy: the first address
that is not trusted is the client. Anything to its left was written by the
client and is never believed. Without trusted proxies (the default) the
headers are ignored, so a client cannot pick its own address by sending them.

A hop that is not an address (``unknown``, an obfuscated ``_name``, garbage)
ends the walk: the nearest trusted hop that reported it is used instead.

:func:`rate_key` turns a client address into the key a limit counts by: the
address itself for IPv4, the /64 network for IPv6 (one subscriber's usual
allocation, so a client cannot walk its own prefix to get fresh limits).
"""

import ipaddress
import re

_PORT_V4 = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):\d+$")
_BRACKETED = re.compile(r"^\[([^\]]+)\](?::\d+)?$")
_FOR = re.compile(r"(?:^|;)\s*for\s*=\s*(\"[^\"]*\"|[^;,\s]*)", re.IGNORECASE)
MAX_HOPS = 32   # hops looked at from the right; a longer chain is cut (the client wrote the rest)
X_FORWARDED_FOR = "x-forwarded-for"
FORWARDED = "forwarded"
HEADERS = (X_FORWARDED_FOR, FORWARDED)   # what FORWARDED_HEADER may name: the one header the proxies write


def parse_networks(text, name="TRUSTED_PROXIES"):
    """The networks in ``text`` (addresses or CIDRs, comma or space separated); ValueError names ``name``."""
    networks = []
    for item in re.split(r"[\s,]+", (text or "").strip()):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError("{} holds {!r}, which is neither an IP address nor a CIDR".format(
                name, item[:64]))
    return tuple(networks)


def parse_address(text):
    """One hop as proxies write it (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``): an ``ip_address``, or None."""
    text = (text or "").strip().strip('"').strip()
    match = _BRACKETED.match(text) or _PORT_V4.match(text)
    if match:
        text = match.group(1)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address, networks):
    return any(address.version == network.version and address in network for network in networks)


def parse_header(text, name="FORWARDED_HEADER"):
    """The forwarding header ``text`` names (x-forwarded-for, the default, or forwarded); ValueError names ``name``."""
    header = (text or X_FORWARDED_FOR).strip().lower()
    if header not in HEADERS:
        raise ValueError("{} must be {}, got {!r}".format(name, " or ".join(HEADERS), (text or "")[:64]))
    return header


def _header_hops(request, header):
    """The chain of hops ``header`` states, oldest first: all its lines joined in order, as appending does."""
    values = request.requestHeaders.getRawHeaders(header.encode("ascii")) or []
    text = ",".join(value.decode("latin-1") for value in values)
    if header == FORWARDED:
        return [match.group(1) for element in text.split(",") for match in [_FOR.search(element)] if match]
    return text.split(",")


def peer_address(request):
    """The TCP peer's address as a string (a Unix socket peer gives ``"unix"``)."""
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    if host is None:
        return "unix"
    address = parse_address(host)
    return str(address) if address is not None else host


def client_address(request, trusted=(), header=X_FORWARDED_FOR):
    """
    The client's address (a string) for ``request``: the TCP peer, or, when
    that is a trusted proxy, the right-most address in ``header`` (the one the
    proxies write, :data:`HEADERS`) that is not one; other headers are ignored.
    """
    peer = peer_address(request)
    current = parse_address(peer)
    if current is None or not trusted or not _trusted(current, trusted):
        return peer
    for hop in reversed(_header_hops(request, header)[-MAX_HOPS:]):
        address = parse_address(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, trusted):
            break
    return str(current)


def rate_key(address):
    """The key a per-client limit counts ``address`` under: IPv4 as is, IPv6 by its /64."""
    parsed = parse_address(address)
    if parsed is None or parsed.version == 4:
        return address
    return str(ipaddress.ip_network((parsed, 64), strict=False))
