"""
``components.django_hub.push`` from a real Django project
(tests/django/login_once_settings.py, ``manage.py shell`` in a subprocess)
to a real node's ``POST /apps/publish``, with the project on SQLite and on
PostgreSQL: an event pushed in a transaction that commits reaches a
subscribed user session, one pushed in a transaction that rolls back never
does, ``to_users`` reaches only those users, and the outbox keeps what a
failed send missed until ``hub_push_relay`` delivers it.
"""

import subprocess
import sys
import uuid

from twisted.internet import defer, threads
from twisted.trial import unittest

from components.applications.app_registry import AppRegistry
from components.core.settings import Settings
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek
from tests.django.test_login_once import django_env
from tests.support.databases import OnPostgreSQL, OnSQLite
from tests.support.clients import connect
from tests.support.node import REPO, free_port, shared_node
from tests.support.polling import eventually

# the Django side, formatted with the application's name
PUSHES = """
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from components.django_hub import push
from django.db import connection
call_command("migrate", verbosity=0)
print("vendor", connection.vendor)
User = get_user_model()

class RolledBack(Exception):
    pass

try:
    with transaction.atomic():
        User.objects.create(username="rolled")
        push("app.{name}.orders", "rolled back")
        raise RolledBack()
except RolledBack:
    pass
with transaction.atomic():
    User.objects.create(username="kept")
    push("app.{name}.orders", "for alice", to_users=["alice"])
    push("app.{name}.orders", "committed", n=1)
print("users", sorted(User.objects.values_list("username", flat=True)))
"""

# with HUB_PUSH_OUTBOX and a hub that cannot be reached: the committed event stays in the outbox
OUTBOX_PUSHES = """
from django.core.management import call_command
from django.db import transaction
from components.django_hub import push
from components.django_hub.models import PendingPush
from django.db import connection
call_command("migrate", verbosity=0)
print("vendor", connection.vendor)

class RolledBack(Exception):
    pass

try:
    with transaction.atomic():
        push("app.{name}.orders", "rolled back")
        raise RolledBack()
except RolledBack:
    pass
with transaction.atomic():
    push("app.{name}.orders", "kept", to_users=["alice"])

from components.django_hub import push_outbox
def broken(*args, **kwargs):
    raise RuntimeError("the outbox's database went away")
push_outbox.deliver = broken   # the send after the commit fails: the committer goes on, the row stays
with transaction.atomic():
    push("app.{name}.orders", "second", to_users=["alice"])
print("outbox", list(PendingPush.objects.values_list("topic", flat=True)))
"""


class PushMixin:
    """The push tests; a subclass names the Django project's database (``database_url()``, ``vendor``)."""
    timeout = 240

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node()
        settings = Settings(environ=self.node.env, node_directory=self.node.directory)
        registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        self.addCleanup(registry.db.close)
        self.name = "dj" + uuid.uuid4().hex[:12]  # unique on the shared node
        self.key, self.secret = yield registry.add(self.name)

    def django(self, *args, **env):
        """``python -m django <args>`` on this test's database with the push settings and ``env``."""
        if not hasattr(self, "django_database"):
            self.django_database = self.database_url()
        environ = django_env(self.django_database)
        environ.update({"HUB_PUSH_URL": self.node.http, "HUB_APP_KEY": self.key,
                        "HUB_APP_SECRET": self.secret})
        environ.update(env)
        done = subprocess.run([sys.executable, "-m", "django"] + list(args), env=environ, cwd=REPO,
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise AssertionError("django {} failed:\n{}{}".format(args[0], done.stdout, done.stderr))
        return done.stdout + done.stderr

    @defer.inlineCallbacks
    def test_commit_rollback_and_to_users(self):
        """The committed transaction's events arrive (the to_users one only at alice), the rolled-back one
        never: it was pushed first by the same publisher, so it would have arrived before the others."""
        alice = yield connect(self, self.node, sub="alice")
        bob = yield connect(self, self.node, sub="bob")
        got = {"alice": [], "bob": []}
        topic = "app.{}.orders".format(self.name)
        for name, client in (("alice", alice), ("bob", bob)):
            yield client.session.subscribe(
                lambda *args, name=name, **kwargs: got[name].append((args, kwargs)), topic)
        output = yield threads.deferToThread(self.django, "shell", "-c", PUSHES.format(name=self.name))
        self.assertIn("vendor " + self.vendor, output)
        self.assertIn("users ['kept']", output)
        yield eventually(lambda: len(got["alice"]) >= 2 and len(got["bob"]) >= 1, timeout=60,
                         message="the committed events did not arrive", details=lambda: repr(got) + output)
        self.assertEqual(got["alice"], [(("for alice",), {}), (("committed",), {"n": 1})])
        self.assertEqual(got["bob"], [(("committed",), {"n": 1})])

    @defer.inlineCallbacks
    def test_outbox_survives_a_failed_send(self):
        """With HUB_PUSH_OUTBOX, an event whose send after the commit failed (hub unreachable) stays in the
        outbox and ``manage.py hub_push_relay --once`` delivers it later; a rolled-back push left no row; a
        send that raises after the commit is logged, not raised into the committing code."""
        alice = yield connect(self, self.node, sub="alice")
        got = []
        yield alice.session.subscribe(lambda *args, **kwargs: got.append(args),
                                      "app.{}.orders".format(self.name))
        output = yield threads.deferToThread(
            self.django, "shell", "-c", OUTBOX_PUSHES.format(name=self.name), HUB_PUSH_OUTBOX="on",
            HUB_PUSH_URL="http://127.0.0.1:{}".format(free_port()), HUB_PUSH_RETRIES="0")
        self.assertIn("vendor " + self.vendor, output)
        self.assertIn("outbox ['app.{0}.orders', 'app.{0}.orders']".format(self.name), output)
        self.assertEqual(got, [])
        yield threads.deferToThread(self.django, "hub_push_relay", "--once", HUB_PUSH_OUTBOX="on")
        yield eventually(lambda: len(got) >= 2, timeout=60, message="the relay did not deliver the outbox")
        self.assertEqual(got, [("kept",), ("second",)])
        left = yield threads.deferToThread(self.django, "shell", "-c",
                                           "from components.django_hub.models import "
                                           "PendingPush\nprint('left', PendingPush.objects.count())")
        self.assertIn("left 0", left)


class SQLitePushTests(OnSQLite, PushMixin, unittest.TestCase):
    vendor = "sqlite"


class PostgreSQLPushTests(OnPostgreSQL, PushMixin, unittest.TestCase):
    """The relay takes rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` here; each Django command holds one
    connection (no persistent connections), so the server's connection limit is not at stake."""
    vendor = "postgresql"
