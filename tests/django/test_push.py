"""
``components.django_hub.push`` from a real Django project
(tests/django/login_once_settings.py, ``manage.py shell`` in a subprocess)
to a real node's ``POST /apps/publish``: an event pushed in a transaction
that commits reaches a subscribed user session, one pushed in a transaction
that rolls back never does, and ``to_users`` reaches only those users.
"""

import os
import subprocess
import sys

from twisted.internet import defer, threads
from twisted.trial import unittest

from components.applications.app_registry import AppRegistry
from components.core.settings import Settings
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek
from tests.django.test_login_once import django_env
from tests.support.clients import connect
from tests.support.node import REPO, shared_node
from tests.support.polling import eventually

PUSHES = """
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from components.django_hub import push
call_command("migrate", verbosity=0)
User = get_user_model()

class RolledBack(Exception):
    pass

try:
    with transaction.atomic():
        User.objects.create(username="rolled")
        push("app.shop.orders", "rolled back")
        raise RolledBack()
except RolledBack:
    pass
with transaction.atomic():
    User.objects.create(username="kept")
    push("app.shop.orders", "for alice", to_users=["alice"])
    push("app.shop.orders", "committed", n=1)
print("users", sorted(User.objects.values_list("username", flat=True)))
"""


class PushTests(unittest.TestCase):
    timeout = 240

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("django-push")
        settings = Settings(environ=self.node.env, node_directory=self.node.directory)
        registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        self.addCleanup(registry.db.close)
        self.key, self.secret = yield registry.add("shop")

    def django_shell(self, code):
        env = django_env("sqlite:///" + os.path.abspath(self.mktemp()) + ".db")
        env.update({"HUB_PUSH_URL": self.node.http, "HUB_APP_KEY": self.key, "HUB_APP_SECRET": self.secret})
        done = subprocess.run([sys.executable, "-m", "django", "shell", "-c", code], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise AssertionError("django shell failed:\n{}{}".format(done.stdout, done.stderr))
        return done.stdout + done.stderr

    @defer.inlineCallbacks
    def test_commit_rollback_and_to_users(self):
        """The committed transaction's events arrive (the to_users one only at alice), the rolled-back one
        never: it was pushed first by the same publisher, so it would have arrived before the others."""
        alice = yield connect(self, self.node, sub="alice")
        bob = yield connect(self, self.node, sub="bob")
        got = {"alice": [], "bob": []}
        for name, client in (("alice", alice), ("bob", bob)):
            yield client.session.subscribe(lambda *args, name=name, **kwargs: got[name].append((args, kwargs)),
                                           "app.shop.orders")
        output = yield threads.deferToThread(self.django_shell, PUSHES)
        self.assertIn("users ['kept']", output)
        yield eventually(lambda: len(got["alice"]) >= 2 and len(got["bob"]) >= 1, timeout=60,
                         message="the committed events did not arrive", details=lambda: repr(got) + output)
        self.assertEqual(got["alice"], [(("for alice",), {}), (("committed",), {"n": 1})])
        self.assertEqual(got["bob"], [(("committed",), {"n": 1})])
