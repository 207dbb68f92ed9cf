"""
The app's settings: Django's ``HUB`` dict, else the environment, else the
hub's defaults, read through :class:`components.core.settings.Settings`
like every other part of the hub. The JWT settings are the hub's own
(``JWT_SECRET``, or ``JWT_PUBLIC_KEY_FILE`` + ``JWT_PRIVATE_KEY_FILE``;
``JWT_ISSUER``, ``JWT_AUDIENCE``, ``JWT_TTL``), so the tokens verify at the
router; ``HUB_DATABASE`` names the Django database alias that is the hub's
master database (default ``default``). Read once per process; a change of
``settings.HUB`` (``override_settings``) is picked up.
"""

import threading

from django.conf import settings as django_settings
from django.core.signals import setting_changed

from components.auth import token_signing
from components.core.settings import Settings
from components.django_hub import django_hub_settings
from components.e2e import e2e_settings

DEFAULT_DATABASE = django_hub_settings.HUB_DATABASE.default

_lock = threading.Lock()
_cached = {}


class HubSettings:
    """What the view and the logout receiver need, built from one :class:`Settings`."""

    def __init__(self, extra=None, environ=None):
        self.settings = Settings(extra, environ=environ)
        self.database = self.settings.get(django_hub_settings.HUB_DATABASE)
        self.e2e = self.settings.get(e2e_settings.E2E_ENCRYPTION)
        keys, issuer, audience, ttl = token_signing.from_settings(self.settings)
        self.issuer = token_signing.TokenIssuer(keys, issuer, audience, ttl)

    @property
    def ttl(self):
        return self.issuer.ttl


def hub_settings():
    """The process's :class:`HubSettings` (raises SettingsError / KeyConfigError when they are unusable)."""
    with _lock:
        if "value" not in _cached:
            _cached["value"] = HubSettings(getattr(django_settings, "HUB", None) or {})
        return _cached["value"]


def _forget(setting, **kwargs):
    if setting == "HUB":
        with _lock:
            _cached.clear()


setting_changed.connect(_forget)
