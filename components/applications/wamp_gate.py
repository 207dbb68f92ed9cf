"""
Applications over WAMP: a registered application joins with WAMP-CRA,
``authid`` its key and the secret as the CRA secret (the secret itself never
travels), and gets the role ``app``.

- ``reactive.apps.authenticate`` (the transport's ``wampcra`` dynamic
  authenticator): an unknown, revoked or rotated-away key is refused; a known
  one is challenged with its secret, its session's ``authextra`` carries the
  application's name (set here, never by the client).
- ``reactive.apps.authorize`` (the ``app`` role's dynamic authorizer): an
  application may publish, subscribe, register and call under its own prefix
  ``app.<name>.`` only, on lower-case URIs of at most 255 characters (as
  ``/apps/publish`` takes them); nothing else, not even the hub's public procedures
  (they answer about users; an application acts for its server, which asks
  the hub over ``/apps/publish``). A private application publishes nothing
  over WAMP (its events go to named users through ``/apps/publish``), and no
  application publishes a retained event (Crossbar hands a retained event to
  later subscribers without its ``eligible_authid`` list). The answer is never
  cached: Crossbar keys its cache by role and URI, not by session, so one
  application's answer would be given to another. A user calls nothing under
  ``app.``: its role subscribes there only.
- Every ``REVOCATION_POLL`` second while application sessions are open, the
  registry's active keys are read once; a session whose key was revoked or
  rotated (on this node or by the command line elsewhere) is ended with
  ``reactive.error.auth.revoked``.
"""

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions
from twisted.internet.task import LoopingCall

from components.applications import owns_uri
from components.applications.app_registry import ACTIVE, AppRegistry
from components.auth import AUTH_REVOKED
from components.core.component import HubComponent
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek

AUTHENTICATE = "reactive.apps.authenticate"
AUTHORIZE = "reactive.apps.authorize"
ROLE = "app"
NO_SUCH_APP = "reactive.error.auth.bad_credentials"
REVOCATION_POLL = 1.0
ACTIONS = frozenset(("publish", "subscribe", "register", "call"))


def allowed(details, uri, action, options=None):
    """
    Whether the application session ``details`` may ``action`` on ``uri``
    with ``options`` (the message's): its own lower-case URIs only
    (:func:`components.applications.owns_uri`, the rule of /apps/publish); a private
    application never publishes, no application publishes a retained event.
    """
    extra = (details or {}).get("authextra") or {}
    name = extra.get("app")
    if (details or {}).get("authrole") != ROLE or not isinstance(name, str) or not name:
        return False
    if action == "publish" and (extra.get("private", True) or (options or {}).get("retain")):
        return False
    return action in ACTIONS and owns_uri(name, uri)


class AppGate(HubComponent):
    """Authenticates and authorizes application sessions, and ends those whose key is no longer active."""

    registry = None

    def __init__(self, *args, **kwargs):
        self.sessions = {}  # router session id -> the application key it joined with
        self.poll = None
        HubComponent.__init__(self, *args, **kwargs)

    def start(self):
        if self.registry is None:
            self.registry = AppRegistry(Database(self.settings.get(db_settings.DATABASE_URL)),
                                        load_kek(self.settings), clock=self.reactor.seconds)
        d = self.subscribe(self._on_join, "wamp.session.on_join", options=SubscribeOptions(match="exact"))
        d.addCallback(lambda _: self.subscribe(self._on_leave, "wamp.session.on_leave",
                                               options=SubscribeOptions(match="exact")))
        d.addCallback(lambda _: self.register(self.authorize, AUTHORIZE))
        d.addCallback(lambda _: self.register(self.authenticate, AUTHENTICATE))
        d.addCallback(lambda _: self._start_poll())
        d.addCallback(lambda _: self.log.info("application gate ready (WAMP-CRA, role {role})", role=ROLE))
        return d

    def _start_poll(self):
        self.poll = LoopingCall(self.end_revoked)
        self.poll.clock = self.reactor
        self.poll.start(REVOCATION_POLL, now=False).addErrback(
            lambda failure: self.log.failure("application revocation poll stopped", failure))

    def authenticate(self, realm, authid, details):
        """The WAMP-CRA principal of the application whose key is ``authid``; refused when there is none."""
        def principal(app):
            if app is None:
                raise ApplicationError(NO_SUCH_APP, "no active application has this key")
            return {"realm": realm, "authid": authid, "role": ROLE, "secret": app.secret,
                    "extra": {"app": app.name, "private": app.private}}
        return self.registry.lookup(authid).addCallback(principal)

    def authorize(self, details, uri, action, options=None):
        # never cached: Crossbar's cache is keyed by (realm, role, uri, action), shared by every application
        return {"allow": allowed(details, uri, action, options), "disclose": False, "cache": False}

    def _on_join(self, details=None, *args, **kwargs):
        details = details if isinstance(details, dict) else {}
        if details.get("authrole") == ROLE and details.get("session") is not None:
            self.sessions[details["session"]] = details.get("authid")

    def _on_leave(self, session_id, *args, **kwargs):
        self.sessions.pop(session_id, None)

    def end_revoked(self):
        """Read the active keys once (only while application sessions are open); end the other sessions."""
        if not self.sessions:
            return None

        def end(apps):
            active = {app["key"] for app in apps if app["state"] == ACTIVE}
            for session_id, key in list(self.sessions.items()):
                if key not in active:
                    self.sessions.pop(session_id, None)
                    self.log.info("ending application session {session}: its key was revoked or rotated",
                                  session=session_id)
                    self.call("wamp.session.kill", session_id, reason=AUTH_REVOKED,
                              message="the application key was revoked or rotated").addErrback(lambda _: None)
        d = self.registry.list().addCallback(end)
        d.addErrback(lambda failure: self.log.warn("application revocation poll: {error}",
                                                   error=failure.getErrorMessage()))
        return d

    def onLeave(self, details):
        if self.poll is not None and self.poll.running:
            self.poll.stop()
        HubComponent.onLeave(self, details)
