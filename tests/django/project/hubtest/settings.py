"""
A small Django project that shares its database with the hub, as a Django
shop adopting it would. Driven by the environment:

- ``HUBTEST_DATABASE_URL``: ``postgresql://user@host:port/name`` or ``sqlite:////path/to/file.db``;
- ``HUBTEST_CUSTOM_USER=1``: the ``accounts`` app with ``AUTH_USER_MODEL = "accounts.User"`` (table ``accounts_user``);
- ``HUBTEST_HUB_APP=1``: the hub's Django app (``components.django_hub``, ``POST /hub/token``), its settings
  (JWT, ``HUB_PUSH_URL`` ...) from the environment;
- ``HUBTEST_HASHER``: the first of ``PASSWORD_HASHERS`` by class name (default: ``FastPBKDF2PasswordHasher``,
  Django's ``pbkdf2_sha256`` format at 1000 iterations, so tests stay fast).
"""

import os
from urllib.parse import urlparse

SECRET_KEY = "hubtest-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "hubtest.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware"]

if os.environ.get("HUBTEST_CUSTOM_USER") == "1":
    INSTALLED_APPS.append("accounts")
    AUTH_USER_MODEL = "accounts.User"
if os.environ.get("HUBTEST_HUB_APP") == "1":
    INSTALLED_APPS.append("components.django_hub")

_url = urlparse(os.environ["HUBTEST_DATABASE_URL"])
if _url.scheme == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _url.path}}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": _url.path.lstrip("/"),
                             "USER": _url.username or "", "PASSWORD": _url.password or "",
                             "HOST": _url.hostname or "", "PORT": str(_url.port or "")}}

_HASHERS = ["hubtest.hashers.FastPBKDF2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
            "django.contrib.auth.hashers.Argon2PasswordHasher",
            "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
            "django.contrib.auth.hashers.ScryptPasswordHasher"]
_first = os.environ.get("HUBTEST_HASHER") or "FastPBKDF2PasswordHasher"
PASSWORD_HASHERS = ([name for name in _HASHERS if name.endswith("." + _first)] if _first else []) + [
    name for name in _HASHERS if not _first or not name.endswith("." + _first)]
