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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from twisted.internet import defer

from components.iot import demo

from tests.support.polling import eventually

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, ".crossbar", "config.json")
CROSSBAR = os.path.join(os.path.dirname(sys.executable), "crossbar")
TEST_SECRET = "test-secret-" + "x" * 40
# dev-only workers: the local AWS emulator on a fixed port, the demo sources (components.iot.demo)
DEV_ONLY_WORKERS = ("aws-emulator", "demo")
READY_MARKER = 'Ok, worker "Router router" configured and ready!'
PUBLIC_PORT = 8080  # the web transport's port in the committed node configs

_running = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    @defer.inlineCallbacks
    def start(self, timeout=45.0):
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
                    self.process.returncode, self.log_tail()))
            return False
        try:
            yield eventually(ready, timeout=timeout)
        except AssertionError:
            self.kill()
            raise NodeFailed("node not ready after {}s:\n{}".format(timeout, self.log_tail()))
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


_shared = {}


@defer.inlineCallbacks
def shared_node(key="default", **options):
    """
    A node started once per test process and ``key`` and reused by every test
    that asks for it; killed when the process exits.
    """
    node = _shared.get(key)
    if node is None or node.process is None or node.process.poll() is not None:
        node = RouterNode(name=key, **options)
        _shared[key] = node
        yield node.start()
    return node


@atexit.register
def _kill_all():
    for node in list(_running):
        node.kill()
    for node in _shared.values():
        shutil.rmtree(node.directory, ignore_errors=True)
