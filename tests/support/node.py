"""
Start a real Crossbar node for a test: a temporary node directory holding a
copy of the project's ``.crossbar/config.json`` (optionally transformed), a
free port, its own SQLite files and a known JWT secret.

The node runs as a plain subprocess (not a reactor process), so a node can be
shared by all tests of a module without leaving the reactor dirty. Readiness
is awaited by polling, never by sleeping a fixed time.
"""

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from twisted.internet import defer

from components.iot import demo

from tests.support.polling import eventually
from tests.support.ports import free_port  # noqa: F401 - tests import it from here

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, ".crossbar", "config.json")
CROSSBAR = os.path.join(os.path.dirname(sys.executable), "crossbar")
TEST_SECRET = "test-secret-" + "x" * 40
# dev-only workers: the local AWS emulator on a fixed port, the demo sources (components.iot.demo)
DEV_ONLY_WORKERS = ("aws-emulator", "demo")
READY_MARKER = 'Ok, worker "Router router" configured and ready!'
PUBLIC_PORT = 8080  # the web transport's port in the committed node configs
# a node starts in 5-30 s; at the end of a full run on a loaded 2-core machine one took over 45 s
START_TIMEOUT = 120.0
# a node log line that tells why the node stopped
WHY_STOPPED = re.compile(r"critical|error|fail|refus|cannot|traceback|exception|sigterm|sigint|shutdown|exit",
                         re.IGNORECASE)

_running = set()


def load_config(path=CONFIG, port=None):
    """A node config for a test directory: the UI directory absolute; the public port 8080 moved to ``port``."""
    with open(path) as handle:
        config = json.load(handle)
    for worker in config.get("workers", []):
        for transport in worker.get("transports", []):
            endpoint = transport.get("endpoint", {})
            if port is not None and endpoint.get("port") == PUBLIC_PORT:
                endpoint["port"] = port
            for service in transport.get("paths", {}).values():
                if service.get("type") == "static" and not os.path.isabs(service.get("directory", "/")):
                    service["directory"] = os.path.join(REPO, "web")
    return config


def router_worker(config):
    return next(worker for worker in config["workers"] if worker["type"] == "router")


def component(config, component_id):
    """The router component with ``id`` in a loaded config (KeyError if absent)."""
    for item in router_worker(config).get("components", []):
        if item.get("id") == component_id:
            return item
    raise KeyError(component_id)


class NodeFailed(Exception):
    """The node exited or did not become ready; the message holds its log tail."""


class RouterNode:
    """
    One Crossbar node in a temporary directory. ``start()`` fires when the
    router worker is configured; ``stop()`` (SIGTERM) and ``kill()``
    (SIGKILL) end it; ``start()`` may be called again on the same directory.
    """

    def __init__(self, env=None, transform=None, config_path=CONFIG, name="node", keep_workers=(), directory=None):
        self.directory = directory or tempfile.mkdtemp(prefix="hub-{}-".format(name))
        os.makedirs(self.directory, exist_ok=True)
        self.port = free_port()
        config = load_config(config_path, port=self.port)
        # dev-only workers (the local AWS emulator on a fixed port) stay out unless asked for
        config["workers"] = [worker for worker in config["workers"]
                             if worker.get("id") not in DEV_ONLY_WORKERS or worker.get("id") in keep_workers]
        if demo.WORKER not in keep_workers:
            # without the demo worker SERIAL_URL and ODATA_URL are off unless a test sets them
            config = demo.without_demo(config)
        if transform is not None:
            config = transform(config) or config
        self.config = config
        with open(os.path.join(self.directory, "config.json"), "w") as handle:
            json.dump(config, handle, indent=2)
        self.env = dict(os.environ)
        for variable in ("DATABASE_URL", "MASTER_DATABASE_URL", "JWT_PUBLIC_KEY_FILE", "SERIAL_URL",
                         "ODATA_URL", "SQS_QUEUE_URL", "SNS_TOPIC_ARN", "AWS_ENDPOINT_URL", "USERSYNC_PROVISION",
                         "DEVICE_KEY", "DEVICE_SECRET"):
            self.env.pop(variable, None)
        # the node installs its patches itself (components.node.boot): no PYTHONPATH
        self.env.pop("PYTHONPATH", None)
        # a test node generates the development secrets it is not given, even with a production config
        # (master.json, client.json); a test of the production refusal passes HUB_ENV="" or "production"
        self.env.update({"PORT": str(self.port), "JWT_SECRET": TEST_SECRET, "PYTHONUNBUFFERED": "1",
                         "HUB_ENV": "development"})
        self.env.update(env or {})
        self.process = None
        self.log_path = os.path.join(self.directory, "node.log")
        self.starts = 0

    @property
    def url(self):
        return "ws://127.0.0.1:{}/ws".format(self.port)

    @property
    def http(self):
        return "http://127.0.0.1:{}".format(self.port)

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def logged(self, text, offset=0, timeout=15.0):
        """Fire once ``text`` is in the log after ``offset``: a worker's lines reach the file through the
        controller, a moment after what they report."""
        return eventually(lambda: text in self.log_text()[offset:], timeout=timeout,
                          message="{!r} never logged".format(text), details=lambda: self.log_tail(20))

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def failure_report(self, lines=40):
        """
        Why the node stopped or is not ready: its log lines that tell of a
        failure, a refusal, a signal or a shutdown (the last ``lines`` of
        them), then its last lines without the sessions detaching at shutdown
        (a flood of them hid the cause of a failed CI start).
        """
        text = self.log_text().splitlines()
        telling = [line for line in text if WHY_STOPPED.search(line) and " installed: " not in line][-lines:]
        tail = [line for line in text if "Router.detach>" not in line][-lines:]
        return "lines telling why:\n{}\n\nlast lines:\n{}".format("\n".join(telling), "\n".join(tail))

    @defer.inlineCallbacks
    def start(self, timeout=START_TIMEOUT):
        self.starts += 1
        offset = len(self.log_text())
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [CROSSBAR, "start", "--cbdir", self.directory, "--loglevel", "info", "--color", "false"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.directory, start_new_session=True)
        log.close()
        _running.add(self)

        def ready():
            if READY_MARKER in self.log_text()[offset:]:
                return True
            if self.process.poll() is not None:
                raise NodeFailed("node exited with {} before it was ready:\n{}".format(
                    self.process.returncode, self.failure_report()))
            return False
        try:
            yield eventually(ready, timeout=timeout)
        except AssertionError:
            self.kill()
            raise NodeFailed("node not ready after {}s:\n{}".format(timeout, self.failure_report()))
        return self

    @defer.inlineCallbacks
    def wait_exit(self, timeout=20.0):
        """Fire with the exit code once the node process has ended (NodeFailed after ``timeout``)."""
        try:
            yield eventually(lambda: self.process is None or self.process.poll() is not None, timeout=timeout)
        except AssertionError:
            raise NodeFailed("node still running after {}s".format(timeout))
        return None if self.process is None else self.process.returncode

    @defer.inlineCallbacks
    def stop(self, timeout=15.0):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            yield self.wait_exit(timeout)
        except NodeFailed:
            self.kill()
        _running.discard(self)

    def kill(self):
        """SIGKILL the node and all its workers at once (a crash)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        _running.discard(self)

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def checkout_node(test, name, **options):
    """
    A RouterNode (``options`` as RouterNode takes them) whose directory is
    ``.crossbar`` in a fresh folder beside a ``.venv`` link to this one, as
    in a checkout: the dev config's guest workers (demo, emulator) find
    ``../.venv/bin/python`` there. ``test`` cleans both up.
    """
    base = tempfile.mkdtemp(prefix="hub-{}-".format(name))
    test.addCleanup(shutil.rmtree, base, True)
    os.symlink(os.path.join(REPO, ".venv"), os.path.join(base, ".venv"))
    node = RouterNode(name=name, directory=os.path.join(base, ".crossbar"), **options)
    test.addCleanup(node.cleanup)
    return node


# shared resources (nodes, or setups holding nodes) kept alive per test process, most recently asked for
# last: a run's modules each share their own, and keeping all of them (some 30 per process, a controller
# and a router each) held 14 GB and slowed every later test
SHARED_ALIVE = 4
# asked for by some 30 modules: kept for the whole run, not counted among the SHARED_ALIVE
KEPT = "default"
# key -> (resource, alive, dispose)
_shared = {}


def _evict(keep):
    """Dispose of the least recently asked-for shared resources (never ``KEPT``) until at most ``keep`` others are left."""
    while len([key for key in _shared if key != KEPT]) > keep:
        key = next(key for key in _shared if key != KEPT)
        _, _, dispose = _shared.pop(key)
        dispose()


@defer.inlineCallbacks
def shared(key, build, start, alive, dispose):
    """
    A resource built (``build()``) and started (``start(resource)``, a
    Deferred) once per test process and ``key``, and reused by every test
    that asks for it while it is among the ``SHARED_ALIVE`` last asked for
    or is the ``KEPT`` one. An older one is disposed of (``dispose(resource)``),
    and built afresh when asked for again; so is one that is no longer
    ``alive(resource)``, and one whose start failed. Ask for it in each test
    (or ``setUp``); never keep it across tests.
    """
    entry = _shared.pop(key, None)
    if entry is not None and not entry[1]():
        entry[2]()
        entry = None
    if entry is None:
        _evict(SHARED_ALIVE - 1)
        resource = build()
        entry = (resource, lambda: alive(resource), lambda: dispose(resource))
        _shared[key] = entry
        try:
            yield start(resource)
        except BaseException:
            if _shared.get(key) is entry:
                del _shared[key]
            entry[2]()
            raise
    else:
        _shared[key] = entry
    return entry[0]


def node_alive(node):
    """Whether ``node`` (None: no node yet) has a running process."""
    return node is not None and node.process is not None and node.process.poll() is None


def shared_node(key="default", build=None, start=None, **options):
    """
    A node shared as ``shared`` describes (a new port and directory when
    started afresh); ``build()`` makes it (``RouterNode(name=key, **options)``
    when not given) and ``start(node)`` starts it (``node.start()``).
    """
    return shared(key, build or (lambda: RouterNode(name=key, **options)), start or (lambda node: node.start()),
                  node_alive, lambda node: node.cleanup())


@atexit.register
def _kill_all():
    for node in list(_running):
        node.kill()
    for _, _, dispose in list(_shared.values()):
        dispose()
