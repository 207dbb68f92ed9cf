"""
A registered device's credentials as a small env file, the form ``device add
--out`` writes and the simulator reads:

    # device NAME added; its secret is shown this once: store it in the device now
    DEVICE_NAME=NAME
    DEVICE_KEY=...
    DEVICE_SECRET=...

Its default home is ``<node dir>/secrets/devices/NAME.env`` (git-ignored in
the repository's ``.crossbar``), written with mode 0600; a shell may load it
with ``set -a; . FILE; set +a``.
"""

import os

FOLDER = os.path.join("secrets", "devices")


def env_text(verb, name, key, secret):
    """Shell assignments (a script may source them) after a comment line for people."""
    return ("# device {name} {verb}; its secret is shown this once: store it in the device now\n"
            "DEVICE_NAME={name}\nDEVICE_KEY={key}\nDEVICE_SECRET={secret}\n").format(
                name=name, verb=verb, key=key, secret=secret)


def default_path(node_directory, name):
    """Where ``device add NAME --out`` writes by default: ``<node dir>/secrets/devices/NAME.env``."""
    return os.path.join(node_directory, FOLDER, name + ".env")


def read(path):
    """``{variable: value}`` of an env file (comments and blank lines skipped); {} when there is none."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return {}
    found = {}
    for line in lines:
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            found[name.strip()] = value.strip()
    return found
