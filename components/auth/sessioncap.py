"""
Concurrent sessions per authid: a join past ``limit`` live sessions of the
same authid is refused with ``reactive.error.auth.too_many_sessions`` (the
new one is refused; no open session is kicked).

Only the roles in ``roles`` (people and devices: ``user``, ``admin``,
``device``) are counted; backend components share authids across instances
and never pass the ticket authenticator. The count is what the router's
``wamp.session.on_join`` / ``on_leave`` meta events say is open, plus the
places held by admissions whose join has not been announced yet (so a burst
of joins of one authid cannot all pass before the first is announced). A
held place is given back when its join is announced, when the admission
fails later (:meth:`release`) or after ``hold`` seconds.
"""

from components.auth import AUTH_TOO_MANY_SESSIONS, auth_settings
from components.auth.tokens import TokenError

CAPPED_ROLES = ("user", "admin", "device")
DEFAULT_LIMIT = auth_settings.SESSION_MAX_PER_AUTHID.default


class SessionCap:
    """Live sessions and held places per authid; ``limit`` 0 switches the cap off."""

    def __init__(self, limit, clock, roles=CAPPED_ROLES, hold=30.0):
        self.limit = limit
        self.clock = clock
        self.roles = frozenset(roles)
        self.hold = hold
        self.live = {}  # authid -> {session id}
        self.owner = {}  # session id -> authid
        self.held = {}  # authid -> [deadline of each held place, oldest first]
        self.refused = 0

    def counted(self, role):
        return self.limit > 0 and role in self.roles

    def sessions_of(self, authid):
        """Open sessions plus held places of ``authid``."""
        self._expire(authid)
        return len(self.live.get(authid, ())) + len(self.held.get(authid, ()))

    def admit(self, authid, role):
        """Hold a place for a join of ``authid``, or raise :class:`TokenError` when it has ``limit`` already."""
        if not self.counted(role):
            return
        if self.sessions_of(authid) >= self.limit:
            self.refused += 1
            raise TokenError(AUTH_TOO_MANY_SESSIONS,
                             "{} has {} sessions open, the most one user may hold; close one and retry".format(
                                 authid, self.limit))
        self.held.setdefault(authid, []).append(self.clock() + self.hold)

    def release(self, authid, role):
        """Give back the place an admission held (the join was refused after all)."""
        if self.counted(role):
            self._take_held(authid)

    def joined(self, session_id, authid, role):
        """The router announced a session: it counts now instead of its held place."""
        if not self.counted(role) or session_id in self.owner:
            return
        self._take_held(authid)
        self.owner[session_id] = authid
        self.live.setdefault(authid, set()).add(session_id)

    def left(self, session_id):
        authid = self.owner.pop(session_id, None)
        if authid is None:
            return
        members = self.live.get(authid)
        if members is not None:
            members.discard(session_id)
            if not members:
                del self.live[authid]

    def _take_held(self, authid):
        places = self.held.get(authid)
        if places:
            places.pop(0)
            if not places:
                del self.held[authid]

    def _expire(self, authid):
        places = self.held.get(authid)
        if places:
            now = self.clock()
            places[:] = [deadline for deadline in places if deadline > now]
            if not places:
                del self.held[authid]
