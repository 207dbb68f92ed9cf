"""
The dynamic WAMP-ticket authenticator: the ticket is a JWT. It runs under its
own role (allowed to register only its URI and to end sessions), and ends
every session when its token's ``exp`` passes (sessions that came through a
proxy worker are found by ``wamp.session.on_join``, which carries the
router-side session id and the ``exp`` the authenticator put in authextra).
If it cannot register, the node stops: a hub where every login fails must
not look healthy.
"""

import os

from autobahn.wamp.types import SubscribeOptions

from components.auth import AUTHENTICATE, tokens
from components.core import errors
from components.core.component import HubComponent


class TicketAuthenticator:
    """Turns a ticket into a WAMP principal, or raises :class:`tokens.TokenError` (the refusal's URI and reason)."""

    def __init__(self, verifier):
        self.verifier = verifier

    def authenticate(self, realm, authid, details):
        claims = self.verifier.verify((details or {}).get("ticket"))
        return {
            "realm": realm,
            "authid": claims["sub"],
            "role": claims["role"],
            "extra": {"exp": int(claims["exp"]), "role": claims["role"]},
        }


class Authenticator(HubComponent):
    """Registers ``reactive.auth.authenticate`` and reaps sessions whose token expired."""

    def start(self):
        keys, issuer, audience, _ttl = tokens.from_settings(self.settings)
        leeway = self.settings.int("JWT_LEEWAY", tokens.DEFAULT_LEEWAY, minimum=0, maximum=3600)
        self.verifier = tokens.TokenVerifier(keys, issuer, audience, leeway=leeway, clock=self.reactor.seconds)
        self.ticket = TicketAuthenticator(self.verifier)
        self._expiries = {}
        d = self.register(self.authenticate, AUTHENTICATE)
        d.addCallback(lambda _: self.subscribe(self._on_leave, "wamp.session.on_leave",
                                               options=SubscribeOptions(match="exact")))
        d.addCallback(lambda _: self.subscribe(self._on_join, "wamp.session.on_join",
                                               options=SubscribeOptions(match="exact")))
        d.addCallback(lambda _: self.log.info("authenticator ready ({algorithm}, issuer {issuer})",
                                              algorithm=keys.algorithm, issuer=issuer))
        return d

    def on_start_failed(self):
        self.log.critical("cannot serve logins: stopping the node")
        self.reactor.callLater(0.2, _stop_process, self.reactor)

    def authenticate(self, realm, authid, details):
        principal = self.ticket.authenticate(realm, authid, details)
        session_id = (details or {}).get("session")
        if session_id is not None:
            self._schedule_expiry(session_id, principal["extra"]["exp"])
        self.log.info("authenticated {authid} as {role}", authid=principal["authid"], role=principal["role"])
        return principal

    def _schedule_expiry(self, session_id, exp):
        delay = max(0.0, exp - self.reactor.seconds())
        previous = self._expiries.pop(session_id, None)
        if previous is not None and previous.active():
            previous.cancel()
        self._expiries[session_id] = self.reactor.callLater(delay, self._expire, session_id)

    def _expire(self, session_id):
        self._expiries.pop(session_id, None)
        d = self.call("wamp.session.kill", session_id, reason=errors.AUTH_TOKEN_EXPIRED_SESSION,
                      message="token expired")
        d.addCallback(lambda _: self.log.info("ended session {session} (token expired)", session=session_id))
        d.addErrback(lambda failure: None)  # already gone
        return d

    def _on_join(self, session_details=None, *args, **kwargs):
        # Sessions that reach the router through a proxy worker were authenticated under the proxy's own
        # session id; the router-side id and the token's exp (our authextra) arrive here.
        details = session_details if isinstance(session_details, dict) else {}
        exp = (details.get("authextra") or {}).get("exp")
        if details.get("session") is not None and isinstance(exp, int) and not isinstance(exp, bool):
            self._schedule_expiry(details["session"], exp)

    def _on_leave(self, session_id, *args, **kwargs):
        call = self._expiries.pop(session_id, None)
        if call is not None and call.active():
            call.cancel()

    def onLeave(self, details):
        for call in self._expiries.values():
            if call.active():
                call.cancel()
        self._expiries.clear()
        HubComponent.onLeave(self, details)


def _stop_process(reactor):
    try:
        reactor.stop()
    except Exception:
        os._exit(1)

