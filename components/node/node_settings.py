"""
The node's own settings: the web UI's directory, the worker patches (which
are on, and the bounds they enforce on the wire), and request bodies.
"""

from components.core.settings import BOOL, CLIENT, DEV, DURATION, FLOAT, INT, LIST, MASTER, TEXT, Setting
from components.core.clientaddress import parse_networks
from components.node.origin_policy import origin_triple

_NODES = (DEV, MASTER, CLIENT)
_NONE = "none"


def _exempt_networks(text):
    """The networks ``WAMP_PENDING_EXEMPT`` names (``none``: no network)."""
    return () if text.strip().lower() == _NONE else parse_networks(text, "WAMP_PENDING_EXEMPT")


def _ipv4(text):
    """An IPv4 address (the endpoints are TCP version 4); ValueError otherwise."""
    import ipaddress
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        raise ValueError("must be an IPv4 address such as 127.0.0.1 (loopback only) or 0.0.0.0 (every "
                         "interface), got {!r}".format(text))


HUB_INTERFACE = Setting(
    "HUB_INTERFACE", TEXT, "the address the dev node's web transport listens on (`0.0.0.0`: every interface, as "
    "in the Docker image); the production configs name no interface and listen on every one",
    default="127.0.0.1", parse=_ipv4, roles=(DEV,))
WEB_DIR = Setting("WEB_DIR", TEXT, "directory of the static web UI served at `/` (absolute, or relative to the node "
                  "directory)", roles=_NODES, shown="`web/` beside the node directory")
HUB_PATCHES_OFF = Setting("HUB_PATCHES_OFF", LIST, "comma-separated patch names left out on purpose in every worker "
                          "(a security patch with a warning line; see docs/patches.md)", roles=_NODES, shown="none")
HUB_FAST_SEND = Setting("HUB_FAST_SEND", BOOL, "`off`: the same as `HUB_PATCHES_OFF=fast_send`", default=True,
                        roles=_NODES)
SESSION_CUTOFF_GRACE = Setting(
    "SESSION_CUTOFF_GRACE", DURATION, "seconds a client whose session the hub ended has to answer the GOODBYE before "
    "the router closes its connection", default=2.0, minimum=0.1, maximum=60, roles=_NODES)
WAMP_MAX_DEPTH = Setting("WAMP_MAX_DEPTH", INT, "most levels a WAMP message may nest (arrays, maps), checked before "
                         "decoding; deeper closes the connection", default=64, minimum=2, maximum=400, roles=_NODES)
WAMP_MAX_CONTAINERS = Setting("WAMP_MAX_CONTAINERS", INT, "most arrays and maps one WAMP message may hold, counted "
                              "before decoding (0: no bound)", default=100000, minimum=0, roles=_NODES)
WAMP_PREAUTH_MAX_BYTES = Setting("WAMP_PREAUTH_MAX_BYTES", INT, "largest WAMP message accepted before the session "
                                 "is welcomed (0: no bound)", default=16384, minimum=0, roles=_NODES)
WAMP_AUTH_DEADLINE = Setting(
    "WAMP_AUTH_DEADLINE", DURATION, "seconds a WebSocket or RawSocket connection has to complete WAMP "
    "authentication (the hub's own answer time not counted, up to 6 deadlines)", default=10.0, minimum=0.1,
    maximum=3600, roles=_NODES)
WAMP_PENDING_PER_ADDRESS = Setting(
    "WAMP_PENDING_PER_ADDRESS", INT, "connections one client address (IPv6: its /64) may hold that have not "
    "authenticated yet; more are answered 429 (0: no cap)", default=32, minimum=0, roles=_NODES)
WAMP_PENDING_EXEMPT = Setting(
    "WAMP_PENDING_EXEMPT", TEXT, "networks whose peers `WAMP_PENDING_PER_ADDRESS` does not cap (comma-separated; "
    "`none`: cap every address)", default="127.0.0.0/8,::1/128", parse=_exempt_networks, roles=_NODES)
SESSION_MAX_SUBSCRIPTIONS = Setting("SESSION_MAX_SUBSCRIPTIONS", INT, "live subscriptions one WAMP session may hold",
                                    default=2000, minimum=1, roles=_NODES)
SESSION_MAX_REGISTRATIONS = Setting("SESSION_MAX_REGISTRATIONS", INT, "live registrations one WAMP session may hold",
                                    default=500, minimum=1, roles=_NODES)
SESSION_PUBLISH_RATE = Setting("SESSION_PUBLISH_RATE", FLOAT, "publications per second one client WAMP session may "
                               "send after its burst (not the hub's own sessions: roles `trusted`, `rlink`, `backend`, "
                               "router components); more are refused with `reactive.error.rate_limited` or dropped",
                               default=100.0, minimum=0.001, roles=_NODES)
SESSION_PUBLISH_BURST = Setting("SESSION_PUBLISH_BURST", INT, "publications one client WAMP session may send at once "
                                "before `SESSION_PUBLISH_RATE` applies", default=200, minimum=1, roles=_NODES)
SESSION_MAX_URI_LENGTH = Setting("SESSION_MAX_URI_LENGTH", INT, "most characters of a URI in SUBSCRIBE, PUBLISH, "
                                 "REGISTER and CALL", default=512, minimum=32, roles=_NODES)
SESSION_SEND_QUEUE_LIMIT = Setting("SESSION_SEND_QUEUE_LIMIT", INT, "bytes a WebSocket connection may leave unsent "
                                   "before it is closed", default=16 * 1024 * 1024, minimum=64 * 1024, roles=_NODES)
AUTHORIZATION_CACHE_SIZE = Setting("AUTHORIZATION_CACHE_SIZE", INT, "entries of the router's authorization cache "
                                   "(a full cache is emptied and refilled)", default=10000, minimum=100,
                                   roles=_NODES)
HTTP_BODY_LIMIT = Setting("HTTP_BODY_LIMIT", INT, "most bytes of a request body on every path but `/auth/*` and "
                          "`/publish`", default=1024, minimum=0, roles=_NODES)
HTTP_BODY_TIMEOUT = Setting("HTTP_BODY_TIMEOUT", DURATION, "seconds after its headers by which a body must be "
                            "complete, else 408", default=10.0, minimum=0.1, roles=_NODES)
HTTP_HEADER_TIMEOUT = Setting("HTTP_HEADER_TIMEOUT", DURATION, "seconds a connection may take to send a request's "
                              "line and headers, else 408", default=15.0, minimum=0.1, roles=_NODES)


def _websocket_origins(origins):
    """``ALLOWED_ORIGINS`` as a frozenset of ``(scheme, host, port)``; ValueError for what is not an origin."""
    return frozenset(origin_triple(origin) for origin in origins)


ALLOWED_ORIGINS = Setting(
    "ALLOWED_ORIGINS", LIST, "origins (`http://127.0.0.1:8000`, comma-separated) whose pages may open the WebSocket "
    "`/ws` besides the hub's own (a Django `runserver` page in development); a browser's `Origin` header is checked "
    "by the router in the handshake", default=frozenset(), parse=_websocket_origins, roles=_NODES,
    shown="unset: same origin only (the request's `Host`, or `PUBLIC_URL`)")


SETTINGS = (HUB_INTERFACE, WEB_DIR, HUB_PATCHES_OFF, HUB_FAST_SEND, SESSION_CUTOFF_GRACE, WAMP_MAX_DEPTH, WAMP_MAX_CONTAINERS,
            WAMP_PREAUTH_MAX_BYTES, WAMP_AUTH_DEADLINE, WAMP_PENDING_PER_ADDRESS, WAMP_PENDING_EXEMPT,
            SESSION_MAX_SUBSCRIPTIONS, SESSION_MAX_REGISTRATIONS, SESSION_PUBLISH_RATE,
            SESSION_PUBLISH_BURST, SESSION_MAX_URI_LENGTH, SESSION_SEND_QUEUE_LIMIT,
            AUTHORIZATION_CACHE_SIZE, HTTP_BODY_LIMIT, HTTP_BODY_TIMEOUT, HTTP_HEADER_TIMEOUT, ALLOWED_ORIGINS)

