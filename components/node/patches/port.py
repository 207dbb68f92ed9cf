"""
The web transport's port when ``PORT`` is not set.

The node configs give the router's web transport ``"port": "$PORT"``, and
Crossbar substitutes only a bare ``$VAR`` there (no ``${VAR:-default}``):
without ``PORT`` in the environment, ``crossbar check`` and ``crossbar start``
refuse the config. ``crossbar_site/sitecustomize.py`` calls ``apply_default``
in the ``crossbar`` command's own process, before it reads the config; its
workers inherit the environment, so the router listens on ``DEFAULT``. A
``PORT`` that is set (the Makefile, Docker, the test helpers) is kept.
"""

import os

from components.node.patches.worker import worker_class

DEFAULT = "8080"


def is_node_command(argv):
    """True for the ``crossbar`` command line itself (``crossbar start``, ``check``, ...), not its workers."""
    if worker_class(argv) is not None:
        return False
    args = list(argv[1:])
    while args and args[0].startswith("-"):
        args.pop(0)
    return bool(args) and os.path.basename(args[0]) == "crossbar"


def apply_default(argv, environ):
    """Set ``PORT`` to ``DEFAULT`` in ``environ`` for a ``crossbar`` command line without it; True if set now."""
    if not is_node_command(argv) or environ.get("PORT", "").strip():
        return False
    environ["PORT"] = DEFAULT
    return True
