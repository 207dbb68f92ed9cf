"""
A minimal Django project for the login-once tests, driven by the
environment: ``LOGIN_ONCE_DATABASE_URL`` (``sqlite:///path`` or
``postgresql://...``, the hub's master database too) and the hub's JWT
settings (``JWT_SECRET`` ...) read by ``components.django_hub`` from the
environment. Stock Django pieces only: sessions, auth, CSRF middleware,
``django.contrib.auth.urls`` (login form from a locmem template, POST
logout), and the app's one URL include. It is its own ``ROOT_URLCONF`` (``urlpatterns`` built on first use).
"""

import os
from urllib.parse import unquote, urlsplit

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "login-once-test-" + "k" * 40)
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]   # testserver: Django's test Client
USE_TZ = True
ROOT_URLCONF = __name__
LOGIN_REDIRECT_URL = "/accounts/login/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
# tests log in often; the hub never checks these passwords (the session is Django's)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "components.django_hub",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "OPTIONS": {
        "context_processors": ["django.template.context_processors.csrf"],
        "loaders": [("django.template.loaders.locmem.Loader", {
            "registration/login.html": '<form method="post">{% csrf_token %}{{ form }}</form>',
        })],
    },
}]


def _database(url):
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url[len("sqlite:///"):],
                "OPTIONS": {"timeout": 20}}
    if parts.scheme in ("postgres", "postgresql"):
        return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"),
                "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
                "HOST": parts.hostname or "", "PORT": str(parts.port or "")}
    raise ValueError("LOGIN_ONCE_DATABASE_URL must be sqlite:/// or postgresql://, got {!r}".format(url))


DATABASES = {"default": _database(os.environ.get("LOGIN_ONCE_DATABASE_URL", "sqlite:///login_once.db"))}


def __getattr__(name):
    """``urlpatterns``, built on first use (the URL modules import models, which settings may not)."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.urls import include, path
    return [path("accounts/", include("django.contrib.auth.urls")),
            path("hub/", include("components.django_hub.urls"))]


# errors (with tracebacks) and the app's log lines go to the server's output, the test's django.log
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"},
                "components": {"handlers": ["console"], "level": "INFO"}},
}
