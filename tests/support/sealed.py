"""
A test-only stand-in for the user-sync publisher with end-to-end encryption,
for tests and benchmarks that drive real browsers through a real node:

    node = RouterNode(env=SEALED_NODE_ENV, transform=allow_sealed_publisher)
    profiles = yield SealedProfiles.attach(client, node)   # client: a HubClient joined as role "device"
    state = yield profiles.change("alice", {"first_name": "Alice", ...})   # sealed, through users.relay

It seals with the node's own per-user data keys (the node's client database
and its dev key-encryption key), registers ``users.me`` (answering the
caller's latest state, sealed afresh for each call) and publishes like the
real user sync: on ``users.relay``, which the node's ``components.usersync.user_event_relay``
republishes on ``users.changed`` to that user's sessions only. With
``encrypted=False`` the same states travel in plaintext (for comparisons).

The node runs with ``USERSYNC_PUSH=off`` so the real user sync leaves
``users.me`` to this publisher; ``allow_sealed_publisher`` gives the
``device`` role (which test tokens can carry) the URIs it needs, and the
``user`` role ``e2e.test.upload`` (a procedure tests register to receive
what a browser sealed).
"""

import os

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer

from components.core import errors
from components.e2e import envelope
from components.e2e.keys import UserKeys, load_kek
from components.e2e.service import PrivatePayloads
from components.db.database import Database
from components.usersync.user_event_relay import publish_for_user
from components.core.settings import Settings
from tests.support.node import router_worker

CHANGED = "users.changed"
ME = "users.me"
RELAY = "users.relay"
UPLOAD = "e2e.test.upload"
SEALED_NODE_ENV = {"E2E_ENCRYPTION": "on", "USERSYNC_PUSH": "off"}


def _permission(uri, **allow):
    flags = {name: bool(allow.get(name)) for name in ("call", "register", "publish", "subscribe")}
    return {"uri": uri, "match": "exact", "allow": flags, "disclose": {"caller": True, "publisher": True},
            "cache": True}


def allow_sealed_publisher(config):
    """Test-only role transform: ``device`` may act as the user-sync publisher; users may call UPLOAD."""
    for realm in router_worker(config)["realms"]:
        for role in realm["roles"]:
            if role["name"] == "device":
                role["permissions"] += [_permission(RELAY, publish=True, subscribe=True),
                                        _permission(ME, register=True),
                                        _permission(UPLOAD, register=True)]
            elif role["name"] in ("user", "admin"):
                role["permissions"].append(_permission(UPLOAD, call=True))
    return config


def node_keys(node, grace=3600):
    """The node's own per-user key store (its client database and dev key-encryption key)."""
    db = Database("sqlite:///" + os.path.join(node.directory, "client.db"))
    return db, UserKeys(db, load_kek(Settings({}, {}, node.directory)), grace=grace)


class SealedProfiles:
    """Seals and publishes per-user profile states; answers ``users.me``."""

    def __init__(self, session, keys, encrypted=True):
        self.session = session
        self.keys = keys
        self.payloads = PrivatePayloads(keys, enabled=encrypted)
        self.latest = {}            # username -> plain state
        self.next_seq = {}

    @classmethod
    @defer.inlineCallbacks
    def attach(cls, client, keys, encrypted=True):
        """Register ``users.me`` on ``client.session``; fire with the publisher."""
        profiles = cls(client.session, keys, encrypted)
        # invoke="last": a later test's publisher takes over users.me even before an earlier one has left
        options = RegisterOptions(details_arg="details", invoke="last")
        yield client.session.register(profiles.me, ME, options=options)
        return profiles

    def me(self, details=None):
        username = getattr(details, "caller_authid", None)
        if not username:
            raise ApplicationError(errors.NOT_AUTHORIZED, "users.me needs an authenticated caller")
        state = self.latest.get(username) or {"value": None, "seq": 0, "ts": 0}
        return self.payloads.seal_state(username, CHANGED, state)

    def plain(self, username, value, remember=True):
        """The next plain state of ``username`` (seq strictly increasing per user); users.me answers it."""
        seq = self.next_seq.get(username, 1000) + 1
        self.next_seq[username] = seq
        state = {"value": value, "seq": seq, "ts": seq}
        if remember:
            self.latest[username] = state
        return state

    def seal(self, username, state, topic=CHANGED):
        """Fire with ``state`` sealed for ``username`` on ``topic`` (only when encryption is on)."""
        return self.payloads.seal_state(username, topic, state)

    def publish(self, username, event):
        """Publish ``event`` (sealed or not, as given) to ``username``'s sessions through users.relay."""
        return publish_for_user(self.session, username, event)

    @defer.inlineCallbacks
    def change(self, username, value):
        """A new profile state for ``username``: sealed and published; fire with the plain state."""
        state = self.plain(username, value)
        sealed = yield self.seal(username, state)
        yield self.publish(username, sealed)
        return state


def sealed_with(key, kid, topic, state):
    """``state`` with its value sealed under an explicit ``key``/``kid`` (for wrong-key cases)."""
    return dict(state, value=envelope.seal(key, kid, topic, state["seq"], state["value"]))
