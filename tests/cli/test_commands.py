"""
What the commands do at their edges, without a database: the user
commands' password prompt, ``device add --out`` (a private file in the node
directory), the simulator finding that file, ``token --json``.
"""

import io
import json
import os
import stat
import sys
from argparse import Namespace

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from components.auth import cli as auth_cli, tokens
from components.core import exits
from components.core.settings import Settings
from components.iot import cli as iot_cli, credentials_file, device_simulator
from tests.cli.test_prompts import typed


class Recorder:
    """A directory that records what the user commands ask of it."""

    def __init__(self):
        self.calls = []

    def create_user(self, username, password, **fields):
        self.calls.append(("create_user", username, password))
        return defer.succeed(None)

    def set_password(self, username, password):
        self.calls.append(("set_password", username, password))
        return defer.succeed(None)


class UserPromptTests(SynchronousTestCase):
    """`user add` / `user passwd` ask through components.core.prompts; the database part is replaced."""

    def setUp(self):
        self.actions = []
        self.patch(auth_cli, "_run_directory", self.actions.append)
        self.patch(sys, "stdout", io.StringIO())
        self.err = io.StringIO()

    def run_cli(self, argv, *answers, interactive=True, stdin=None):
        return auth_cli.main(argv, ask=typed(*answers), interactive=lambda: interactive, stdin=stdin,
                             err=self.err)

    def applied(self):
        """What the command asked of the directory."""
        directory = Recorder()
        self.assertEqual(len(self.actions), 1)
        self.actions[0](directory)
        return directory.calls

    def test_no_terminal(self):
        """Without a terminal: one line naming --password-stdin, exit code 1, the database untouched."""
        with self.assertRaises(SystemExit) as caught:
            self.run_cli(["add", "bob"], interactive=False)
        self.assertEqual(caught.exception.code, 1)
        self.assertEqual(self.err.getvalue().count("\n"), 1)
        self.assertIn("--password-stdin", self.err.getvalue())
        self.assertEqual(self.actions, [])

    def test_ctrl_c(self):
        """Ctrl-C at the prompt: 'interrupted' and 130, the database untouched."""
        with self.assertRaises(SystemExit) as caught:
            self.run_cli(["passwd", "bob"], KeyboardInterrupt)
        self.assertEqual((caught.exception.code, self.err.getvalue()), (130, "\ninterrupted\n"))
        self.assertEqual(self.actions, [])

    def test_short_password_asks_again(self):
        """A short password is asked again and the good one is stored."""
        self.run_cli(["add", "bob"], "short", "long-password", "long-password")
        self.assertEqual(self.applied(), [("create_user", "bob", "long-password")])
        self.assertIn("try again", self.err.getvalue())

    def test_old_name_and_stdin(self):
        """`adduser` still works; --password-stdin reads the first line of the given input."""
        self.run_cli(["adduser", "bob", "--password-stdin"], stdin=io.StringIO("long-password\n"))
        self.assertEqual(self.applied(), [("create_user", "bob", "long-password")])


class TokenJsonTests(SynchronousTestCase):
    """token --json prints the token with its subject, role and lifetime."""

    def test_json(self):
        """The printed JSON holds a token that verifies with the node's secret, and what was asked for."""
        secret = "s" * 40
        self.patch(auth_cli, "Settings", lambda: Settings(environ={"JWT_SECRET": secret}))
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.assertEqual(auth_cli.main(["token", "--sub", "alice", "--role", "user", "--ttl", "60", "--json"]), 0)
        printed = json.loads(out.getvalue())
        self.assertEqual({key: printed[key] for key in ("sub", "role", "ttl")},
                         {"sub": "alice", "role": "user", "ttl": 60})
        claims = tokens.TokenVerifier(tokens.Keys("HS256", secret, secret)).verify(printed["token"])
        self.assertEqual(claims["sub"], "alice")


class ProductionHostTests(SynchronousTestCase):
    """On a node directory holding a production config (and no config.json) a command never makes a development
    secret: one line naming what to set, exit 78, nothing written in secrets/."""

    def setUp(self):
        self.node = os.path.abspath(self.mktemp())
        os.makedirs(self.node)
        open(os.path.join(self.node, "master.json"), "w").close()
        self.err = io.StringIO()

    def assert_refused(self, code, setting):
        self.assertEqual(code, exits.CONFIG)
        line = self.err.getvalue()
        self.assertEqual(line.count("\n"), 1, line)
        self.assertIn("production config master.json", line)
        self.assertIn(setting, line)
        self.assertFalse(os.path.exists(os.path.join(self.node, "secrets")))

    def test_device_add(self):
        code = iot_cli.main(["device", "add", "cam-1", "--out", "--cbdir", self.node], out=io.StringIO(),
                            err=self.err, environ={"DATABASE_URL": "sqlite:///" + os.path.join(self.node, "c.db")})
        self.assert_refused(code, "E2E_KEK_FILE")

    def test_token(self):
        self.patch(auth_cli, "Settings", lambda: Settings(environ={}, node_directory=self.node))
        self.patch(sys, "stdout", io.StringIO())
        code = exits.outcome(auth_cli.main, ["token", "--sub", "alice", "--role", "user"], err=self.err)
        self.assert_refused(code, "JWT_SECRET")


class Registry:
    """A device registry handing out fixed credentials."""

    def add(self, name):
        return defer.succeed(("k-" + name, "s-" + name))

    rotate = add


class DeviceOutTests(SynchronousTestCase):
    """device add/rotate --out: the credentials go to a 0600 file in the node's secrets, never to stdout."""

    def setUp(self):
        self.node = os.path.abspath(self.mktemp())
        self.out = io.StringIO()

    def run_cli(self, command, out=None, as_json=False):
        options = Namespace(command=command, name="sim-1", out=out, json=as_json)
        self.successResultOf(iot_cli.run(options, Registry(), self.out, self.node))

    def test_default_file(self):
        """--out alone: <node dir>/secrets/devices/NAME.env, mode 0600 (folder 0700), sourceable; the path printed."""
        previous = os.umask(0o022)
        self.addCleanup(os.umask, previous)
        self.run_cli("add", out="")
        path = os.path.join(self.node, "secrets", "devices", "sim-1.env")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode), 0o700)
        self.assertEqual(credentials_file.read(path),
                         {"DEVICE_NAME": "sim-1", "DEVICE_KEY": "k-sim-1", "DEVICE_SECRET": "s-sim-1"})
        self.assertIn(path, self.out.getvalue())
        self.assertNotIn("s-sim-1", self.out.getvalue())

    def test_given_file_and_json(self):
        """--out FILE --json: the file holds the secret; the JSON names key and file, not the secret."""
        path = os.path.join(os.path.abspath(self.mktemp()), "sim.env")
        self.run_cli("rotate", out=path, as_json=True)
        self.assertEqual(json.loads(self.out.getvalue()), {"name": "sim-1", "key": "k-sim-1", "file": path})
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertIn("DEVICE_SECRET=s-sim-1", open(path).read())

    def test_without_out_prints_as_before(self):
        """Without --out the assignments are printed (for scripts that read them), nothing is written."""
        self.run_cli("add")
        self.assertIn("DEVICE_SECRET=s-sim-1\n", self.out.getvalue())
        self.assertFalse(os.path.exists(self.node))

    def test_simulator_finds_the_file(self):
        """The simulator takes key and secret from the device's file when none is given."""
        self.run_cli("add", out="")
        self.assertEqual(device_simulator.credentials(environ={}, directory=self.node, device="sim-1"),
                         ("k-sim-1", "s-sim-1"))
        with self.assertRaises(SystemExit) as caught:
            device_simulator.credentials(environ={}, directory=self.node, device="sim-2")
        self.assertIn("device add sim-2 --out", str(caught.exception))

    def test_unwritable_file_keeps_the_secret(self):
        """--out into a place that cannot be written: the credentials are printed instead, and NotSaved says why."""
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w") as handle:
            handle.write("a file, not a folder")
        failure = self.failureResultOf(iot_cli.run(
            Namespace(command="add", name="sim-1", out=os.path.join(blocker, "sim-1.env"), json=False),
            Registry(), self.out, self.node), iot_cli.NotSaved)
        self.assertIn("could not write", str(failure.value))
        self.assertIn("DEVICE_SECRET=s-sim-1\n", self.out.getvalue())
