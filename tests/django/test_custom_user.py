"""
The Django master tests of :mod:`tests.django.test_capture` again with a
custom user model: ``AUTH_USER_MODEL = "accounts.User"`` (table
``accounts_user``, one extra column) and ``AUTH_USER_TABLE=accounts_user``,
plus what is particular to it.
"""

from twisted.internet import defer
from twisted.trial import unittest

from components.auth import master_tables
from components.auth.directory import Directory
from tests.django.test_capture import DjangoCaptureMixin
from tests.support.databases import OnPostgreSQL, OnSQLite


class CustomUserModelMixin(DjangoCaptureMixin):
    """AUTH_USER_MODEL = "accounts.User" (table accounts_user, one extra column) with AUTH_USER_TABLE=accounts_user."""

    custom = True

    @defer.inlineCallbacks
    def test_custom_user_model_is_the_directory(self):
        """The hub works on accounts_user (capture, snapshot, logins) and never makes an auth_user beside it."""
        yield self.installed()
        self.assertIsNone((yield self.db.run(lambda cursor: master_tables.directory.columns_of(cursor, "auth_user"))))
        yield self.project.orm("User.objects.filter(username='ann').update(nickname='annie')\n"
                               "User.objects.filter(username='bob').update(first_name='Robert')")
        self.assertEqual((yield self.by_user()), {"ann": [("insert", 1)], "bob": [("insert", 1), ("update", 2)],
                                                  "root": [("insert", 1)]})
        directory = Directory(self.db, iterations=1000, table="accounts_user")
        user = yield directory.authenticate("root", "pw-root-123456")
        self.assertTrue(user["is_superuser"] and user["is_staff"])
        added = yield self.project.hub("components.auth", "adduser", "hubroot", "--superuser", "--password-stdin",
                                       stdin="pw-hubroot-1234\n")
        self.assertIn("ok: adduser hubroot", added.stdout)
        flags = yield self.project.orm("u = User.objects.get(username='hubroot')\n"
                                       "result = [u.is_staff, u.is_superuser, u.check_password('pw-hubroot-1234')]")
        self.assertEqual(flags, [True, True, True])


class PostgreSQLCustomUserTests(OnPostgreSQL, CustomUserModelMixin, unittest.TestCase):
    pass


class SQLiteCustomUserTests(OnSQLite, CustomUserModelMixin, unittest.TestCase):
    pass
