"""
``reactive-hub app``'s commands on a registry in a real SQLite file: add
prints the key and secret once (JSON for scripts), list shows private and
revoked applications without secrets, rotate and revoke.
"""

import io
import json
import secrets

from twisted.internet import defer
from twisted.trial import unittest

from components.applications import cli
from components.applications.app_registry import AppRegistry
from components.db.database import Database
from tests.support.databases import sqlite_url


class AppCommandTests(unittest.TestCase):
    timeout = 30

    def setUp(self):
        self.db = Database(sqlite_url(self))
        self.addCleanup(self.db.close)
        self.registry = AppRegistry(self.db, secrets.token_bytes(32))

    @defer.inlineCallbacks
    def app(self, *argv):
        out = io.StringIO()
        yield cli.run(cli.parser().parse_args(["app"] + list(argv)), self.registry, out)
        return out.getvalue()

    @defer.inlineCallbacks
    def test_add_list_rotate_revoke(self):
        added = json.loads((yield self.app("add", "shop", "--json")))
        self.assertEqual(sorted(added), ["key", "name", "secret"])
        self.assertEqual(added["name"], "shop")
        text = yield self.app("add", "payroll", "--private")
        self.assertIn("APP_SECRET=", text)
        out = yield self.app("list", "--json")
        listed = {item["name"]: item for item in json.loads(out)}
        self.assertEqual((listed["shop"]["key"], listed["shop"]["private"]), (added["key"], False))
        self.assertTrue(listed["payroll"]["private"])
        self.assertNotIn(added["secret"], out)
        rotated = json.loads((yield self.app("rotate", "shop", "--json")))
        self.assertNotEqual(rotated["key"], added["key"])
        self.assertEqual((yield self.app("revoke", "shop")), "application shop revoked\n")
        self.assertEqual((yield self.app("revoke", "shop")), "application shop was already revoked\n")
        self.assertIn("revoked", (yield self.app("list")))

    def test_usage(self):
        """add takes --private; revoke takes no --json."""
        self.assertTrue(cli.parser().parse_args(["app", "add", "x", "--private"]).private)
        with self.assertRaises(SystemExit):
            cli.parser().parse_args(["app", "revoke", "x", "--json"])
