"""
Development secrets. A development node generates the secrets it is not
given (the HS256 JWT secret, the end-to-end key-encryption key, the
user-sync signing key) once, in its node directory, mode 0600
(:mod:`components.core.secretfiles`). A production node never runs on them:
asking for one there raises :class:`DevelopmentSecretRefused`, a
SettingsError naming what to set, which the component base and the web
resources turn into the one-line refusal (:mod:`components.core.refusal`).

A node is a production node when ``HUB_ENV`` says ``production``, or, with
``HUB_ENV`` unset, when its node config says so: the production configs
(``master.json``, ``client.json``, made by :mod:`components.node.topology`)
give every worker the environment variable ``HUB_CONFIG_ENV=production``.
A command run on a production host (``reactive-hub device``, ``token``,
``e2e``) has no such marker: it counts the node directory it is given as a
production node when that holds a production config and no ``config.json``
(the node's own environment must then name the secrets, as the node has them).
``HUB_ENV=development`` overrides a production config on purpose.
"""

import os

from components.core import core_settings
from components.core.secretfiles import read_or_create_secret
from components.core.settings import KeyConfigError

PRODUCTION = "production"
# set by a node config for its workers (never read from an operator's documentation: HUB_ENV is the setting)
CONFIG_MARKER = "HUB_CONFIG_ENV"
# the node configs of a production node directory (components.node.topology writes them), and the development one
PRODUCTION_CONFIGS = ("master.json", "client.json")
DEVELOPMENT_CONFIG = "config.json"


class DevelopmentSecretRefused(KeyConfigError):
    """A production node was about to use a generated development secret; ``fix`` says what to set."""

    def __init__(self, what, fix, reason):
        KeyConfigError.__init__(self, "{} is not configured on this production node ({})".format(what, reason))
        self.fix = fix + "; a production node never runs on generated development secrets"


def production_reason(settings):
    """Why this node counts as a production node (``HUB_ENV`` or its config's marker), or None."""
    explicit = settings.get(core_settings.HUB_ENV)
    if explicit:
        return "HUB_ENV=production" if explicit == PRODUCTION else None
    if str(settings.environ.get(CONFIG_MARKER, "")).strip().lower() == PRODUCTION:
        return "its node config is a production config"
    config = production_config_in(settings.node_directory)
    if config is not None:
        return "its node directory holds the production config {} and no {}".format(config, DEVELOPMENT_CONFIG)
    return None


def production_config_in(directory):
    """The production config ``directory`` holds when it holds no development config, else None."""
    if not directory or os.path.exists(os.path.join(directory, DEVELOPMENT_CONFIG)):
        return None
    for name in PRODUCTION_CONFIGS:
        if os.path.exists(os.path.join(directory, name)):
            return name
    return None


def require_development(settings, what, fix):
    """Raise DevelopmentSecretRefused (``what`` is missing, ``fix`` what to set) on a production node."""
    reason = production_reason(settings)
    if reason is not None:
        raise DevelopmentSecretRefused(what, fix, reason)


def refuse_dev_file(settings, path, relative_path, what, fix):
    """
    On a production node, DevelopmentSecretRefused when ``path`` (a
    configured key file) is the node directory's generated development file
    at ``relative_path`` (compared with links resolved).
    """
    reason = production_reason(settings)
    dev_file = os.path.join(settings.node_directory, relative_path)
    if reason is not None and os.path.realpath(path) == os.path.realpath(dev_file):
        raise DevelopmentSecretRefused(what, fix, "{}; {} is the generated development file".format(reason, path))


def dev_secret(settings, relative_path, what, fix, make=None):
    """
    The development secret at ``relative_path`` in the node directory
    (created on first use with ``make``, see ``read_or_create_secret``);
    on a production node DevelopmentSecretRefused (:func:`require_development`).
    """
    require_development(settings, what, fix)
    path = os.path.join(settings.node_directory, relative_path)
    return read_or_create_secret(path) if make is None else read_or_create_secret(path, make=make)
