"""
The node as a whole: the config checks, the health endpoint, the dev secret,
the rule that a node whose authenticator cannot register stops instead
of running with every login failing, and a dev node that runs on without
PORT and when its SNS/SQS emulator cannot.
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile

import treq
from twisted.internet import defer
from twisted.trial import unittest

from components.node.patches import fast_send, registry
from tests.support.clients import connect
from tests.support.processes import run_until_said
from tests.support.node import CONFIG, CROSSBAR, NodeFailed, RouterNode, free_port, router_worker, shared_node
from tests.support.polling import eventually

EMULATOR_MISSING = "aws-emulator: no .venv/bin/python in"


def _forbid_authenticator_registration(config):
    realm = router_worker(config)["realms"][0]
    role = next(role for role in realm["roles"] if role["name"] == "authenticator")
    for permission in role["permissions"]:
        permission["allow"]["register"] = False
    return config


class NodeTests(unittest.TestCase):
    timeout = 180

    def test_config_checks(self):
        """`crossbar check` accepts the node config."""
        result = subprocess.run([CROSSBAR, "check", "--cbdir", os.path.dirname(CONFIG)],
                                env=dict(os.environ, PORT="8080"), capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("looks good", result.stdout)

    def test_config_checks_without_port(self):
        """`crossbar check` accepts each committed node config with neither PORT nor PYTHONPATH set."""
        env = {name: value for name, value in os.environ.items() if name not in ("PORT", "PYTHONPATH")}
        for name in ("config.json", "master.json", "client.json"):
            result = subprocess.run([CROSSBAR, "check", "--cbdir", os.path.dirname(CONFIG), "--config", name],
                                    env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 0, name + result.stdout + result.stderr)
            self.assertIn("looks good", result.stdout, name)

    @defer.inlineCallbacks
    def test_health(self):
        """/health answers 200 with status ok."""
        node = yield shared_node()
        response = yield treq.get(node.http + "/health", persistent=False)
        body = yield response.json()
        self.assertEqual((response.code, body["status"]), (200, "ok"))

    @defer.inlineCallbacks
    def test_router_worker_uses_fast_send(self):
        """The router worker (and no other worker of the dev node) installed components.node.patches.fast_send."""
        node = yield shared_node()
        self.assertEqual(node.log_text().count(registry.installed_note(fast_send)), 1, node.log_tail())

    @defer.inlineCallbacks
    def test_static_page_and_autobahn(self):
        """The web UI and autobahn.js (from npm) are served at /."""
        node = yield shared_node()
        response = yield treq.get(node.http + "/node_modules/autobahn-browser/autobahn.min.js", persistent=False)
        body = yield response.content()
        self.assertEqual(response.code, 200)
        self.assertGreater(len(body), 10000)

    @defer.inlineCallbacks
    def test_dev_secret_generated(self):
        """Without JWT_SECRET the node generates its own secret, mode 0600, and tokens signed with it work."""
        from components.auth import tokens
        node = RouterNode(name="devsecret", env={"JWT_SECRET": ""})
        self.addCleanup(node.cleanup)
        yield node.start()
        path = os.path.join(node.directory, tokens.DEV_SECRET_FILE)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as handle:
            secret = handle.read().strip()
        keys = tokens.Keys("HS256", secret, secret)
        client = yield connect(self, node, ticket=tokens.TokenIssuer(keys).issue("dave", "user"))
        state = yield client.session.call("time.get")
        self.assertIn("value", state)
        with open(os.path.join(node.directory, "config.json")) as handle:
            self.assertNotIn(secret, handle.read())

    @defer.inlineCallbacks
    def test_authenticator_failure_stops_node(self):
        """If the authenticator cannot register its URI, the whole node exits."""
        node = RouterNode(name="noauth", transform=_forbid_authenticator_registration)
        self.addCleanup(node.cleanup)
        try:
            # long enough that a loaded machine sees the node exit by itself, not killed as "not ready"
            yield node.start(timeout=120)
        except NodeFailed:
            pass
        code = yield node.wait_exit(timeout=30)
        self.assertIsNotNone(code)
        self.assertIn("cannot serve logins", node.log_text())


class CommandLineTests(unittest.TestCase):
    """python -m components.auth."""

    timeout = 180

    def run_cli(self, *args, stdin=None, env=None):
        return subprocess.run([sys.executable, "-m", "components.auth"] + list(args), input=stdin,
                              capture_output=True, text=True, timeout=60, env=dict(os.environ, **(env or {})))

    def test_token_command(self):
        """`token` prints a JWT with the given sub, role and ttl, signed with JWT_SECRET."""
        from components.auth import tokens
        secret = "c" * 40
        result = self.run_cli("token", "--sub", "alice", "--role", "device", "--ttl", "600",
                              env={"JWT_SECRET": secret})
        self.assertEqual(result.returncode, 0, result.stderr)
        claims = tokens.TokenVerifier(tokens.Keys("HS256", secret, secret)).verify(result.stdout.strip())
        self.assertEqual((claims["sub"], claims["role"], claims["exp"] - claims["iat"]), ("alice", "device", 600))
        bad = self.run_cli("token", "--sub", "alice", "--role", "root", env={"JWT_SECRET": secret})
        self.assertNotEqual(bad.returncode, 0)

    @defer.inlineCallbacks
    def test_adduser_then_login(self):
        """`adduser --password-stdin` creates a user who can then log in over HTTP."""
        from tests.support.clients import post_json
        node = RouterNode(name="cli")
        self.addCleanup(node.cleanup)
        env = {"CROSSBAR_DIR": node.directory}
        result = self.run_cli("adduser", "erin", "--first-name", "Erin", "--password-stdin",
                              stdin="erin-password-1\n", env=env)
        self.assertEqual(result.returncode, 0, result.stderr)
        again = self.run_cli("adduser", "erin", "--password-stdin", stdin="erin-password-1\n", env=env)
        self.assertEqual(again.returncode, 1)  # refused (2 is a usage error)
        self.assertIn("already exists", again.stderr)
        short = self.run_cli("adduser", "frank", "--password-stdin", stdin="short\n", env=env)
        self.assertNotEqual(short.returncode, 0)
        yield node.start()
        code, body, _ = yield post_json(node.http + "/auth/login", {"username": "erin", "password": "erin-password-1"})
        self.assertEqual((code, body.get("first_name")), (200, "Erin"))


def _without_emulator_python(config):
    """The dev config with the emulator run from an empty directory (no .venv/bin/python there)."""
    emulator = next(worker for worker in config["workers"] if worker["id"] == "aws-emulator")
    emulator["options"]["workdir"] = "."
    return config


def _defaults_build():
    node = RouterNode(name="defaults", transform=_without_emulator_python, keep_workers=("aws-emulator",))
    del node.env["PORT"]
    return node


@defer.inlineCallbacks
def _defaults_start(node):
    yield node.start()
    yield eventually(lambda: "Ok, local node configuration ran successfully." in node.log_text(), timeout=30,
                     message="node did not finish booting", details=node.log_tail)


def defaults_node():
    """One dev node started without PORT, keeping its aws-emulator worker, with no .venv/bin/python beside it."""
    return shared_node("defaults", build=_defaults_build, start=_defaults_start)


class StartUpTests(unittest.TestCase):
    """The dev node without PORT and without the emulator's Python."""

    timeout = 180

    @defer.inlineCallbacks
    def test_node_runs_when_emulator_python_is_missing(self):
        """Without .venv/bin/python the aws-emulator worker says so and the node keeps running and serving."""
        node = yield defaults_node()
        yield eventually(lambda: EMULATOR_MISSING in node.log_text(), timeout=30, message=node.log_tail())
        yield node.logged('Guest worker "aws-emulator" started')
        response = yield treq.get(node.http + "/health", persistent=False)
        yield response.content()
        self.assertEqual((response.code, node.process.poll()), (200, None))


class EmulatorTests(unittest.TestCase):
    """python -m components.usersync emulator, the dev node's aws-emulator worker."""

    timeout = 180

    @defer.inlineCallbacks
    def test_stays_up_when_moto_cannot_run(self):
        """When moto cannot be imported the emulator says why and keeps running, so the node is not stopped."""
        directory = tempfile.mkdtemp(prefix="hub-nomoto-")
        self.addCleanup(shutil.rmtree, directory, True)
        os.makedirs(os.path.join(directory, "moto"))
        with open(os.path.join(directory, "moto", "__init__.py"), "w") as handle:
            handle.write("raise ImportError('moto hidden by the test')\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [directory, os.environ.get("PYTHONPATH")])))
        process, said = yield run_until_said(
            self, directory, ["components.usersync", "emulator", "--port", str(free_port())],
            "aws-emulator: cannot import moto (moto hidden by the test)", env=env)
        self.assertTrue(said)
        self.assertIsNone(process.poll())
