"""
Unit tests of components.core.devsecrets: a development node generates the
secrets it is not given, a production node (HUB_ENV, or a production
config's HUB_CONFIG_ENV) refuses them and names what to set.
"""

import json
import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from components.auth import tokens
from components.core import devsecrets, refusal
from components.core.settings import Settings
from components.e2e import keys as e2e_keys
from components.node import topology
from components.usersync import message_signing
from tests.support.node import CONFIG, TEST_SECRET


class DevSecretTests(SynchronousTestCase):
    """Which node generates, which refuses."""

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="hub-devsecrets-")

    def settings(self, environ, extra=None):
        return Settings(extra or {}, environ, node_directory=self.directory)

    def secret(self, environ):
        return devsecrets.dev_secret(self.settings(environ), os.path.join("secrets", "x"), "the X key",
                                     "set X_FILE")

    def test_development_generates_once(self):
        """Unset HUB_ENV and no marker: the secret is made once in the node directory and read back."""
        first = self.secret({})
        self.assertEqual(self.secret({}), first)
        self.assertTrue(os.path.exists(os.path.join(self.directory, "secrets", "x")))

    def test_production_refuses_without_creating(self):
        """HUB_ENV=production: a DevelopmentSecretRefused naming the secret and the fix; no file made."""
        error = self.assertRaises(devsecrets.DevelopmentSecretRefused, self.secret, {"HUB_ENV": "production"})
        self.assertIn("the X key is not configured on this production node (HUB_ENV=production)", str(error))
        self.assertTrue(error.fix.startswith("set X_FILE"))
        self.assertFalse(os.path.exists(os.path.join(self.directory, "secrets", "x")))

    def test_config_marker_and_its_override(self):
        """A production config's worker marker refuses; HUB_ENV=development overrides it on purpose."""
        marker = {devsecrets.CONFIG_MARKER: devsecrets.PRODUCTION}
        error = self.assertRaises(devsecrets.DevelopmentSecretRefused, self.secret, marker)
        self.assertIn("its node config is a production config", str(error))
        self.assertTrue(self.secret(dict(marker, HUB_ENV="development")))

    def test_production_node_directory(self):
        """A node directory holding master.json or client.json and no config.json (a command on a production host)
        refuses, without creating the file; with config.json, or HUB_ENV=development, it generates."""
        for name in devsecrets.PRODUCTION_CONFIGS:
            config = os.path.join(self.directory, name)
            open(config, "w").close()
            error = self.assertRaises(devsecrets.DevelopmentSecretRefused, self.secret, {})
            self.assertIn("holds the production config {} and no config.json".format(name), str(error))
            self.assertFalse(os.path.exists(os.path.join(self.directory, "secrets", "x")))
            self.assertTrue(self.secret({"HUB_ENV": "development"}))
            os.remove(config)
            os.remove(os.path.join(self.directory, "secrets", "x"))
        for name in ("master.json", "config.json"):
            open(os.path.join(self.directory, name), "w").close()
        self.assertTrue(self.secret({}))

    def test_existing_dev_file_refused_too(self):
        """A secret generated earlier in the node directory is still a development secret."""
        self.secret({})
        self.assertRaises(devsecrets.DevelopmentSecretRefused, self.secret, {"HUB_ENV": "production"})

    def test_jwt_kek_and_sync_keys_on_production(self):
        """The JWT key, E2E_KEK and the user-sync keys each refuse with a line naming their settings."""
        production = {"HUB_ENV": "production"}
        for load, names in ((tokens.load_keys, ("JWT_SECRET", "JWT_PUBLIC_KEY_FILE")),
                            (e2e_keys.load_kek, ("E2E_KEK_FILE",)),
                            (message_signing.signer_from, ("USERSYNC_SIGNING_KEY_FILE",)),
                            (message_signing.verifier_from, ("USERSYNC_VERIFY_KEY_FILES",))):
            error = self.assertRaises(devsecrets.DevelopmentSecretRefused, load, self.settings(production))
            line = refusal.settings_line(error, "Somewhere")
            for name in names:
                self.assertIn(name, line)
            self.assertNotIn("\n", line)
        self.assertEqual(os.listdir(self.directory), [])

    def test_key_files_naming_the_dev_files_refused_on_production(self):
        """E2E_KEK_FILE / USERSYNC_SIGNING_KEY_FILE naming the node directory's generated files (also through a
        link) refuse on production; a copy elsewhere is a configured key and passes."""
        kek = e2e_keys.load_kek(self.settings({}))
        message_signing.signer_from(self.settings({}))
        for load, setting, relative in ((e2e_keys.load_kek, "E2E_KEK_FILE", e2e_keys.DEV_KEK_FILE),
                                        (message_signing.signer_from, "USERSYNC_SIGNING_KEY_FILE",
                                         message_signing.DEV_KEY_FILE)):
            dev_file = os.path.join(self.directory, relative)
            link = os.path.join(tempfile.mkdtemp(prefix="hub-devsecrets-link-"), "key")
            os.symlink(dev_file, link)
            for path in (dev_file, link):
                error = self.assertRaises(devsecrets.DevelopmentSecretRefused, load,
                                          self.settings({"HUB_ENV": "production", setting: path}))
                self.assertIn("is the generated development file", str(error))
                self.assertIn(setting, refusal.settings_line(error))
            copy = os.path.join(os.path.dirname(link), "copy")
            with open(dev_file) as source, open(copy, "w") as target:
                target.write(source.read())
            self.assertTrue(load(self.settings({"HUB_ENV": "production", setting: copy})))
        self.assertEqual(e2e_keys.load_kek(self.settings({"E2E_KEK_FILE": os.path.join(
            self.directory, e2e_keys.DEV_KEK_FILE)})), kek)

    def test_configured_secrets_pass_on_production(self):
        """Given JWT_SECRET, a production node uses it."""
        keys = tokens.load_keys(self.settings({"HUB_ENV": "production", "JWT_SECRET": TEST_SECRET}))
        self.assertEqual(keys.algorithm, "HS256")


class ConfigMarkerTests(SynchronousTestCase):
    """The production configs mark their workers; the dev config does not."""

    def test_production_configs_mark_every_native_worker(self):
        for config in (topology.production_defaults(topology.master_config()),
                       topology.production_defaults(topology.client_config(proxies=1, containers=1))):
            for worker in config["workers"]:
                self.assertEqual(worker["options"]["env"]["vars"][devsecrets.CONFIG_MARKER], "production",
                                 worker["id"])

    def test_committed_production_configs_marked_dev_config_not(self):
        directory = os.path.dirname(CONFIG)
        for name, marked in (("config.json", False), ("master.json", True), ("client.json", True)):
            with open(os.path.join(directory, name)) as handle:
                config = json.load(handle)
            for worker in config["workers"]:
                if worker["type"] in ("router", "container", "proxy"):
                    found = worker.get("options", {}).get("env", {}).get("vars", {}).get(devsecrets.CONFIG_MARKER)
                    self.assertEqual(found, "production" if marked else None, (name, worker["id"]))
