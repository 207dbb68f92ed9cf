"""
bench/fanout.py checks what a run needs before any work: a missing tool or
module is named with how to get it, and the run exits with 2.
"""

import importlib.util
import io
import os

from twisted.trial.unittest import SynchronousTestCase

from tests.support.node import REPO


def _load_fanout():
    spec = importlib.util.spec_from_file_location("bench_fanout", os.path.join(REPO, "bench", "fanout.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fanout = _load_fanout()


def options(*argv):
    """The options of ``python bench/fanout.py argv``."""
    return fanout.parser().parse_args(list(argv))


def tools(*present):
    return lambda name: "/usr/bin/" + name if name in present else None


def modules(*present):
    return lambda name: name in present


ALL_TOOLS = tools("node", "npm", "g++", "bash")
ALL_MODULES = modules("matplotlib", "psutil")


class MissingTests(SynchronousTestCase):
    """fanout.missing(args, which, module, ws_missing, build_missing)."""

    def missing(self, args, which=ALL_TOOLS, module=ALL_MODULES, ws=False, build=False):
        return [what for what, _how in fanout.missing(args, which=which, module=module,
                                                      ws_missing=lambda: ws, build_missing=lambda: build)]

    def test_nothing_missing(self):
        """With every tool and module present nothing is reported, whether or not the clients still need setup."""
        self.assertEqual(self.missing(options()), [])
        self.assertEqual(self.missing(options(), ws=True, build=True), [])

    def test_matplotlib(self):
        """A run and --render need matplotlib for the plot; --setup does not."""
        for args in (options(), options("--render")):
            self.assertEqual(self.missing(args, module=modules("psutil")), ["matplotlib (the .png report)"])
        self.assertEqual(self.missing(options("--setup"), module=modules()), [])

    def test_node_only_when_used(self):
        """node is needed for the floor target or the Node client, npm only while ws is not installed."""
        without_node = tools("g++", "bash")
        self.assertEqual(self.missing(options(), which=without_node), ["node"])
        self.assertEqual(self.missing(options("--targets", "hub,bare"), which=without_node), [])
        self.assertEqual(self.missing(options("--targets", "hub", "--client", "node"), which=without_node, ws=True),
                         ["node", "npm"])

    def test_compiler_only_when_the_native_client_needs_building(self):
        """g++ is needed while the native client is missing or stale, and for --setup."""
        no_compiler = tools("node", "npm", "bash")
        self.assertEqual(self.missing(options(), which=no_compiler), [])
        self.assertEqual(self.missing(options(), which=no_compiler, build=True), ["g++"])
        self.assertEqual(self.missing(options("--targets", "hub", "--client", "node"), which=no_compiler,
                                      build=True), [])
        self.assertEqual(self.missing(options("--setup"), which=no_compiler), ["g++"])

    def test_unknown_target(self):
        """A target name the benchmark does not know is reported instead of running the hub under that name."""
        self.assertEqual(self.missing(options("--targets", "hub,nope")), ["target nope"])


class MainTests(SynchronousTestCase):
    """fanout.main stops with 2 before any work when something is missing."""

    def test_exit_2_before_any_work(self):
        """main() prints what is missing with how to get it and returns 2 without starting anything."""
        stderr = io.StringIO()
        self.patch(fanout.sys, "stderr", stderr)
        self.patch(fanout, "has_module", lambda name: name != "matplotlib")
        self.patch(fanout, "needs_build", lambda: False)
        started = []
        for step in ("setup", "raise_open_files", "_tokens", "Server", "write_report"):
            self.patch(fanout, step, lambda *args, _step=step, **kwargs: started.append(_step))
        self.assertEqual(fanout.main(["--targets", "hub"]), 2)
        self.assertEqual(started, [])
        self.assertEqual(stderr.getvalue(), "bench/fanout.py cannot run; missing:\n"
                                            "  matplotlib (the .png report): pip install -e '.[bench]' (make bench does)\n")
