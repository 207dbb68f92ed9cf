"""
The dynamic WAMP-ticket authenticator: the ticket is a JWT. It runs under its
own role (allowed to register only its URI and to end sessions), refuses a
token the directory has revoked since it was issued (one look-up per join in
``REVOCATION_DATABASE``: ``master`` where the user table lives, ``client``
on client nodes, where the user sync copies the facts; see
:mod:`components.auth.session_revocation`), ends the sessions whose token gets
revoked while they are open, refuses a join past ``SESSION_MAX_PER_AUTHID``
open sessions of one user, admin or device (:mod:`components.auth.sessioncap`), and ends
every session when its token's ``exp`` passes (sessions that came through a
proxy worker are found by ``wamp.session.on_join``, which carries the
router-side session id and the ``exp`` the authenticator put in authextra).
If it cannot register, the node stops: a hub where every login fails must
not look healthy.
"""

import os

from autobahn.wamp.types import SubscribeOptions

from components.auth import AUTHENTICATE, AUTH_REVOKED, AUTH_TOKEN_EXPIRED_SESSION, auth_settings, credentials, tokens
from components.auth.session_revocation import JoinCheck, RevocationWatch, token_facts
from components.auth.sessioncap import SessionCap
from components.core.backoff import persist
from components.core.component import HubComponent
from components.core.errors import Unavailable
from components.db import db_settings
from components.db.database import Database
from components.db.migrations import migrate

REVOCATION_DATABASES = auth_settings.REVOCATION_DATABASE.choices


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
            "extra": dict(token_facts(claims), exp=int(claims["exp"]), role=claims["role"]),
        }


class Authenticator(HubComponent):
    """
    Registers ``reactive.auth.authenticate`` and reaps sessions whose token
    expired. Its cleanup (``onLeave``) holds whatever failed before: the
    expiry timers and the revocation watch exist from the constructor on.
    """

    watch = None
    left = False

    def __init__(self, *args, **kwargs):
        self._expiries = {}
        HubComponent.__init__(self, *args, **kwargs)

    def start(self):
        keys, issuer, audience, _ttl = tokens.from_settings(self.settings)
        leeway = self.settings.get(auth_settings.JWT_LEEWAY)
        self.verifier = tokens.TokenVerifier(keys, issuer, audience, leeway=leeway, clock=self.reactor.seconds)
        self.ticket = TicketAuthenticator(self.verifier)
        self.join_check = self.watch = None
        self.session_cap = SessionCap(self.settings.get(auth_settings.SESSION_MAX_PER_AUTHID),
                                      self.reactor.seconds)
        self.revocation_ready = self.left = False
        source = self.settings.get(auth_settings.REVOCATION_DATABASE)
        if source != "off":
            db = Database(db_settings.url_of(self.settings, source))
            self.join_check = JoinCheck(db, leeway=leeway)
            self.watch = RevocationWatch(db, self.reactor, self._end_revoked,
                                         interval=self.settings.get(auth_settings.REVOCATION_POLL),
                                         recheck=self.settings.get(auth_settings.REVOCATION_RECHECK),
                                         leeway=leeway)
            persist(self.reactor, lambda: self._prepare_revocation(db), self.log,
                    "revocation database", lambda: not self.left)
        else:
            self.log.warn("REVOCATION_DATABASE=off: revoked tokens keep joining until they expire")
        # the meta events first: every session admitted once the procedure is up is seen joining and leaving
        d = self.subscribe(self._on_leave, "wamp.session.on_leave", options=SubscribeOptions(match="exact"))
        d.addCallback(lambda _: self.subscribe(self._on_join, "wamp.session.on_join",
                                               options=SubscribeOptions(match="exact")))
        d.addCallback(lambda _: self.register(self.authenticate, AUTHENTICATE))
        d.addCallback(lambda _: self.log.info("authenticator ready ({algorithm}, issuer {issuer}, revocation from"
                                              " the {source} database)", algorithm=keys.algorithm, issuer=issuer,
                                              source=source))
        return d

    def _prepare_revocation(self, db):
        """
        Create the revocation tables, then watch them. The triggers that fill
        them on the master are installed with the user table by ``/auth`` and
        the user-sync master, which run beside this where the user table is.
        """
        d = migrate(db, "credentials", credentials.MIGRATIONS)

        def ready(_):
            self.revocation_ready = True
            if not self.left and not self.watch.running:
                self.watch.start()
        return d.addCallback(ready)

    def on_start_failed(self):
        self.log.critical("cannot serve logins: stopping the node")
        self.reactor.callLater(0.2, _stop_process, self.reactor)

    def authenticate(self, realm, authid, details):
        principal = self.ticket.authenticate(realm, authid, details)
        if self.join_check is None:
            self.session_cap.admit(principal["authid"], principal["role"])
            return self._admit(principal, details)
        if not self.revocation_ready:
            raise Unavailable("the authenticator is still starting; try again shortly")
        self.session_cap.admit(principal["authid"], principal["role"])
        claims = dict(principal["extra"], sub=principal["authid"])

        def refused(failure):
            self.session_cap.release(principal["authid"], principal["role"])
            return failure
        return self.join_check.check(claims).addCallbacks(lambda _: self._admit(principal, details), refused)

    def _admit(self, principal, details):
        session_id = (details or {}).get("session")
        if session_id is not None:
            self._schedule_expiry(session_id, principal["extra"]["exp"])
        self.log.info("authenticated {authid} as {role}", authid=principal["authid"], role=principal["role"])
        return principal

    def _end_revoked(self, session_id):
        d = self.call("wamp.session.kill", session_id, reason=AUTH_REVOKED,
                      message="the account changed or logged out")
        d.addErrback(lambda failure: None)  # already gone
        return d

    def _schedule_expiry(self, session_id, exp):
        delay = max(0.0, exp - self.reactor.seconds())
        previous = self._expiries.pop(session_id, None)
        if previous is not None and previous.active():
            previous.cancel()
        self._expiries[session_id] = self.reactor.callLater(delay, self._expire, session_id)

    def _expire(self, session_id):
        self._expiries.pop(session_id, None)
        d = self.call("wamp.session.kill", session_id, reason=AUTH_TOKEN_EXPIRED_SESSION,
                      message="token expired")
        d.addCallback(lambda _: self.log.info("ended session {session} (token expired)", session=session_id))
        d.addErrback(lambda failure: None)  # already gone
        return d

    def _on_join(self, session_details=None, *args, **kwargs):
        # Sessions that reach the router through a proxy worker were authenticated under the proxy's own
        # session id; the router-side id and the token's exp (our authextra) arrive here.
        details = session_details if isinstance(session_details, dict) else {}
        if details.get("session") is not None:
            self.session_cap.joined(details["session"], details.get("authid"), details.get("authrole"))
        extra = details.get("authextra") or {}
        exp = extra.get("exp")
        if details.get("session") is not None and isinstance(exp, int) and not isinstance(exp, bool):
            self._schedule_expiry(details["session"], exp)
            if self.watch is not None:
                self.watch.joined(details["session"], details.get("authid"), details.get("authrole"),
                                  token_facts(extra))

    def _on_leave(self, session_id, *args, **kwargs):
        self.session_cap.left(session_id)
        if self.watch is not None:
            self.watch.left(session_id)
        call = self._expiries.pop(session_id, None)
        if call is not None and call.active():
            call.cancel()

    def onLeave(self, details):
        self.left = True
        if self.watch is not None:
            self.watch.stop()
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

