"""
``reactive-hub start`` and ``check`` (components.cli.devnode): the commands
and environments they build, checked without starting a node.
"""

import io
import json
import os
import re
import socket

from twisted.trial.unittest import SynchronousTestCase

from components.cli import devnode

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = "/opt/hub/.venv/bin/python"


def recipe(target, path=os.path.join(REPO, "Makefile")):
    """The command lines of ``target`` in the Makefile, continuation lines joined."""
    with open(path) as handle:
        text = handle.read().replace("\\\n", " ")
    match = re.search(r"^{}:[^\n]*\n((?:\t[^\n]*\n)+)".format(re.escape(target)), text, re.M)
    return [" ".join(line.split()) for line in match.group(1).splitlines()]


def fake_venv(case):
    """A temporary bin folder holding an executable ``crossbar``, as a virtualenv would; its path."""
    folder = case.mktemp()
    os.makedirs(folder)
    crossbar = os.path.join(folder, "crossbar")
    with open(crossbar, "w") as handle:
        handle.write("#!/bin/sh\n")
    os.chmod(crossbar, 0o755)
    return folder


class DevEnvironmentTests(SynchronousTestCase):
    """dev_environment applies the Makefile's defaults, and only where make would."""

    def test_defaults(self):
        """Nothing set: the emulator port 4566, its loopback URL, provisioning on; other variables kept."""
        env = devnode.dev_environment({"PATH": "/bin"})
        self.assertEqual(env, {"PATH": "/bin", "AWS_EMULATOR_PORT": "4566",
                               "AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "USERSYNC_PROVISION": "on"})

    def test_given_port_moves_the_endpoint(self):
        """AWS_EMULATOR_PORT set: the default endpoint follows it (make's ${AWS_ENDPOINT_URL-...:$(PORT)})."""
        env = devnode.dev_environment({"AWS_EMULATOR_PORT": "4600"})
        self.assertEqual(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:4600")

    def test_empty_endpoint_means_real_aws(self):
        """AWS_ENDPOINT_URL set but empty stays empty (real AWS), as ${VAR-default} does."""
        self.assertEqual(devnode.dev_environment({"AWS_ENDPOINT_URL": ""})["AWS_ENDPOINT_URL"], "")

    def test_provision_empty_is_on(self):
        """USERSYNC_PROVISION empty is on (${VAR:-on}); off stays off."""
        self.assertEqual(devnode.dev_environment({"USERSYNC_PROVISION": ""})["USERSYNC_PROVISION"], "on")
        self.assertEqual(devnode.dev_environment({"USERSYNC_PROVISION": "off"})["USERSYNC_PROVISION"], "off")


class StartPlanTests(SynchronousTestCase):
    """start_plan: migrate with this venv's Python, then crossbar from the same venv."""

    def test_plan(self):
        """Migrate on the node directory, then crossbar start --cbdir with the dev defaults and extra options."""
        (migrate, migrate_env), (crossbar, crossbar_env) = devnode.start_plan(
            "/srv/node", {"PATH": "/bin"}, PYTHON, ["--loglevel", "debug"])
        self.assertEqual(migrate, [PYTHON, "-m", "components.node", "migrate"])
        self.assertEqual(migrate_env, {"PATH": "/bin", "CROSSBAR_DIR": "/srv/node"})
        self.assertEqual(crossbar, ["/opt/hub/.venv/bin/crossbar", "start", "--cbdir", "/srv/node",
                                    "--loglevel", "debug"])
        self.assertEqual(crossbar_env, devnode.dev_environment({"PATH": "/bin"}))

    def test_makefile_runs_reactive_hub_start(self):
        """`make start` runs this command (handing make's AWS_EMULATOR_PORT on): one definition of the dev node."""
        self.assertEqual(recipe("start"), ["AWS_EMULATOR_PORT=$(AWS_EMULATOR_PORT) $(BIN)/reactive-hub start"])
        self.assertEqual(recipe("check"), ["$(BIN)/reactive-hub check --cbdir .crossbar"])


class StartTests(SynchronousTestCase):
    """start: migrate first, become crossbar only after a good migration; refuse clearly without a node config."""

    def setUp(self):
        self.cbdir = self.mktemp()
        os.makedirs(self.cbdir)
        with open(os.path.join(self.cbdir, "config.json"), "w") as handle:
            handle.write("{}")
        self.bin = fake_venv(self)
        self.python = os.path.join(self.bin, "python")
        self.calls = []
        self.err = io.StringIO()

    def start(self, argv, migration=0, environ=None):
        def run(argv, env):
            self.calls.append(("run", argv, env))
            return migration

        def become(path, argv, env):
            self.calls.append(("become", argv, env))
        return devnode.start(argv, "reactive-hub start", environ=environ or {"HOME": "/home/x"},
                             executable=self.python, run=run, become=become, err=self.err)

    def test_taken_port_stops_before_anything_runs(self):
        """A port of the node config another process holds: one line naming it, 78, no migration, no crossbar."""
        with open(os.path.join(self.cbdir, "config.json"), "w") as handle:
            json.dump({"workers": [{"transports": [{"endpoint": {
                "type": "tcp", "port": 8080, "interface": "${HUB_INTERFACE:-127.0.0.1}"}}]}]}, handle)
        probed = []

        def probe(interface, port):
            probed.append((interface, port))
            return False
        code = devnode.start(["--cbdir", self.cbdir], "reactive-hub start", environ={"HOME": "/home/x"},
                             executable=self.python, run=None, become=None, err=self.err, probe=probe)
        self.assertEqual((code, probed), (78, [("127.0.0.1", 8080)]))
        self.assertEqual(self.err.getvalue().count("\n"), 1)
        self.assertIn("port 127.0.0.1:8080 is taken", self.err.getvalue())
        self.assertIn("another port (PORT=", self.err.getvalue())

    def test_port_setting_is_probed(self):
        """PORT moves the dev endpoint: start probes that port, not the config's 8080."""
        with open(os.path.join(self.cbdir, "config.json"), "w") as handle:
            json.dump({"workers": [{"transports": [{"endpoint": {
                "type": "tcp", "port": 8080, "interface": "${HUB_INTERFACE:-127.0.0.1}"}}]}]}, handle)
        probed = []

        def probe(interface, port):
            probed.append((interface, port))
            return False
        code = devnode.start(["--cbdir", self.cbdir], "reactive-hub start", environ={"PORT": "18126"},
                             executable=self.python, run=None, become=None, err=self.err, probe=probe)
        self.assertEqual((code, probed), (78, [("127.0.0.1", 18126)]))
        self.assertIn("port 127.0.0.1:18126 is taken", self.err.getvalue())

    def test_bad_settings_stop_before_anything_runs(self):
        """Bad settings: the registry check's lines (each setting named), 78, no migration, no crossbar."""
        code = self.start(["--cbdir", self.cbdir], environ={"CLOCK_INTERVAL": "fast", "JWT_SECRET": "tooshort"})
        self.assertEqual(code, 78)
        self.assertEqual(self.calls, [])
        lines = self.err.getvalue().splitlines()
        self.assertTrue(lines[0].startswith("setting 'CLOCK_INTERVAL' must be a duration"), lines)
        self.assertTrue(lines[1].startswith("setting 'JWT_SECRET' must be at least 32 bytes"), lines)
        self.assertEqual(lines[-1], "error: the node was not started; `reactive-hub check` checks again")
        self.assertNotIn("tooshort", self.err.getvalue())

    def test_unknown_names_warned_about_and_the_node_starts(self):
        """A variable that looks like a setting but is none (another program's, a typo) is a warning, not a refusal."""
        self.assertEqual(self.start(["--cbdir", self.cbdir], environ={"HUB_FOO": "1"}), 0)
        self.assertIn("warning: HUB_FOO: set in the environment but no setting of the hub", self.err.getvalue())
        self.assertEqual(len(self.calls), 2)

    def test_migrate_then_crossbar(self):
        """The migration runs, then this process becomes crossbar start with the dev environment."""
        self.assertEqual(self.start(["--cbdir", self.cbdir]), 0)
        cbdir = os.path.abspath(self.cbdir)
        self.assertEqual([call[:2] for call in self.calls], [
            ("run", [self.python, "-m", "components.node", "migrate"]),
            ("become", [os.path.join(self.bin, "crossbar"), "start", "--cbdir", cbdir])])
        self.assertEqual(self.calls[1][2]["USERSYNC_PROVISION"], "on")

    def test_failed_migration_stops(self):
        """A failed migration is exit code 1 with one line; crossbar is not started."""
        self.assertEqual(self.start(["--cbdir", self.cbdir], migration=1), 1)
        self.assertEqual([call[0] for call in self.calls], ["run"])
        self.assertEqual(self.err.getvalue(), "error: the migration failed (above); the node was not started\n")

    def test_no_node_config(self):
        """Outside the repository (no config.json) nothing runs: one line saying where to run it, code 78."""
        self.assertEqual(self.start(["--cbdir", self.bin]), 78)
        self.assertEqual(self.calls, [])
        self.assertIn("--cbdir", self.err.getvalue())
        self.assertEqual(self.err.getvalue().count("\n"), 1)


class PortTests(SynchronousTestCase):
    """listening_endpoints and can_listen: the ports start looks at before starting the node."""

    def test_endpoints_resolved(self):
        """Literal TCP ports with their interface, ${VAR:-default} taken from the environment or the default."""
        config = {"workers": [{"transports": [
            {"endpoint": {"type": "tcp", "port": 8080, "interface": "${HUB_INTERFACE:-127.0.0.1}"}},
            {"endpoint": {"type": "unix", "path": "x.sock"}}]}, {"type": "guest"}]}
        self.assertEqual(devnode.listening_endpoints(config, {}), [("127.0.0.1", 8080)])
        self.assertEqual(devnode.listening_endpoints(config, {"HUB_INTERFACE": "0.0.0.0"}), [("0.0.0.0", 8080)])
        # the dev endpoint listens on PORT when set (components.node.patches.listen_interface): start probes that
        self.assertEqual(devnode.listening_endpoints(config, {"PORT": "18125"}), [("127.0.0.1", 18125)])

    def test_can_listen(self):
        """A port a socket listens on cannot be bound; once closed it can."""
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        self.assertFalse(devnode.can_listen("127.0.0.1", port))
        holder.close()
        self.assertTrue(devnode.can_listen("127.0.0.1", port))


class CheckTests(SynchronousTestCase):
    """check: the settings hook (when installed) and crossbar check; the worse result counts."""

    def setUp(self):
        self.bin = fake_venv(self)
        self.calls = []

    def check(self, argv, hook, crossbar_code=0):
        def run(argv, env):
            self.calls.append(argv)
            return crossbar_code
        return devnode.check(argv, "reactive-hub check", environ={}, executable=os.path.join(self.bin, "python"),
                             run=run, hook=lambda: hook, err=io.StringIO())

    def test_without_settings_check(self):
        """No settings registry installed: crossbar check alone decides (0, or 78 on failure)."""
        self.assertEqual(self.check(["--cbdir", "/srv/node"], None), 0)
        self.assertEqual(self.calls, [[os.path.join(self.bin, "crossbar"), "check", "--cbdir", "/srv/node",
                                       "--config", "config.json"]])
        self.assertEqual(self.check([], None, crossbar_code=1), 78)

    def test_settings_check_gets_all_arguments(self):
        """The hook gets every argument and its code wins; crossbar check of the same config still runs."""
        seen = []

        def hook(argv):
            seen.append(argv)
            return 78
        self.assertEqual(self.check(["--cbdir", "/srv/node", "--config", "master.json"], hook), 78)
        self.assertEqual(seen, [["--cbdir", "/srv/node", "--config", "master.json"]])
        self.assertEqual(self.calls, [[os.path.join(self.bin, "crossbar"), "check", "--cbdir", "/srv/node",
                                       "--config", "master.json"]])

    def test_unknown_option(self):
        """An unknown option is a usage error (2), with or without a settings check; nothing runs."""
        for hook in (None, lambda argv: 0):
            with self.assertRaises(SystemExit) as caught:
                self.check(["--role", "master"], hook)
            self.assertEqual(caught.exception.code, 2)
        self.assertEqual(self.calls, [])
