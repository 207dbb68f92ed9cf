"""
The dev node's public port is the setting PORT (default 8080): the
listen_interface patch moves the dev web endpoint there, so ``make start``,
``reactive-hub start`` and a hand-started ``crossbar start`` listen where
the node's own clients (demo device, simulator) connect.
"""

import json
import os

import psutil
import treq
from twisted.internet import defer
from twisted.trial import unittest

from components.core import core_settings
from components.core.settings import SettingsError
from components.iot import DEVICE_PREFIX, demo
from components.node.patches import listen_interface
from tests.support.clients import connect
from tests.support.node import CONFIG, PUBLIC_PORT, RouterNode, checkout_node, free_port, router_worker
from tests.support.polling import eventually


def _dev_endpoint(config):
    """The dev config's web endpoint (the one whose interface is the dev marker)."""
    return next(transport["endpoint"] for transport in router_worker(config)["transports"]
                if transport["endpoint"].get("interface") == listen_interface.DEV_INTERFACE)


def _committed_endpoint():
    with open(CONFIG) as handle:
        return _dev_endpoint(json.load(handle))


class DevPortUnitTests(unittest.SynchronousTestCase):
    """listen_interface.resolved: the dev endpoint's port from PORT, else the config's literal port."""

    def test_nothing_set_is_8080(self):
        """A hand-started node with an empty environment listens on 127.0.0.1:8080, PORT's default."""
        endpoint = listen_interface.resolved(_committed_endpoint(), {})
        self.assertEqual((endpoint["interface"], endpoint["port"]), ("127.0.0.1", 8080))
        self.assertEqual(endpoint["port"], core_settings.PORT.default)

    def test_port_moves_the_dev_endpoint(self):
        committed = _committed_endpoint()
        endpoint = listen_interface.resolved(committed, {"PORT": "18123", "HUB_INTERFACE": "0.0.0.0"})
        self.assertEqual((endpoint["interface"], endpoint["port"]), ("0.0.0.0", 18123))
        self.assertEqual(committed["port"], 8080)  # a copy is changed
        for blank in ("", " "):
            self.assertEqual(listen_interface.resolved(committed, {"PORT": blank})["port"], 8080)

    def test_other_endpoints_keep_their_port(self):
        """Only the dev endpoint follows PORT: a literal or another ${...} interface keeps the config's port."""
        for endpoint in ({"type": "tcp", "port": 8090}, {"type": "tcp", "port": 8090, "interface": "10.0.0.1"},
                         {"type": "tcp", "port": 8090, "interface": "${OTHER_INTERFACE:-127.0.0.1}"}):
            self.assertEqual(listen_interface.resolved(endpoint, {"PORT": "18123"})["port"], 8090)

    def test_malformed_port_refused(self):
        for bad in ("http", "0", "70000"):
            self.assertRaises(SettingsError, listen_interface.resolved, _committed_endpoint(), {"PORT": bad})

    def test_install_checks_port(self):
        class Transport:
            __name__ = "transport"

            @staticmethod
            def create_listening_port_from_config(config, cbdir, *rest, **options):
                return config
        self.assertRaises(SettingsError, listen_interface.install, Transport(), {"PORT": "eighty"})
        module = Transport()
        self.assertTrue(listen_interface.install(module, {"PORT": "18124"}))
        created = module.create_listening_port_from_config(
            {"type": "tcp", "port": 8080, "interface": listen_interface.DEV_INTERFACE}, "dir")
        self.assertEqual(created["port"], 18124)


def _committed_port(config):
    """RouterNode moves 8080 to a free port in its config file; put the committed literal back."""
    _dev_endpoint(config)["port"] = PUBLIC_PORT


class DevPortNodeTests(unittest.TestCase):
    """A real dev-config node with the committed port 8080 in its config listens on the port PORT names."""

    timeout = 180

    @defer.inlineCallbacks
    def test_node_listens_on_port(self):
        port = free_port()
        node = RouterNode(name="devport", transform=_committed_port, env={"PORT": str(port)})
        self.addCleanup(node.cleanup)
        self.assertEqual(_dev_endpoint(node.config)["port"], 8080)
        yield node.start()
        response = yield treq.get("http://127.0.0.1:{}/health".format(port), persistent=False)
        self.assertEqual(response.code, 200, node.log_tail())
        router_pids = {child.pid for child in psutil.Process(node.process.pid).children(recursive=True)}
        ports = {conn.laddr.port for conn in psutil.net_connections(kind="tcp")
                 if conn.status == psutil.CONN_LISTEN and conn.pid in router_pids}
        self.assertIn(port, ports)
        self.assertNotIn(8080, ports)

    @defer.inlineCallbacks
    def test_demo_device_follows(self):
        """The demo device (a guest worker, same PORT) posts its readings to the node on that port."""
        port, odata_port = free_port(), free_port()
        node = checkout_node(self, "devport-demo", keep_workers=(demo.WORKER,), transform=_committed_port,
                             env={"PORT": str(port), "DEMO": "on", "DEMO_ODATA_PORT": str(odata_port),
                                  "ODATA_URL": "http://127.0.0.1:{}{}".format(odata_port, demo.ODATA_PATH)})
        node.port = port  # where clients connect (node.url)
        yield node.start()
        client = yield connect(self, node)
        readings = []
        yield client.session.subscribe(readings.append, DEVICE_PREFIX + demo.DEVICE_NAME)
        yield eventually(lambda: readings, timeout=60, message="no demo device reading",
                         details=lambda: node.log_tail())
        self.assertEqual(readings[0]["device"], demo.DEVICE_NAME)
