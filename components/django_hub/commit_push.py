"""
``push(topic, *args, to_users=None, using=None, **kwargs)``: publish an
event through the hub after the surrounding transaction (of database alias
``using``, default ``default``) commits, and never when it rolls back
(``transaction.on_commit``, robust: a send that raises is logged by
Django, never raised into the committing code); outside a transaction it
is sent at once. The
event is encoded when ``push`` is called, so a bad argument raises there.

Delivery: the send runs in the committing thread after the commit, with
``HUB_PUSH_RETRIES`` retries (:mod:`components.django_hub.app_publisher`).
Without the outbox an event is lost when every attempt fails or the process
dies between the commit and the send. With ``HUB_PUSH_OUTBOX`` the event is
first written to the outbox table in the same transaction
(:mod:`components.django_hub.push_outbox`); what the on-commit send could not
deliver, ``manage.py hub_push_relay`` sends later, so a committed event is
not lost. Either way an event may arrive twice when the hub published it but
its answer was lost.

Settings (Django's ``HUB`` dict, else the environment): ``HUB_PUSH_URL``,
``HUB_APP_KEY``, ``HUB_APP_SECRET``, ``HUB_PUSH_TIMEOUT``,
``HUB_PUSH_RETRIES``, ``HUB_PUSH_OUTBOX``. Imports neither Twisted nor Crossbar.
"""

import threading

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS, transaction

from components.core.settings import Settings, SettingsError
from components.django_hub import django_hub_settings as names
from components.django_hub.app_publisher import AppPublisher

_lock = threading.Lock()
_cached = {}


def publisher():
    """The process's :class:`AppPublisher` from the settings; SettingsError when the URL or key is unset."""
    with _lock:
        if "value" not in _cached:
            settings = Settings(getattr(django_settings, "HUB", None) or {})
            url, key, secret = (settings.get(names.HUB_PUSH_URL), settings.get(names.HUB_APP_KEY),
                                settings.get(names.HUB_APP_SECRET))
            if not (url and key and secret):
                raise SettingsError("push needs HUB_PUSH_URL, HUB_APP_KEY and HUB_APP_SECRET (Django's HUB "
                                    "dict or the environment); see `reactive-hub app add NAME`")
            _cached["value"] = AppPublisher(url, key, secret, settings.get(names.HUB_PUSH_TIMEOUT),
                                            settings.get(names.HUB_PUSH_RETRIES))
            _cached["outbox"] = settings.get(names.HUB_PUSH_OUTBOX)
        return _cached["value"]


def outbox_enabled():
    """Whether ``push`` writes to the outbox (``HUB_PUSH_OUTBOX``)."""
    publisher()
    return _cached["outbox"]


def push(topic, *args, to_users=None, using=None, **kwargs):
    """Send ``topic(*args, **kwargs)`` (to ``to_users`` only, when given) once the transaction commits."""
    sender, using = publisher(), using or DEFAULT_DB_ALIAS
    body = sender.body(topic, args, kwargs, to_users)
    if not outbox_enabled():
        transaction.on_commit(lambda: sender.send(topic, body), using=using, robust=True)
        return
    from components.django_hub import push_outbox   # the model: only once Django's apps are loaded
    row_id = push_outbox.write(topic, body, using)
    transaction.on_commit(lambda: push_outbox.deliver(sender, using, ids=[row_id]), using=using, robust=True)


def _forget(setting, **kwargs):
    if setting == "HUB":
        with _lock:
            _cached.clear()


setting_changed.connect(_forget)
