"""
Key material for a production deployment, created once into a directory
(never the repository):

- ``jwt.key`` / ``jwt.pub``: the master's Ed25519 token key pair (PEM). The
  master gets both (``JWT_PRIVATE_KEY_FILE``, ``JWT_PUBLIC_KEY_FILE``), the
  client nodes only ``jwt.pub``.
- ``node/key.priv`` / ``node/key.pub``: one Crossbar node key shared by the
  client nodes (copied into each node directory before ``crossbar start``),
  so each accepts the others' router-to-router links.
- ``e2e_kek``: the end-to-end key-encryption key (base64url of 32 bytes)
  shared by the master and every client node (``E2E_KEK_FILE``): each node
  unwraps per-user data keys that another node may have created.

``python -m components.auth.keygen DIRECTORY`` keeps files that exist (idempotent)
and writes new ones with mode 0600 (public keys 0644).
"""

import argparse
import os
import secrets
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from components.e2e.envelope import KEY_BYTES, b64encode
from components.core.secretfiles import read_or_create_secret


def _write(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def jwt_keys(directory):
    """Create ``jwt.key``/``jwt.pub`` unless both exist; return their paths."""
    private, public = os.path.join(directory, "jwt.key"), os.path.join(directory, "jwt.pub")
    if os.path.exists(private) and os.path.exists(public):
        return private, public
    key = ed25519.Ed25519PrivateKey.generate()
    for path in (private, public):
        if os.path.exists(path):
            os.remove(path)
    _write(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()), 0o600)
    _write(public, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    return private, public


def e2e_kek(directory):
    """Create the shared key-encryption key ``e2e_kek`` (mode 0600) unless it exists; return its path."""
    path = os.path.join(directory, "e2e_kek")
    read_or_create_secret(path, make=lambda: b64encode(secrets.token_bytes(KEY_BYTES)))
    return path


def node_key(directory, crossbar=None):
    """Create the shared Crossbar node key in ``directory/node`` (with ``crossbar keys``) unless it exists."""
    target = os.path.join(directory, "node")
    os.makedirs(target, mode=0o700, exist_ok=True)
    if not os.path.exists(os.path.join(target, "key.priv")):
        crossbar = crossbar or os.path.join(os.path.dirname(sys.executable), "crossbar")
        subprocess.run([crossbar, "keys", "--cbdir", target], check=True, capture_output=True, timeout=120)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m components.auth.keygen", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    args = parser.parse_args(argv)
    os.makedirs(args.directory, mode=0o700, exist_ok=True)
    private, public = jwt_keys(args.directory)
    kek = e2e_kek(args.directory)
    target = node_key(args.directory)
    sys.stdout.write("JWT_PRIVATE_KEY_FILE={}\nJWT_PUBLIC_KEY_FILE={}\nE2E_KEK_FILE={}\nnode key: {}\n".format(
        private, public, kek, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
