"""
A real Django project as the master, on PostgreSQL and SQLite, at the
database level: the orders of Django's ``migrate`` and the hub's, the
initial snapshot of existing users, ORM / bulk / raw SQL writes captured,
``flush`` captured, a custom user model (``accounts_user``), a password
change through Django moving the credential version, and the clear errors
for a missing table or missing columns.
"""

import json

from twisted.internet import defer
from twisted.trial import unittest

from components.auth import credentials, master_tables
from components.auth.directory import Directory, UserTable
from components.auth.loginsessions import LoginSessions
from components.db.migrations import migrate_all
from components.usersync import master
from tests.django.support import DjangoProject
from tests.support.databases import OnPostgreSQL, OnSQLite

USERS = ("User.objects.create_user('ann', 'ann@example.com', 'pw-ann-123456', first_name='Ann')\n"
         "User.objects.create_user('bob', 'bob@example.com', 'pw-bob-123456', first_name='Bob')\n"
         "User.objects.create_superuser('root', 'root@example.com', 'pw-root-123456')\n")


class DjangoCaptureMixin:
    timeout = 240
    custom = False

    def setUp(self):
        self.project = DjangoProject(self.database_url(), custom=self.custom)
        self.db = self.project.database(self)

    @defer.inlineCallbacks
    def events(self, actions=("insert", "update", "delete")):
        rows = yield self.db.query(
            "SELECT username, action, version, payload FROM usersync_outbox WHERE action IN ({}) ORDER BY id".format(
                ", ".join("'{}'".format(action) for action in actions)))
        return [(username, action, version, json.loads(payload)) for username, action, version, payload in rows]

    @defer.inlineCallbacks
    def by_user(self):
        found = {}
        for username, action, version, _ in (yield self.events()):
            found.setdefault(username, []).append((action, version))
        return found

    @defer.inlineCallbacks
    def installed(self, users=USERS):
        """Django's migrate, ``users`` created through the ORM, then the hub's ``usersync migrate``."""
        yield self.project.manage("migrate", "--noinput")
        if users:
            yield self.project.orm(users)
        result = yield self.project.hub("components.usersync", "migrate")
        return result

    @defer.inlineCallbacks
    def test_django_first_then_hub_snapshots_existing_users_once(self):
        """Users made before the hub's capture existed are queued once, staff included; Django's migrate stays happy."""
        yield self.installed()
        events = yield self.events()
        self.assertEqual(sorted((username, action, version) for username, action, version, _ in events),
                         [("ann", "insert", 1), ("bob", "insert", 1), ("root", "insert", 1)])
        ann = next(payload for username, _, _, payload in events if username == "ann")
        self.assertEqual(ann, {"username": "ann", "first_name": "Ann", "last_name": "", "email": "ann@example.com",
                               "is_active": True})
        yield self.project.hub("components.usersync", "migrate")
        self.assertEqual(len((yield self.events())), 3)
        yield self.project.manage("migrate", "--noinput")
        resync = yield self.project.hub("components.usersync", "resync", "--client", "late")
        self.assertIn("3 user events", resync.stdout)
        self.assertIn("users 3 read", resync.stderr)
        # a resync keeps each user's version: clients holding it ignore the copy
        self.assertEqual(sorted(version for _, _, version, _ in (yield self.events())), [1] * 6)

    @defer.inlineCallbacks
    def test_hub_first_then_django_migrate(self):
        """The hub's own migrate leaves a Django-owned auth_user alone; Django's migrate then works and is captured."""
        # what the login resource and the authenticator run at start (AUTH_USER_TABLE_OWNER=django)
        yield migrate_all(self.db, master_tables.master_schemas(UserTable(self.project.table, "django"))
                          + [master.OUTBOX_SCHEMA])
        tables = yield self.db.run(lambda cursor: master_tables.directory.columns_of(cursor, self.project.table))
        self.assertIsNone(tables)
        yield self.project.manage("migrate", "--noinput")
        yield self.project.hub("components.usersync", "migrate")
        yield self.project.orm("User.objects.create_user('cat', password='pw-cat-123456')")
        self.assertEqual((yield self.by_user()), {"cat": [("insert", 1)]})

    @defer.inlineCallbacks
    def test_orm_bulk_and_raw_sql_writes_are_captured(self):
        """create/save, bulk_create, queryset update, bulk_update, raw SQL and delete each become versioned events."""
        yield self.installed(users=None)
        yield self.project.orm(
            "from django.utils import timezone\n"
            "u = User.objects.create_user('bea', password='pw-bea-123456', first_name='Bea')\n"
            "u.first_name = 'Beatrice'\nu.save()\n"
            "User.objects.bulk_create([User(username='c1', first_name='C1'), User(username='c2')])\n"
            "User.objects.filter(username__in=['c1', 'c2']).update(last_name='Bulk')\n"
            "objs = list(User.objects.filter(username__in=['c1', 'c2']))\n"
            "for o in objs: o.email = o.username + '@example.com'\n"
            "User.objects.bulk_update(objs, ['email'])\n"
            "with connection.cursor() as c: c.execute('UPDATE {} SET first_name = %s WHERE username = %s',"
            " ['Raw', 'bea'])\n"
            "User.objects.filter(username='bea').update(last_login=timezone.now())\n"
            "User.objects.filter(username='c2').delete()\n".format(self.project.table))
        self.assertEqual((yield self.by_user()), {
            "bea": [("insert", 1), ("update", 2), ("update", 3)],
            "c1": [("insert", 1), ("update", 2), ("update", 3)],
            "c2": [("insert", 1), ("update", 2), ("update", 3), ("delete", 4)]})
        events = yield self.events()
        self.assertEqual([payload["first_name"] for username, _, _, payload in events if username == "bea"],
                         ["Bea", "Beatrice", "Raw"])

    @defer.inlineCallbacks
    def test_django_password_change_moves_the_credential_version(self):
        """set_password + save in Django: the credential version moves, login sessions end, the hub verifies it."""
        yield self.installed()
        sessions = LoginSessions(self.db, lifetime=3600)
        session_id = yield sessions.create("ann")
        before = yield self.db.run(credentials.version_of, "ann")
        yield self.project.orm("u = User.objects.get(username='ann')\nu.set_password('a-new-pass-123')\nu.save()")
        after = yield self.db.run(credentials.version_of, "ann")
        self.assertGreater(after[0], before[0])
        self.assertIsNone((yield sessions.lookup(session_id)))
        revocations = yield self.events(actions=("credential",))
        self.assertIn(("ann", "credential", after[0]), [row[:3] for row in revocations])
        directory = Directory(self.db, iterations=1000, table=self.project.table)
        self.assertIsNotNone((yield directory.authenticate("ann", "a-new-pass-123")))
        self.assertIsNone((yield directory.authenticate("ann", "pw-ann-123456")))

    @defer.inlineCallbacks
    def test_flush_deletes_every_synced_user_and_recreated_users_continue_above(self):
        """manage.py flush: a versioned delete per user (TRUNCATE on PostgreSQL); a re-created user goes higher."""
        yield self.installed()
        yield self.project.manage("flush", "--noinput")
        found = yield self.by_user()
        self.assertEqual(found, {name: [("insert", 1), ("delete", 2)] for name in ("ann", "bob", "root")})
        yield self.project.orm("User.objects.create_user('ann', password='pw-ann-123456')")
        self.assertEqual((yield self.by_user())["ann"][-1], ("insert", 3))
        # the flushed users' rights ended too
        self.assertGreater((yield self.db.run(credentials.version_of, "bob"))[0], 0)

    @defer.inlineCallbacks
    def test_missing_table_or_columns_is_a_clear_error(self):
        """A Django-owned table that is missing, or a table without AbstractUser's columns: exit 78 (configuration), no table made."""
        missing = yield self.project.hub("components.usersync", "migrate", expect=78)
        self.assertIn("user table {} does not exist yet".format(self.project.table), missing.stderr)
        adduser = yield self.project.hub("components.auth", "adduser", "eve", "--password-stdin", expect=78,
                                         stdin="pw-eve-123456\n")
        self.assertIn("does not exist yet", adduser.stderr)
        self.assertIsNone((yield self.db.run(lambda cursor: master_tables.directory.columns_of(cursor, "auth_user"))))
        yield self.db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, username VARCHAR(150), email TEXT)")
        columns = yield self.project.hub("components.usersync", "migrate", expect=78,
                                         env={"AUTH_USER_TABLE": "people"})
        self.assertIn("user table people lacks the columns password, last_login, is_superuser", columns.stderr)
        bad = yield self.project.hub("components.usersync", "migrate", expect=78,
                                     env={"AUTH_USER_TABLE": "people; DROP TABLE people"})
        self.assertIn("plain SQL identifier", bad.stderr)
        self.assertIsNone((yield self.db.run(lambda cursor: master_tables.directory.columns_of(cursor, "auth_user"))))


class PostgreSQLDjangoCaptureTests(OnPostgreSQL, DjangoCaptureMixin, unittest.TestCase):
    pass


class SQLiteDjangoCaptureTests(OnSQLite, DjangoCaptureMixin, unittest.TestCase):
    pass
