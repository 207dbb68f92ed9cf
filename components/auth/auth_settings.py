"""
Authentication's settings: the user table, JWT keys and claims, login limits,
login sessions, revocation, sessions per user and router-link peers.
"""

import re

from components.core.settings import (
    CHOICE, CLI, CLIENT, DEV, DJANGO, DURATION, FILE, FLOAT, INT, MASTER, NODES, TEXT, Setting)

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
TABLE_NAME = re.compile(r"^(?:{0}\.)?{0}\Z".format(_IDENTIFIER))
_HEX_KEY = re.compile(r"^[0-9a-f]{64}\Z")
MIN_SECRET_BYTES = 32
_EVERY_PROCESS = (DEV, MASTER, CLIENT, CLI)


def _table_name(text):
    if not TABLE_NAME.match(text.strip()):
        raise ValueError("must be a plain SQL identifier such as auth_user or accounts_user "
                         "(optionally schema.table), got {!r}".format(text[:80]))
    return text.strip()


def parse_peer_keys(text):
    """The set of hex public keys in ``text``; ValueError for anything that is not a 32-byte hex key."""
    keys = set()
    for item in re.split(r"[\s,]+", (text or "").strip().lower()):
        if item and not _HEX_KEY.match(item):
            raise ValueError("RLINK_PEER_KEYS holds {!r}, not a 64-digit hex Ed25519 public key".format(item[:16]))
        if item:
            keys.add(item)
    return keys


AUTH_USER_TABLE = Setting(
    "AUTH_USER_TABLE", TEXT, "the user table on the master and in every client database: `auth_user` or a custom "
    "user model's table (a plain SQL identifier, optionally `schema.table` on PostgreSQL)", default="auth_user",
    parse=_table_name, roles=_EVERY_PROCESS)
AUTH_USER_TABLE_OWNER = Setting(
    "AUTH_USER_TABLE_OWNER", CHOICE, "who creates the master's user table: `hub` (created when missing) or `django` "
    "(never created by the hub, which waits for Django's `migrate`)", default="hub", choices=("hub", "django"),
    roles=_EVERY_PROCESS)
JWT_SECRET = Setting(
    "JWT_SECRET", TEXT, "HS256 secret (at least 32 bytes)", secret=True, min_length=MIN_SECRET_BYTES,
    roles=_EVERY_PROCESS, shown="generated on first start into `<node dir>/secrets/jwt_secret` (mode 0600)")
JWT_PUBLIC_KEY_FILE = Setting(
    "JWT_PUBLIC_KEY_FILE", FILE, "PEM public key for RS256 / ES256 (P-256) / EdDSA; the algorithm follows the key",
    roles=_EVERY_PROCESS, shown="unset: HS256 with `JWT_SECRET`")
JWT_PRIVATE_KEY_FILE = Setting(
    "JWT_PRIVATE_KEY_FILE", FILE, "PEM private key matching `JWT_PUBLIC_KEY_FILE`, on the nodes that sign tokens",
    secret=True, roles=_EVERY_PROCESS)
JWT_ISSUER = Setting("JWT_ISSUER", TEXT, "the `iss` claim tokens carry and must carry", default="reactive",
                     roles=_EVERY_PROCESS)
JWT_AUDIENCE = Setting("JWT_AUDIENCE", TEXT, "the `aud` claim tokens carry and must carry", default="reactive",
                       roles=_EVERY_PROCESS)
JWT_TTL = Setting("JWT_TTL", INT, "seconds an access token lives", default=900, minimum=10, roles=_EVERY_PROCESS)
JWT_LEEWAY = Setting("JWT_LEEWAY", INT, "seconds of clock difference accepted on `exp`, `nbf` and `iat`", default=5,
                     minimum=0, maximum=3600)
LOGIN_RATE = Setting(
    "LOGIN_RATE", FLOAT, "login attempts per second per client address (the TCP peer, or behind `TRUSTED_PROXIES` "
    "the forwarded client; IPv6 per /64)", default=0.2, minimum=0.001)
LOGIN_BURST = Setting("LOGIN_BURST", INT, "login attempts one client address may make at once", default=10,
                      minimum=1)
LOGIN_ACCOUNT_DELAY_MAX = Setting(
    "LOGIN_ACCOUNT_DELAY_MAX", DURATION, "most a login on an account with recent failures waits before its password "
    "is checked (0.25 s doubling per failure beyond 3, never a lockout; 0: off)", default=2.0, minimum=0,
    maximum=30)
LOGIN_HASH_PARALLEL = Setting(
    "LOGIN_HASH_PARALLEL", INT, "password checks `/auth/login` runs at once on a node", default=2, minimum=1)
LOGIN_HASH_QUEUE = Setting(
    "LOGIN_HASH_QUEUE", INT, "password checks that may wait for those (beyond: 503 + `Retry-After`)", default=16,
    minimum=0)
SESSION_LIFETIME = Setting(
    "SESSION_LIFETIME", INT, "seconds a login session (the `hub_session` cookie) lasts", default=7 * 24 * 3600,
    minimum=60)
REVOCATION_DATABASE = Setting(
    "REVOCATION_DATABASE", CHOICE, "where the authenticator reads the revocation facts: `master`, `client` (the "
    "user sync's copy) or `off` (tokens live until `exp`; logged as a warning)", default="master",
    choices=("master", "client", "off"), shown="`master` (dev config, `master.json`), `client` (`client.json`)")
REVOCATION_POLL = Setting(
    "REVOCATION_POLL", DURATION, "seconds between each authenticator's looks for revoked sessions", default=0.5,
    minimum=0.05, maximum=10)
REVOCATION_RECHECK = Setting(
    "REVOCATION_RECHECK", DURATION, "seconds between each authenticator's full checks of its sessions against the "
    "facts", default=10.0, minimum=1)
SESSION_MAX_PER_AUTHID = Setting(
    "SESSION_MAX_PER_AUTHID", INT, "open WAMP sessions one user, admin or device may hold per router worker "
    "(0: no cap)", default=32, minimum=0)
RLINK_PEER_KEYS = Setting(
    "RLINK_PEER_KEYS", TEXT, "hex Ed25519 node keys allowed to open router-to-router links into this node",
    default=frozenset(), parse=parse_peer_keys, roles=(MASTER, CLIENT),
    shown="unset: the node's own key (nodes sharing one key)")

SETTINGS = (AUTH_USER_TABLE, AUTH_USER_TABLE_OWNER, JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_PRIVATE_KEY_FILE,
            JWT_ISSUER, JWT_AUDIENCE, JWT_TTL, JWT_LEEWAY, LOGIN_RATE, LOGIN_BURST, LOGIN_ACCOUNT_DELAY_MAX,
            LOGIN_HASH_PARALLEL, LOGIN_HASH_QUEUE, SESSION_LIFETIME, REVOCATION_DATABASE, REVOCATION_POLL,
            REVOCATION_RECHECK, SESSION_MAX_PER_AUTHID, RLINK_PEER_KEYS)
