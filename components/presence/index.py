"""
Who subscribes what, kept from the router's meta events: sessions joining
and leaving (``wamp.session.on_join`` / ``on_leave``) and subscriptions
created, joined, left and deleted (``wamp.subscription.on_*``). Pure state,
no I/O: the component feeds it events and the start-up snapshot.

Only sessions of ``people`` roles are kept; a subscriber whose session is
not (yet) known is held by session id and counts once its join is known.
``presence(topic)`` matches the topic the way the broker does (exact, then
every prefix subscription, then wildcards), so its cost grows with the
subscribers of that topic and the number of prefix/wildcard subscriptions,
never with the whole router.
"""


def wildcard_matches(pattern, topic):
    """A WAMP wildcard subscription (``a..c``: empty components match any one component) matches ``topic``."""
    wanted, parts = pattern.split("."), topic.split(".")
    return len(wanted) == len(parts) and all(not want or want == part for want, part in zip(wanted, parts))


class PresenceIndex:
    """Sessions (``id -> authid``) and subscriptions (``id -> (uri, match)`` and their subscriber ids)."""

    def __init__(self, people):
        self.people = frozenset(people)
        self.sessions = {}
        self.subscriptions = {}
        self.subscribers = {}
        self.exact = {}
        self.patterns = {}
        self.of_session = {}

    def joined(self, session, authid, authrole):
        """A session joined: kept when its role is one of ``people``."""
        if authrole in self.people:
            self.sessions[session] = authid

    def left(self, session):
        """A session left: it leaves every subscription too."""
        self.sessions.pop(session, None)
        for subscription in self.of_session.pop(session, ()):
            self.subscribers.get(subscription, set()).discard(session)

    def created(self, subscription, uri, match):
        """A subscription exists on the router (``match``: exact, prefix or wildcard)."""
        if subscription in self.subscriptions:
            return
        self.subscriptions[subscription] = (uri, match)
        self.subscribers.setdefault(subscription, set())
        if match == "exact":
            self.exact[uri] = subscription
        else:
            self.patterns[subscription] = (uri, match)

    def subscribed(self, session, subscription):
        """``session`` subscribes ``subscription``."""
        self.subscribers.setdefault(subscription, set()).add(session)
        self.of_session.setdefault(session, set()).add(subscription)

    def unsubscribed(self, session, subscription):
        """``session`` no longer subscribes ``subscription``."""
        self.subscribers.get(subscription, set()).discard(session)
        held = self.of_session.get(session)
        if held is not None:
            held.discard(subscription)
            if not held:
                del self.of_session[session]

    def deleted(self, subscription):
        """The router dropped ``subscription`` (its last subscriber left)."""
        found = self.subscriptions.pop(subscription, None)
        for session in self.subscribers.pop(subscription, ()):
            held = self.of_session.get(session)
            if held is not None:
                held.discard(subscription)
        self.patterns.pop(subscription, None)
        if found is not None and self.exact.get(found[0]) == subscription:
            del self.exact[found[0]]

    def matching(self, topic):
        """The ids of the subscriptions an event on ``topic`` reaches."""
        found = []
        if topic in self.exact:
            found.append(self.exact[topic])
        for subscription, (uri, match) in self.patterns.items():
            if topic.startswith(uri) if match == "prefix" else wildcard_matches(uri, topic):
                found.append(subscription)
        return found

    def presence(self, topic):
        """``(sessions, authids)``: the people's sessions an event on ``topic`` reaches and their authids."""
        sessions = set()
        for subscription in self.matching(topic):
            sessions.update(self.subscribers.get(subscription, ()))
        known = {session: self.sessions[session] for session in sessions if session in self.sessions}
        return len(known), set(known.values())
