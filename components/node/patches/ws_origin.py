"""
The router refuses a browser's WebSocket handshake from an origin other
than the page's own and those ``ALLOWED_ORIGINS`` names (a Django
``runserver`` page on another port in development).

Crossbar's WebSocket options ``allowed_origins`` / ``allow_null_origin``
take a fixed list of wildcard patterns (default ``*``: every origin, and
``null`` too) matched against the ``Origin`` alone: "the page's own
origin" depends on the request's ``Host`` and cannot be written there, and
a config value cannot come from the environment. ``install()`` wraps
autobahn's ``WebSocketServerProtocol._connectionMade``: after autobahn has
copied the factory's options, the connection's origin patterns become one
matcher asking :class:`components.node.origin_policy.OriginPolicy` (own
``Host``, ``PUBLIC_URL``, ``ALLOWED_ORIGINS``) and the ``null`` origin is
refused. autobahn's handshake then answers a refused origin with 403.
A handshake without ``Origin`` (servers, devices, router links) is not a
browser's and passes, as before. It is a security patch: without it any
web page a user visits could open a session with the user's cookie.
"""

import functools
import os

from components.core import core_settings
from components.core.settings import Settings
from components.node import node_settings
from components.node.origin_policy import OriginPolicy, origin_triple
from components.node.patches import PatchUnavailable, names_used, unpatched

NAME = "ws_origin"
SECURITY = True
WORKERS = ("router", "proxy")
SUMMARY = ("a browser may open the WebSocket from the page's own origin (Host or PUBLIC_URL) and "
           "ALLOWED_ORIGINS only, never from `null`; Crossbar's default allowed every origin")
UPSTREAM = "docs/upstream/ws_origin.patch"
VERIFIED = {"crossbar": "26.10.1", "autobahn": "26.11.1"}

PATCHED = "_reactive_hub_origin_policy"
CHECK_NAMES = {"allowedOriginsPatterns", "_is_same_origin", "allowNullOrigin"}


class PolicyMatcher:
    """Stands where autobahn expects a compiled origin pattern: ``match`` asks the connection's policy."""

    def __init__(self, protocol, policy):
        self.protocol, self.policy = protocol, policy

    def match(self, origin):
        headers = getattr(self.protocol, "http_headers", None) or {}
        return self.policy.allows(origin, headers.get("host"))


def checking(connection_made, policy):
    """``_connectionMade`` that puts ``policy`` in place of the factory's origin patterns."""

    @functools.wraps(connection_made)
    def connection_made_checking_origin(self):
        connection_made(self)
        self.allowedOriginsPatterns = [PolicyMatcher(self, policy)]
        # the handshake reads this one from the factory, not the connection
        self.factory.allowNullOrigin = False

    setattr(connection_made_checking_origin, PATCHED, True)
    return connection_made_checking_origin


def policy_from(environ):
    """The :class:`OriginPolicy` of ``ALLOWED_ORIGINS`` and ``PUBLIC_URL`` (SettingsError when malformed)."""
    settings = Settings(environ=environ)
    public = settings.get(core_settings.PUBLIC_URL)
    allowed = settings.get(node_settings.ALLOWED_ORIGINS)
    return OriginPolicy(allowed, origin_triple(public) if public else None)


def install(cls=None, environ=None):
    """
    Wrap ``_connectionMade`` of autobahn's ``WebSocketServerProtocol`` (or
    ``cls``) with the policy of ``environ`` (default ``os.environ``); True
    when patched now.
    """
    policy = policy_from(os.environ if environ is None else environ)
    if cls is None:
        try:
            from autobahn.websocket.protocol import WebSocketServerProtocol as cls
        except ImportError as error:
            raise PatchUnavailable(str(error))
    missing = CHECK_NAMES - names_used(getattr(cls, "processHandshake", None))
    if missing:
        raise PatchUnavailable("{}.processHandshake no longer uses {}".format(
            cls.__name__, ", ".join(sorted(missing))))
    original = unpatched(cls, "_connectionMade", PATCHED)
    if original is None:
        return False
    cls._connectionMade = checking(original, policy)
    return True
