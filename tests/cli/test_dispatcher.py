"""
The console script's dispatcher (components.cli.dispatcher): every command
and subcommand has help, each command reaches the function its ``python -m``
form runs, and its endings become the documented exit codes.
"""

import importlib
import io
import sys

from twisted.trial.unittest import SynchronousTestCase

from components.cli import dispatcher

# every command, and each subcommand of the commands that have them
HELPED = [[command.name] for command in dispatcher.COMMANDS] + [
    ["user", "add"], ["user", "passwd"],
    ["device", "add"], ["device", "list"], ["device", "rotate"], ["device", "revoke"], ["device", "simulate"],
    ["app", "add"], ["app", "list"], ["app", "rotate"], ["app", "revoke"],
    ["e2e", "rotate"], ["e2e", "decrypt"],
    ["sync", "provision"], ["sync", "migrate"], ["sync", "resync"], ["sync", "emulator"],
    ["topology", "write"], ["topology", "client"], ["topology", "master"]]

# command line -> (module whose main runs, the argv it gets, the program name it shows)
ROUTES = {
    ("migrate", "--client-url", "sqlite://"): ("components.node.cli", ["migrate", "--client-url", "sqlite://"],
                                               "reactive-hub"),
    ("token", "--sub", "alice"): ("components.auth.cli", ["token", "--sub", "alice"], "reactive-hub"),
    ("user", "add", "alice"): ("components.auth.cli", ["add", "alice"], "reactive-hub user"),
    ("keys", "/srv/keys"): ("components.auth.keygen", ["/srv/keys"], "reactive-hub keys"),
    ("device", "list"): ("components.iot.cli", ["device", "list"], "reactive-hub"),
    ("app", "list"): ("components.applications.cli", ["app", "list"], "reactive-hub"),
    ("demo", "odata"): ("components.iot.demo.cli", ["odata"], "reactive-hub demo"),
    ("e2e", "rotate", "--all"): ("components.auth.e2e_command", ["rotate", "--all"], "reactive-hub e2e"),
    ("sync", "emulator"): ("components.usersync.cli", ["emulator"], "reactive-hub sync"),
    ("topology", "master"): ("components.node.topology", ["master"], "reactive-hub topology"),
}


class HelpTests(SynchronousTestCase):
    """--help of every command and subcommand exits 0 and shows its own usage line."""

    def setUp(self):
        self.out = io.StringIO()
        self.patch(sys, "stdout", self.out)

    def test_every_help(self):
        """Each command and subcommand in HELPED answers --help with 0 and `usage: reactive-hub <words>`."""
        for words in HELPED:
            self.out.seek(0)
            self.out.truncate()
            code = dispatcher.main(words + ["--help"], err=io.StringIO())
            self.assertEqual(code, 0, words)
            self.assertIn("usage: reactive-hub " + " ".join(words), self.out.getvalue(), words)

    def test_top_level(self):
        """--help lists every command and the exit codes; `help device` is `device --help`."""
        out = io.StringIO()
        self.assertEqual(dispatcher.main(["--help"], out=out), 0)
        for command in dispatcher.COMMANDS:
            self.assertIn(command.name, out.getvalue())
        self.assertIn("78", out.getvalue())
        self.assertEqual(dispatcher.main(["help", "device"]), 0)
        self.assertIn("usage: reactive-hub device", self.out.getvalue())

    def test_no_command_and_unknown_command(self):
        """No command prints the help on stderr; an unknown one names itself; both are usage errors (2)."""
        err = io.StringIO()
        self.assertEqual(dispatcher.main([], err=err), 2)
        self.assertIn("COMMAND", err.getvalue())
        err = io.StringIO()
        self.assertEqual(dispatcher.main(["stat"], err=err), 2)
        self.assertIn("unknown command 'stat'", err.getvalue())


class RouteTests(SynchronousTestCase):
    """Each command calls its module's main, the one ``python -m`` runs, with its arguments and name."""

    def record(self, module_name, result=0):
        calls = []

        def main(argv, prog):
            calls.append((argv, prog))
            if isinstance(result, BaseException):
                raise result
            return result
        self.patch(importlib.import_module(module_name), "main", main)
        return calls

    def test_routes(self):
        """Each command line in ROUTES calls its module's main once, with the argv and program name listed."""
        for words, (module, argv, prog) in ROUTES.items():
            calls = self.record(module)
            self.assertEqual(dispatcher.main(list(words)), 0, words)
            self.assertEqual(calls, [(argv, prog)], words)

    def test_simulate(self):
        """`device simulate` reaches the simulator (python -m components.iot.device_simulator) through the device CLI."""
        calls = []
        self.patch(importlib.import_module("components.iot.device_simulator"), "main",
                   lambda argv, out, prog: calls.append((argv, prog)) or 0)
        self.assertEqual(dispatcher.main(["device", "simulate", "--value", "1"]), 0)
        self.assertEqual(calls, [(["--value", "1"], "reactive-hub device simulate")])

    def test_start_and_check_are_local(self):
        """start and check run components.cli.devnode with their arguments."""
        calls = []
        self.patch(dispatcher, "_LOCAL", {"start": lambda argv, prog: calls.append(("start", argv, prog)),
                                          "check": lambda argv, prog: calls.append(("check", argv, prog)) or 78})
        self.assertEqual(dispatcher.main(["start", "--cbdir", "n"]), 0)
        self.assertEqual(dispatcher.main(["check"]), 78)
        self.assertEqual(calls, [("start", ["--cbdir", "n"], "reactive-hub start"),
                                 ("check", [], "reactive-hub check")])

    def test_endings(self):
        """A returned code is the exit code; Ctrl-C is 130 with one line; a message is one error line and 1."""
        for result, code, line in ((4, 4, ""), (KeyboardInterrupt(), 130, "interrupted\n"),
                                   (SystemExit("no device key"), 1, "error: no device key\n")):
            self.record("components.iot.cli", result)
            err = io.StringIO()
            self.assertEqual(dispatcher.main(["device", "list"], err=err), code)
            self.assertEqual(err.getvalue(), line)
