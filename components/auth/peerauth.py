"""
Who may open a router-to-router link (Crossbar ``rlinks``) into this node:
``reactive.auth.peer`` is the dynamic WAMP-cryptosign authenticator of the
internal ``/rlink`` WebSocket. The remote leg of an rlink signs with its
node key (``key.priv`` in its node directory); the key is accepted when it
is listed in ``RLINK_PEER_KEYS`` (hex Ed25519 public keys, comma or space
separated) or, when that is unset, when it is this node's own public key --
the usual deployment shares one node key (a Secret) across client nodes.
Accepted peers get the role ``rlink``.
"""

import os

from components.auth import AUTH_INVALID_TOKEN, PEER_AUTHENTICATE, auth_settings
from components.auth.auth_refused import AuthRefused
from components.core.component import HubComponent
ROLE = "rlink"
# the RLINK_PEER_KEYS text as a set of hex keys (ValueError for anything else)
parse_keys = auth_settings.parse_peer_keys


def node_public_key(directory):
    """This node's public key (hex) from ``<node dir>/key.pub``, or None before Crossbar created it."""
    try:
        with open(os.path.join(directory, "key.pub")) as handle:
            for line in handle:
                if line.startswith("public-key-ed25519:"):
                    return line.split(":", 1)[1].strip().lower()
    except FileNotFoundError:
        return None
    return None


class PeerPolicy:
    """Turns a cryptosign HELLO into the ``rlink`` principal, or raises AuthRefused."""

    def __init__(self, keys):
        self.keys = frozenset(keys)

    def authenticate(self, realm, authid, details):
        pubkey = ((details or {}).get("authextra") or {}).get("pubkey")
        if not isinstance(pubkey, str) or pubkey.lower() not in self.keys:
            raise AuthRefused("public key is not an accepted peer node key", uri=AUTH_INVALID_TOKEN)
        return {"pubkey": pubkey.lower(), "role": ROLE, "authid": "peer-" + pubkey[:16].lower(), "realm": realm}


class PeerAuthenticator(HubComponent):
    """Registers ``reactive.auth.peer``. Harmless where no ``/rlink`` path points at it."""

    def start(self):
        keys = self.settings.get(auth_settings.RLINK_PEER_KEYS)
        if not keys:
            own = node_public_key(self.node_directory)
            keys = {own} if own else set()
        self.policy = PeerPolicy(keys)
        d = self.register(self.policy.authenticate, PEER_AUTHENTICATE)
        d.addCallback(lambda _: self.log.info("peer authenticator ready ({count} accepted node keys)",
                                              count=len(keys)))
        return d
