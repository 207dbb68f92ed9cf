"""
Failures that say what to do, on real nodes: a bad value of each setting
kind, a production node on generated development secrets and the demo's
OData port taken each stop the node with one line that names the setting,
the problem and the fix (the worker exits 78, Crossbar's node non-zero), and
no Python traceback. The dev node listens on loopback unless HUB_INTERFACE
says otherwise. Also the units of the two patches behind the quiet, loopback
dev node (listen_interface, quiet_detach).
"""

import os
import socket

import psutil
from twisted.internet import defer
from twisted.trial import unittest

from components.core import refusal
from components.iot import demo
from components.node import node_settings, topology
from components.node.patches import listen_interface, quiet_detach
from components.core.settings import Settings, SettingsError
from tests.support.node import CONFIG, NodeFailed, RouterNode, checkout_node, router_worker

NODE_DIR = os.path.dirname(CONFIG)
TRACEBACK = "Traceback (most recent call last)"
WORKER_REFUSED = "process ended with exit code {}".format(refusal.REFUSED)

# (what, environment, words the one line must hold): one bad value per kind of setting
BAD_SETTINGS = (
    ("int", {"COUNTER_MAX_PER_CALL": "abc"}, ("COUNTER_MAX_PER_CALL", "'abc'")),
    ("float", {"COUNTER_RATE": "fast"}, ("COUNTER_RATE", "'fast'")),
    ("bool", {"HISTORY": "maybe"}, ("HISTORY", "on or off", "'maybe'")),
    ("duration", {"CLOCK_INTERVAL": "fast"}, ("CLOCK_INTERVAL", "duration", "'fast'")),
    ("url", {"ODATA_URL": "ftp:x"}, ("ODATA_URL", "http or https")),
    ("database url", {"DATABASE_URL": "nonsense"}, ("DATABASE_URL", "sqlite:///", "postgresql://")),
    ("secret", {"JWT_SECRET": "tooshort"}, ("JWT_SECRET", "32 bytes")),
    ("address", {"HUB_INTERFACE": "everywhere"}, ("HUB_INTERFACE", "IPv4 address", "'everywhere'")),
    ("production, no JWT key", {"HUB_ENV": "production", "JWT_SECRET": ""},
     ("JWT_SECRET", "JWT_PUBLIC_KEY_FILE", "production node", "HUB_ENV=production")),
)


@defer.inlineCallbacks
def refused(node, timeout=90):
    """Start ``node``, which must refuse; fire with ``(exit code, the refusal lines, the log)``."""
    try:
        # Crossbar may still log the worker "configured and ready" while the node goes down
        yield node.start(timeout=timeout)
    except NodeFailed:
        pass
    code = yield node.wait_exit(timeout=timeout)
    log = node.log_text()
    lines = [line for line in log.splitlines() if "refuses to start" in line]
    return code, lines, log


class BadSettingTests(unittest.TestCase):
    """One node per kind of setting, each started with one bad value."""

    timeout = 900

    @defer.inlineCallbacks
    def test_each_kind_refuses_with_one_line(self):
        for what, env, words in BAD_SETTINGS:
            node = RouterNode(name="refusal", env=env)
            self.addCleanup(node.cleanup)
            code, lines, log = yield refused(node)
            tail = "{}:\n{}".format(what, node.log_tail(30))
            self.assertNotEqual(code, 0, tail)
            self.assertEqual(len(lines), 1, tail)
            for word in words:
                self.assertIn(word, lines[0], what)
            self.assertIn(WORKER_REFUSED, log, tail)
            self.assertNotIn(TRACEBACK, log, tail)
            node.cleanup()


class ProductionTests(unittest.TestCase):
    """master.json on generated development secrets."""

    timeout = 300

    @defer.inlineCallbacks
    def test_master_config_without_jwt_settings_refuses(self):
        """HUB_ENV unset, no JWT settings: the production config's worker names what to set and exits 78."""
        node = RouterNode(name="production", config_path=os.path.join(NODE_DIR, "master.json"),
                          env={"JWT_SECRET": "", "HUB_ENV": ""})
        self.addCleanup(node.cleanup)
        code, lines, log = yield refused(node)
        self.assertNotEqual(code, 0, node.log_tail())
        self.assertEqual(len(lines), 1, node.log_tail())
        for word in ("the JWT key is not configured on this production node", "production config",
                     "set JWT_SECRET", "JWT_PUBLIC_KEY_FILE", "never runs on generated development secrets"):
            self.assertIn(word, lines[0])
        self.assertIn(WORKER_REFUSED, log)
        self.assertNotIn(TRACEBACK, log)
        self.assertFalse(os.path.exists(os.path.join(node.directory, "secrets", "jwt_secret")))


class DemoPortTests(unittest.TestCase):
    """The demo OData service's port taken by another process stops the dev node."""

    timeout = 300

    @defer.inlineCallbacks
    def test_taken_demo_port_stops_the_dev_node(self):
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        node = checkout_node(self, "demo-port", keep_workers=(demo.WORKER,),
                             env={"DEMO": "on", "DEMO_ODATA_PORT": str(port),
                                  "ODATA_URL": "http://127.0.0.1:{}{}".format(port, demo.ODATA_PATH)})
        code, lines, log = yield refused(node)
        self.assertNotEqual(code, 0, node.log_tail())
        self.assertEqual(len(lines), 1, node.log_tail())
        for word in ("127.0.0.1:{} is taken".format(port), "DEMO_ODATA_PORT", "ODATA_URL", "DEMO=off"):
            self.assertIn(word, lines[0])
        self.assertNotIn(TRACEBACK, log)


class LoopbackTests(unittest.TestCase):
    """The dev node listens on 127.0.0.1 unless HUB_INTERFACE says otherwise; production configs on every one."""

    timeout = 300

    def test_configs(self):
        """config.json's web endpoint reads HUB_INTERFACE (default loopback); master/client name no interface."""
        import json
        for name in ("config.json", "master.json", "client.json"):
            with open(os.path.join(NODE_DIR, name)) as handle:
                config = json.load(handle)
            interfaces = [transport["endpoint"].get("interface") for worker in config["workers"]
                          for transport in worker.get("transports", []) if transport["endpoint"]["type"] == "tcp"]
            expected = [listen_interface.DEV_INTERFACE] if name == "config.json" else [None] * len(interfaces)
            self.assertEqual(interfaces, expected, name)
        dev = topology.production_defaults(topology.master_config())
        self.assertNotIn(listen_interface.DEV_INTERFACE, repr(dev))

    @defer.inlineCallbacks
    def test_dev_node_listens_on_loopback(self):
        node = RouterNode(name="loopback")
        self.addCleanup(node.cleanup)
        self.assertEqual(router_worker(node.config)["transports"][0]["endpoint"]["interface"],
                         listen_interface.DEV_INTERFACE)
        yield node.start()
        listening = {conn.laddr.ip for conn in psutil.net_connections(kind="tcp")
                     if conn.status == psutil.CONN_LISTEN and conn.laddr.port == node.port}
        self.assertEqual(listening, {"127.0.0.1"})


class ListenInterfaceUnitTests(unittest.SynchronousTestCase):
    """The listen_interface patch."""

    def test_resolved(self):
        endpoint = {"type": "tcp", "port": 8080, "interface": listen_interface.DEV_INTERFACE}
        self.assertEqual(listen_interface.resolved(endpoint, {})["interface"], "127.0.0.1")
        self.assertEqual(listen_interface.resolved(endpoint, {"HUB_INTERFACE": "0.0.0.0"})["interface"], "0.0.0.0")
        self.assertEqual(endpoint["interface"], listen_interface.DEV_INTERFACE)  # a copy is changed
        # blank is unset, as the setting reads it: not Crossbar's '' (every interface)
        for blank in ("", " ", "\t\n"):
            self.assertEqual(listen_interface.resolved(endpoint, {"HUB_INTERFACE": blank})["interface"], "127.0.0.1")
        for plain in ({"type": "tcp", "port": 1}, {"type": "tcp", "port": 1, "interface": "10.0.0.1"},
                      {"type": "unix", "path": "x.sock"}):
            self.assertIs(listen_interface.resolved(plain, {}), plain)

    def test_install_wraps_once_and_checks_the_setting(self):
        calls = []

        class Transport:
            __name__ = "transport"

            @staticmethod
            def create_listening_port_from_config(config, cbdir, *rest, **options):
                calls.append(config)
        module = Transport()
        self.assertTrue(listen_interface.install(module, {"HUB_INTERFACE": "0.0.0.0"}))
        self.assertFalse(listen_interface.install(module, {}))
        module.create_listening_port_from_config({"interface": listen_interface.DEV_INTERFACE}, "dir")
        self.assertEqual(calls, [{"interface": "0.0.0.0"}])
        self.assertRaises(SettingsError, listen_interface.install, Transport(), {"HUB_INTERFACE": "::1"})

    def test_setting(self):
        self.assertEqual(Settings(environ={}).get(node_settings.HUB_INTERFACE), "127.0.0.1")


class QuietDetachUnitTests(unittest.SynchronousTestCase):
    """The quiet_detach patch: close acts once per session."""

    def test_close_once(self):
        closed = []

        class Session:
            def close(self):
                closed.append(self)
        self.assertTrue(quiet_detach.install(Session))
        self.assertFalse(quiet_detach.install(Session))
        first, second = Session(), Session()
        for session in (first, first, second, first):
            session.close()
        self.assertEqual(closed, [first, second])
