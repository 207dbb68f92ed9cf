"""
Key material for a production deployment, created once into a directory
(never the repository):

- ``jwt.key`` / ``jwt.pub``: the master's Ed25519 token key pair (PEM). The
  master gets both (``JWT_PRIVATE_KEY_FILE``, ``JWT_PUBLIC_KEY_FILE``), the
  client nodes only ``jwt.pub``.
- ``node/key.priv`` / ``node/key.pub``: one Crossbar node key shared by the
  client nodes (copied into each node directory before ``crossbar start``),
  so each accepts the others' router-to-router links.
- ``usersync.key`` / ``usersync.pub``: the master's Ed25519 key pair that
  signs every user-sync message (``USERSYNC_SIGNING_KEY_FILE`` on the
  master, ``USERSYNC_VERIFY_KEY_FILES`` on the clients, which get only the
  public key). ``--usersync-key NAME`` makes another pair ``NAME.key`` /
  ``NAME.pub`` for a rotation (docs/usersync.md, "Signed messages").
- ``e2e_kek``: the end-to-end key-encryption key (base64url of 32 bytes)
  shared by the master and every client node (``E2E_KEK_FILE``): each node
  unwraps per-user data keys that another node may have created.

``reactive-hub keys DIRECTORY`` (``python -m components.auth.keygen DIRECTORY``)
keeps files that exist (idempotent) and writes new ones with mode 0600
(public keys 0644). It prints the settings that point at them; ``--json``
prints them as one object (``JWT_PRIVATE_KEY_FILE``, ``JWT_PUBLIC_KEY_FILE``,
``USERSYNC_SIGNING_KEY_FILE``, ``USERSYNC_VERIFY_KEY_FILES``,
``E2E_KEK_FILE``, ``node_key``).
"""

import argparse
import json
import os
import re
import secrets
import subprocess
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from components.core.exits import outcome
from components.e2e.envelope import KEY_BYTES, b64encode
from components.core.secretfiles import read_or_create_secret


def _write(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def private_pem(private_key):
    """PEM (PKCS#8, unencrypted) of a private key."""
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def public_pem(public_key):
    """PEM (SubjectPublicKeyInfo) of a public key."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def ed25519_pair(directory, name):
    """Create ``<name>.key`` (0600) / ``<name>.pub`` (0644) unless both exist; return their paths."""
    private, public = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".pub")
    if os.path.exists(private) and os.path.exists(public):
        return private, public
    key = ed25519.Ed25519PrivateKey.generate()
    for path in (private, public):
        if os.path.exists(path):
            os.remove(path)
    _write(private, private_pem(key), 0o600)
    _write(public, public_pem(key.public_key()), 0o644)
    return private, public


def jwt_keys(directory):
    """Create ``jwt.key``/``jwt.pub`` unless both exist; return their paths."""
    return ed25519_pair(directory, "jwt")


def usersync_keys(directory, name="usersync"):
    """Create the user-sync signing pair ``<name>.key``/``<name>.pub`` unless both exist; return their paths."""
    return ed25519_pair(directory, name)


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


def inside_checkout(directory):
    """
    The root of the git checkout ``directory`` would land in (a parent holding
    ``.git``), or None; a node directory's ``secrets`` folder (git-ignored) is
    not counted.
    """
    path = os.path.abspath(directory)
    parts = path.split(os.sep)
    if "secrets" in parts and parts.index("secrets") > 0 and parts[parts.index("secrets") - 1] == ".crossbar":
        return None
    folder = path
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def main(argv=None, prog="python -m components.auth.keygen"):
    """The command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="where the keys go (created 0700; never inside the repository)")
    parser.add_argument("--usersync-key", default="usersync", metavar="NAME",
                        help="name of the user-sync signing pair (default usersync; another name for a rotation)")
    parser.add_argument("--json", action="store_true", help="print the settings as JSON for scripts")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", args.usersync_key):
        parser.error("--usersync-key: letters, digits, - and _ only")
    checkout = inside_checkout(args.directory)
    if checkout is not None:
        raise SystemExit("{} is inside the git checkout {}, where private keys are one `git add` from being "
                         "published: give a directory outside it (e.g. ~/hub-keys)".format(args.directory, checkout))
    os.makedirs(args.directory, mode=0o700, exist_ok=True)
    private, public = jwt_keys(args.directory)
    sign, verify = usersync_keys(args.directory, args.usersync_key)
    kek = e2e_kek(args.directory)
    target = node_key(args.directory)
    if args.json:
        sys.stdout.write(json.dumps({"JWT_PRIVATE_KEY_FILE": private, "JWT_PUBLIC_KEY_FILE": public,
                                     "USERSYNC_SIGNING_KEY_FILE": sign, "USERSYNC_VERIFY_KEY_FILES": verify,
                                     "E2E_KEK_FILE": kek, "node_key": target}) + "\n")
        return 0
    sys.stdout.write("JWT_PRIVATE_KEY_FILE={}\nJWT_PUBLIC_KEY_FILE={}\nUSERSYNC_SIGNING_KEY_FILE={}\n"
                     "USERSYNC_VERIFY_KEY_FILES={}\nE2E_KEK_FILE={}\nnode key: {}\n".format(
                         private, public, sign, verify, kek, target))
    return 0


if __name__ == "__main__":
    sys.exit(outcome(main))
