"""
What components use: ``PrivatePayloads.seal_state(username, topic, state)``
replaces ``state["value"]`` with an envelope for that user when encryption
is on (``E2E_ENCRYPTION=on``), and leaves the state untouched when it is off.
``seq`` and ``ts`` stay readable for ordering; they are bound into the
envelope, so they cannot be changed without the browser noticing.
"""

from twisted.internet import defer

from components.e2e import envelope


class PrivatePayloads:
    """
    Seals per-user state dicts with the active data key of the user's
    current identity (:mod:`components.e2e.keys`); a store that is behind on
    the user's identity seals nothing (``reactive.error.unavailable``).
    """

    def __init__(self, user_keys, enabled):
        self.user_keys = user_keys
        self.enabled = enabled

    @defer.inlineCallbacks
    def seal_state(self, username, topic, state):
        if not self.enabled or state is None:
            return state
        kid, key = yield self.user_keys.current(username)
        sealed = dict(state)
        sealed["value"] = envelope.seal(key, kid, topic, state["seq"], state["value"])
        return sealed

    @defer.inlineCallbacks
    def open_state(self, username, topic, state):
        """The inverse, for tests and the debugging CLI."""
        value = state["value"]
        if not envelope.is_envelope(value):
            return state
        kid = envelope.parse(value)[0]
        key = yield self.user_keys.key(username, kid)
        if key is None:
            raise envelope.EnvelopeError("unknown_key", "no usable key {!r} for {!r}".format(kid, username))
        opened = dict(state)
        opened["value"] = envelope.open_envelope(key, topic, state["seq"], value)
        return opened
