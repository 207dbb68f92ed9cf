"""
Revocation at the router, from the facts in :mod:`components.auth.credentials`:

- :class:`JoinCheck`: one database look-up per join; a token the directory
  has revoked since it was issued is refused with ``reactive.error.auth.revoked``;
- :class:`RevocationWatch`: every ``interval`` seconds one query for what
  was noted since the last look, and the sessions joined with a token that
  is now revoked are ended (``end_session(session_id)``), on this node. The
  rows of the last ``overlap`` seconds are read again, so a change whose
  transaction committed late is still seen; every ``recheck`` seconds all
  tracked sessions are checked against the facts as they are (a transaction
  that stayed open longer than the overlap); ending is idempotent.

Sessions of role ``device`` are not users: the directory does not revoke them.
"""

from twisted.internet import defer
from twisted.logger import Logger

from components.auth import AUTH_REVOKED, credentials
from components.auth.tokens import TokenError
from components.core.backoff import Backoff, pause
from components.db.database import StorageUnavailable
from components.core.errors import DATABASE_UNAVAILABLE, Unavailable

EXEMPT_ROLES = ("device",)


def token_facts(claims):
    """What a session must remember of its token to be judged later: ``{"cv", "iat", "sid"}`` (present ones)."""
    return {name: claims[name] for name in ("cv", "iat", "sid") if name in claims}


class JoinCheck:
    """``check(claims)`` fires with the claims, or fails with a TokenError (revoked) or Unavailable."""

    log = Logger()

    def __init__(self, db, leeway=0):
        self.db = db
        self.leeway = leeway
        self.checked = self.refused = 0

    def _read(self, cursor, username, sid):
        version, changed_ms = credentials.version_of(cursor, username)
        return version, changed_ms, bool(sid) and credentials.login_revoked(cursor, sid)

    def check(self, claims):
        if claims.get("role") in EXEMPT_ROLES:
            return defer.succeed(claims)
        self.checked += 1
        d = self.db.run(self._read, claims["sub"], claims.get("sid"))

        def judge(facts):
            version, changed_ms, ended = facts
            if credentials.is_revoked(claims, version, changed_ms, ended, self.leeway):
                self.refused += 1
                raise TokenError(AUTH_REVOKED, "logged out" if ended else
                                 "the account changed since this token was issued")
            return claims

        def unavailable(failure):
            failure.trap(StorageUnavailable)
            self.log.warn("cannot check {username} for revocation: {error}", username=claims["sub"],
                          error=failure.value)
            raise Unavailable(DATABASE_UNAVAILABLE)
        return d.addCallbacks(judge, unavailable)


class RevocationWatch:
    """Polls the revocation facts and ends the live sessions they revoke."""

    log = Logger()

    def __init__(self, db, reactor, end_session, interval=0.5, overlap=5.0, recheck=10.0, leeway=0):
        self.db = db
        self.reactor = reactor
        self.end_session = end_session
        self.interval = interval
        self.overlap_ms = int(overlap * 1000)
        self.recheck = recheck
        self.leeway = leeway
        self.sessions = {}  # session id -> (authid, role, token facts)
        self.by_authid = {}  # authid -> {session id}
        self.by_sid = {}  # login-session id -> {session id}
        self.ending = set()
        self.running = False
        self.ended = 0

    def joined(self, session_id, authid, role, facts):
        self.left(session_id)
        facts = dict(facts or {})
        self.sessions[session_id] = (authid, role, facts)
        self.by_authid.setdefault(authid, set()).add(session_id)
        if facts.get("sid"):
            self.by_sid.setdefault(facts["sid"], set()).add(session_id)

    def left(self, session_id):
        entry = self.sessions.pop(session_id, None)
        self.ending.discard(session_id)
        if entry is None:
            return
        authid, _, facts = entry
        for index, key in ((self.by_authid, authid), (self.by_sid, facts.get("sid"))):
            members = index.get(key)
            if members is not None:
                members.discard(session_id)
                if not members:
                    del index[key]

    def start(self):
        self.running = True
        self.done = self._loop()
        return self.done

    def stop(self):
        self.running = False

    def revoked_sessions(self, changed, logins):
        """The tracked sessions that ``changed`` credentials and ended ``logins`` revoke."""
        versions = {username: (version, changed_ms) for username, version, changed_ms in changed}
        ended = {sid for sid, _ in logins}
        candidates = set()
        for username in versions:
            candidates |= self.by_authid.get(username, set())
        for sid in ended:
            candidates |= self.by_sid.get(sid, set())
        found = []
        for session_id in sorted(candidates):
            authid, role, facts = self.sessions[session_id]
            if role in EXEMPT_ROLES or session_id in self.ending:
                continue
            version, changed_ms = versions.get(authid, (0, 0))
            try:
                revoked = credentials.is_revoked(facts, version, changed_ms, facts.get("sid") in ended, self.leeway)
            except Exception:  # a session whose facts cannot be judged is not let off
                revoked = True
            if revoked:
                found.append(session_id)
        return found

    def _recheck(self, cursor):
        """Every tracked session against the facts as they are now (a change committed after the overlap)."""
        return credentials.current(cursor, list(self.by_authid), list(self.by_sid))

    @defer.inlineCallbacks
    def _loop(self):
        backoff = Backoff(self.interval, 10.0)
        since = None
        last_recheck = self.reactor.seconds()
        while self.running:
            try:
                if since is None:
                    since = (yield self.db.run(credentials.database_now_ms)) - self.overlap_ms
                changed, logins, now = yield self.db.run(credentials.changes_since, since)
                since = now - self.overlap_ms
                if self.reactor.seconds() - last_recheck >= self.recheck and self.sessions:
                    last_recheck = self.reactor.seconds()
                    everything, all_logins = yield self.db.run(self._recheck)
                    changed, logins = changed + everything, logins + all_logins
                if backoff.failures:
                    self.log.info("revocation watch: database back")
                backoff.reset()
                self.end(self.revoked_sessions(changed, logins))
                delay = self.interval
            except Exception as exc:
                delay = backoff.next()
                if backoff.failures == 1:
                    self.log.warn("revocation watch: {error}; retrying in {delay:.1f}s", error=exc, delay=delay)
            yield pause(self.reactor, delay)

    def end(self, session_ids):
        for session_id in session_ids:
            self.ending.add(session_id)
            self.ended += 1
            authid = self.sessions.get(session_id, ("?",))[0]
            self.log.info("ending session {session} of {authid}: revoked", session=session_id, authid=authid)
            self.end_session(session_id)
