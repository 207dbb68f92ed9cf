"""
Asking the router a component is embedded in whether a caller may
subscribe a topic: the router's own ``authorize`` (the static role
permissions or dynamic authorizer its SUBSCRIBE uses), so a component's
answer about a topic never grants more than subscribing it would.
"""

from twisted.internet import defer


class _Asker:
    """The caller as the router's authorizer reads a session: realm, role, id, authid."""

    def __init__(self, realm, details):
        self._realm = realm
        self._authrole = details.caller_authrole
        self._authid = details.caller_authid
        self._session_id = details.caller


def router_authorizer(session):
    """
    ``may_subscribe(call_details, topic) -> Deferred[bool]`` by the router
    ``session`` is embedded in (its ``authorize``, the rules its SUBSCRIBE
    uses); a component outside a router worker cannot answer and refuses to start.
    """
    router = getattr(getattr(session, "_transport", None), "_router", None)
    if router is None:
        raise RuntimeError("a component asking the router must run embedded in a router worker (type class)")

    def may_subscribe(details, topic):
        asker = _Asker(session.config.realm, details)
        asked = defer.maybeDeferred(router.authorize, asker, topic, "subscribe", {})
        return asked.addCallback(lambda allowed: bool(allowed.get("allow")) if isinstance(allowed, dict)
                                 else bool(allowed))
    return may_subscribe
