"""
The login endpoints on the web transport, mounted at ``/auth``:

- ``POST /auth/login`` checks username and password against the directory
  and sets an HttpOnly, SameSite=Strict session cookie backed by a
  server-side login session. Attempts are rate limited per client address
  (the TCP peer, or behind ``TRUSTED_PROXIES`` the forwarded client:
  :mod:`components.core.clientaddress`), and failures against one account
  from anywhere slow that account's attempts down, capped, never locking it
  (:mod:`components.auth.loginlimits`); the password-hashing work is bounded
  per client, per account and per node (:mod:`components.auth.checkgate`);
- ``POST /auth/token`` exchanges that cookie for a fresh short-lived JWT
  (and, with end-to-end encryption, the user's data keys; 503 when this
  node's ``E2E_KEK`` cannot unwrap them);
- ``POST /auth/logout`` ends the login session everywhere: the tokens minted
  under it (their ``sid``) are refused at join, and the sessions opened with
  them end (:mod:`components.auth.session_revocation`).

The cookie is ``Secure`` over TLS, and always when ``PUBLIC_URL`` is an
``https://`` origin (TLS ends at a proxy, so the request itself looks plain).
"""

import time
from urllib.parse import urlsplit

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web.resource import Resource

from components.auth import AUTH_BAD_CREDENTIALS, AUTH_LOGIN_REQUIRED, auth_settings, credentials, tokens
from components.auth.directory import Directory, user_table
from components.auth.checkgate import Busy, CheckGate
from components.auth.loginlimits import MAX_NAME, AccountDelay
from components.auth.loginsessions import LoginSessions
from components.auth.master_tables import master_schemas
from components.auth.token_signing import role_of
from components.core import core_settings, errors
from components.core.backoff import persist
from components.core.clientaddress import X_FORWARDED_FOR, client_address, rate_key
from components.core.httpjson import (HTTPError, JSONMethods, NotFound, check_same_origin, read_fields, respond,
                                      write_error)
from components.core.ratelimit import RateLimiter
from components.core.refusal import refusing
from components.core.settings import KeyConfigError, Settings
from components.db import db_settings
from components.db.database import Database, StorageUnavailable
from components.db.migrations import migrate, migrate_all
from components.e2e import e2e_settings
from components.e2e.envelope import b64encode

COOKIE = "hub_session"
DEFAULT_SESSION_LIFETIME = auth_settings.SESSION_LIFETIME.default
# seconds a request waits for the tables at start-up (or for Django's user table) before 503
READY_WAIT = 5


class _Endpoint(JSONMethods, Resource):
    isLeaf = True

    def __init__(self, handler):
        Resource.__init__(self)
        self.handler = handler

    def render_POST(self, request):
        return respond(request, self.handler)

    def render_GET(self, request):
        request.setHeader(b"Allow", b"POST")
        return write_error(request, HTTPError(405, errors.INVALID_ARGUMENT, "use POST"))


class AuthService:
    """The logic behind the three endpoints, with its I/O handed in."""

    log = Logger()

    def __init__(self, directory, sessions, issuer, limiter, cookie_lifetime, user_keys=None,
                 secure_cookie=False, trusted_proxies=(), account_delay=None, reactor=None,
                 forwarded_header=X_FORWARDED_FOR, gate=None, client_failures=None):
        self.directory = directory
        self.sessions = sessions
        self.issuer = issuer
        self.limiter = limiter
        self.cookie_lifetime = cookie_lifetime
        self.user_keys = user_keys
        self.secure_cookie = secure_cookie
        self.trusted_proxies = trusted_proxies
        self.forwarded_header = forwarded_header
        # failures per client address: who keeps the waiting place of a busy account (the gate's standing)
        self.client_failures = client_failures or AccountDelay(clock=reactor.seconds if reactor else time.monotonic)
        self.gate = gate or CheckGate(standing=self.client_failures.score, clock=self.client_failures.clock)
        self.account_delay = account_delay
        self.reactor = reactor

    def _busy(self, busy):
        """
        The answer for an attempt the check gate turned away: retry in 1 s
        (a client turned away from a busy account keeps its place in line
        while it comes back, so coming back soon is what gets it in).
        """
        code = errors.RATE_LIMITED if busy.status == 429 else errors.UNAVAILABLE
        return HTTPError(busy.status, code, "{}; retry in 1 s".format(busy.reason), headers={"Retry-After": 1})

    def _cookie(self, request, value, max_age):
        attributes = ["{}={}".format(COOKIE, value), "Path=/auth", "HttpOnly", "SameSite=Strict",
                      "Max-Age={}".format(max_age)]
        if self.secure_cookie or request.isSecure():
            attributes.append("Secure")
        request.setHeader(b"Set-Cookie", "; ".join(attributes).encode("ascii"))

    @defer.inlineCallbacks
    def login(self, request):
        check_same_origin(request)
        key = client_address(request, self.trusted_proxies, self.forwarded_header)
        allowed, retry_after = self.limiter.check(rate_key(key))
        if not allowed:
            raise HTTPError(429, errors.RATE_LIMITED, "too many login attempts; retry in {:.0f} s".format(
                retry_after + 0.5), headers={"Retry-After": int(retry_after + 1)})
        fields = read_fields(request)
        username, password = fields.get("username"), fields.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise HTTPError(400, errors.INVALID_ARGUMENT, "username and password are required")
        client = rate_key(key)
        try:
            attempt = self.gate.enter(username[:MAX_NAME], client)
        except Busy as busy:
            raise self._busy(busy)
        try:
            yield attempt.turn
            if self.account_delay is not None:
                # holding the account, before the check, for right and wrong passwords alike: capped, telling nothing
                wait = self.account_delay.delay(username)
                if wait > 0:
                    yield task.deferLater(self.reactor, wait, lambda: None)
            user = yield attempt.check(lambda: self.directory.authenticate(username, password))
            # counted before the account passes on, so the next attempt's delay includes this outcome
            if user is None:
                if self.account_delay is not None:
                    self.account_delay.failed(username)
                self.client_failures.failed(client)
            elif self.account_delay is not None:
                self.account_delay.succeeded(username)
        except Busy as busy:
            raise self._busy(busy)
        finally:
            attempt.leave()
        if user is None:
            self.log.info("login refused for {username!r} from {address}", username=username, address=key)
            raise HTTPError(401, AUTH_BAD_CREDENTIALS, "wrong username or password")
        session_id = yield self.sessions.create(user["username"])
        yield self.directory.record_login(user["username"])
        self._cookie(request, session_id, self.cookie_lifetime)
        self.log.info("login of {username} from {address}", username=user["username"], address=key)
        return 200, {"username": user["username"], "role": role_of(user), "first_name": user["first_name"]}

    @defer.inlineCallbacks
    def token(self, request):
        check_same_origin(request)
        session_id = (request.getCookie(COOKIE.encode("ascii")) or b"").decode("ascii", "replace")
        # a database that is down answers 503 with the generic message (errors.public), its words logged
        login = yield self.sessions.login(session_id)
        user = (yield self.directory.get_user(login[0])) if login else None
        if user is None or not user["is_active"]:
            raise HTTPError(401, AUTH_LOGIN_REQUIRED, "not logged in")
        role = role_of(user)
        # the credential version read with the login session: a change committed since refuses this token
        token = self.issuer.issue(user["username"], role, extra_claims={"sid": login[1], "cv": login[2]})
        answer = {"token": token, "expires_in": self.issuer.ttl, "username": user["username"], "role": role,
                  "first_name": user["first_name"]}
        if self.user_keys is not None:
            # the user's end-to-end data keys travel only here: HTTPS, cookie-authenticated, never over WAMP;
            # those of this identity only (the credential version the token carries): a password change,
            # deactivation or deletion since, or a former holder of the username, never get them
            try:
                usable = yield self.user_keys.usable(user["username"], generation=login[2])
            except KeyConfigError as exc:
                self.log.error("cannot hand out the end-to-end keys of {username} ({reason}): every node must have "
                               "the same E2E_KEK or E2E_KEK_FILE (python -m components.auth.keygen DIR makes it)",
                               username=user["username"], reason=str(exc))
                raise HTTPError(503, errors.UNAVAILABLE, "end-to-end keys unavailable on this node")
            answer["e2e"] = {"current": usable["current"],
                             "keys": {kid: b64encode(key) for kid, key in usable["keys"].items()}}
        return 200, answer

    @defer.inlineCallbacks
    def logout(self, request):
        check_same_origin(request)
        session_id = (request.getCookie(COOKIE.encode("ascii")) or b"").decode("ascii", "replace")
        try:
            # its tokens may live for the token lifetime (and the verifiers' leeway): refused that long
            yield self.sessions.end(session_id, tokens_live_for=self.issuer.ttl + credentials.LOGOUT_MARGIN)
        except StorageUnavailable as error:
            raise HTTPError(503, errors.UNAVAILABLE, errors.DATABASE_UNAVAILABLE + " You are not logged out yet.",
                            detail=error.detail)
        self._cookie(request, "", 0)
        return 200, {"logged_out": True}


class AuthResource(Resource):
    """Crossbar ``resource`` web service: ``{"type": "resource", "classname": "components.auth.resource.AuthResource"}``."""

    log = Logger()

    @refusing
    def __init__(self, extra=None):
        Resource.__init__(self)
        settings = Settings(extra)
        keys, issuer, audience, ttl = tokens.from_settings(settings)
        from twisted.internet import reactor
        self.reactor = reactor
        self.db = Database(settings.get(db_settings.MASTER_DATABASE_URL))
        table = user_table(settings)
        # retried: in a database whose user table belongs to Django, the table may not exist yet
        self.ready = persist(reactor, lambda: migrate_all(self.db, master_schemas(table)), self.log,
                             "login database")
        limiter = RateLimiter(rate=settings.get(auth_settings.LOGIN_RATE), burst=settings.get(auth_settings.LOGIN_BURST))
        account_delay = AccountDelay(maximum=settings.get(auth_settings.LOGIN_ACCOUNT_DELAY_MAX), clock=reactor.seconds)
        client_failures = AccountDelay(clock=reactor.seconds)
        gate = CheckGate(parallel=settings.get(auth_settings.LOGIN_HASH_PARALLEL),
                         queued=settings.get(auth_settings.LOGIN_HASH_QUEUE),
                         standing=client_failures.score, clock=reactor.seconds)
        lifetime = settings.get(auth_settings.SESSION_LIFETIME)
        public_url = settings.get(core_settings.PUBLIC_URL)
        self.service = AuthService(Directory(self.db, table=table.name), LoginSessions(self.db, lifetime),
                                   tokens.TokenIssuer(keys, issuer, audience, ttl), limiter, lifetime,
                                   secure_cookie=urlsplit(public_url).scheme == "https",
                                   trusted_proxies=settings.get(core_settings.TRUSTED_PROXIES), account_delay=account_delay,
                                   reactor=reactor, forwarded_header=settings.get(core_settings.FORWARDED_HEADER), gate=gate,
                                   client_failures=client_failures)
        if settings.get(e2e_settings.E2E_ENCRYPTION):
            self.service.user_keys = self._user_keys(settings)
        for name in ("login", "token", "logout"):
            handler = getattr(self.service, name)
            self.putChild(name.encode("ascii"), _Endpoint(self._after_ready(handler)))

    def getChild(self, path, request):
        """Any other path under /auth: a 404 in the one error body (Twisted's default is an HTML page)."""
        return NotFound()

    def _user_keys(self, settings):
        from components.e2e.keys import MIGRATIONS as KEY_MIGRATIONS, UserKeys, load_kek
        client_db = Database(settings.get(db_settings.DATABASE_URL))
        keys_ready = migrate(client_db, "e2e_keys", KEY_MIGRATIONS)
        self.ready = defer.gatherResults([self.ready, keys_ready])
        self.ready.addErrback(lambda failure: self.log.failure("key store schema failed", failure=failure))
        return UserKeys(client_db, load_kek(settings), grace=settings.get(e2e_settings.E2E_KEY_GRACE))

    def _after_ready(self, handler):
        """``handler``, held until the tables are ready; 503 after READY_WAIT seconds of waiting."""
        def run(request):
            if self.ready.called:
                return handler(request)
            waiter = defer.Deferred()

            def release(result):
                if not waiter.called:
                    waiter.callback(None)
                return result

            def give_up():
                if not waiter.called:
                    waiter.errback(HTTPError(503, errors.UNAVAILABLE, "user directory not ready yet; try again"))
            self.ready.addBoth(release)
            timer = self.reactor.callLater(READY_WAIT, give_up)
            waiter.addBoth(lambda result: (timer.active() and timer.cancel(), result)[1])
            return waiter.addCallback(lambda _: handler(request))
        return run
