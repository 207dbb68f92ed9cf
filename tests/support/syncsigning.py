"""
Signing keys for user-sync tests: one test key pair (``SIGNER`` and the
``VERIFIER`` of its public key), and the signer of a node's dev key, to put
messages on a queue that the node's client bridge takes as the master's.
"""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.usersync import message_signing

KEY = Ed25519PrivateKey.generate()
SIGNER = message_signing.Signer(KEY)
VERIFIER = message_signing.Verifier([KEY.public_key()])


def node_signer(node):
    """The Signer of ``node``'s dev key (the key its master signs with and its client trusts)."""
    return message_signing.Signer(message_signing.dev_private_key(node.directory))
