"""
The settings every layer reads: the node's port and public origin, and the
proxies whose headers name a client's address.
"""

from components.core.clientaddress import parse_header, parse_networks
from components.core.settings import CLI, CLIENT, DEV, DEVICE, INT, MASTER, NODES, TEXT, URL, Setting

PORT = Setting(
    "PORT", INT, "the dev node's web port (`config.json`, its `listen_interface` patch; unset: the config's 8080) "
    "and the port the node's own clients use (the demo device, `reactive-hub device` simulator, the Docker health "
    "check); `master.json` and `client.json` listen on their literal port, set `PORT` to match it there",
    default=8080, minimum=1, maximum=65535, roles=(DEV, MASTER, CLIENT, CLI, DEVICE))
PUBLIC_URL = Setting(
    "PUBLIC_URL", URL, "the origin browsers use when TLS ends at a proxy (`https://hub.example.org`): Secure "
    "cookies, `wss://` only in the CSP, HSTS; the device bridge counts its requests as TLS",
    shown="unset: the request's own `Host` and scheme")
TRUSTED_PROXIES = Setting(
    "TRUSTED_PROXIES", TEXT, "addresses or CIDRs of the proxies in front of the hub whose `FORWARDED_HEADER` names "
    "the client (the right-most address that is not one of them)",
    default=(), parse=lambda text: parse_networks(text, "TRUSTED_PROXIES"), shown="none: the headers are ignored")
FORWARDED_HEADER = Setting(
    "FORWARDED_HEADER", TEXT, "the one header the `TRUSTED_PROXIES` write: `x-forwarded-for` or `forwarded` "
    "(RFC 7239); the other is never read", default="x-forwarded-for",
    parse=lambda text: parse_header(text, "FORWARDED_HEADER"))
HOSTNAME = Setting(
    "HOSTNAME", TEXT, "this host's name in a mesh topology (`reactive-hub topology --mesh`)", roles=(CLI,),
    shown="the system's host name")

def _environment_name(text):
    """``development`` or ``production`` (any case); ValueError for anything else."""
    word = text.strip().lower()
    if word not in ("development", "production"):
        raise ValueError("must be development or production, got {!r}".format(text))
    return word


HUB_ENV = Setting(
    "HUB_ENV", TEXT, "`production`: the node refuses to start on generated development secrets (the HS256 "
    "`JWT_SECRET`, `E2E_KEK`, the user-sync signing key) and names what to set; `development`: it generates them "
    "once in the node directory", parse=_environment_name, roles=NODES,
    shown="`production` with master.json and client.json (their workers' `HUB_CONFIG_ENV`) and for commands on a "
    "node directory holding master.json or client.json but no config.json, else `development`")

SESSION_MAX_CALLS_IN_FLIGHT = Setting(
    "SESSION_MAX_CALLS_IN_FLIGHT", INT, "the calls one session may have in flight at once on the database-backed "
    "procedures (`counter.get`, `iot.history`, `iot.sources`, `users.me`); one more is answered "
    "`reactive.error.rate_limited` at once, so one session's burst cannot hold the database pool from other users",
    default=8, minimum=1, maximum=10000)

SETTINGS = (PORT, PUBLIC_URL, TRUSTED_PROXIES, FORWARDED_HEADER, HOSTNAME, HUB_ENV, SESSION_MAX_CALLS_IN_FLIGHT)
