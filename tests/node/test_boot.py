"""
components.node.boot: a node started by hand (``.venv/bin/crossbar start
--cbdir DIR``, neither PYTHONPATH nor PORT set) installs every patch of the
registry in its workers; a worker whose security patch cannot install
(simulated: a Twisted whose HTTPChannel lacks a method the body limits hook,
in a router or a proxy worker) refuses to start with one line naming the
patch and the Twisted version, and the node exits non-zero. Every committed and generated node config names the
boot entry first in each worker.
"""

import copy
import json
import os
from importlib import metadata

from twisted.internet import defer
from twisted.trial import unittest

from components.node import boot, topology
from components.node.patches import bodylimit, fast_send, nodekey_cache, registry, session_cutoff
from tests.node.test_bodylimit import REFUSAL, WireCase, head
from tests.support.node import CONFIG, CROSSBAR, NodeFailed, RouterNode, free_port

COMMITTED = ("config.json", "master.json", "client.json")
# the simulated older Twisted: loaded by the router worker only (Crossbar's "pythonpath" worker option)
OLD_TWISTED = '''\
from twisted.web import http

del http.HTTPChannel._maybeChooseTransferDecoder
'''


def hand_started(name, transform=None):
    """A RouterNode whose crossbar command runs as typed by hand: no PYTHONPATH, no PORT."""
    node = RouterNode(name=name, transform=transform)
    node.env.pop("PORT", None)
    node.env.pop("PYTHONPATH", None)
    return node


def hand_started_client(name, proxies, containers):
    """``hand_started`` with a production client node's config (``proxies`` proxy workers on its port)."""
    node = hand_started(name)
    config = topology.client_config(port=node.port, internal_port=free_port(), proxies=proxies, containers=containers)
    with open(os.path.join(node.directory, "config.json"), "w") as handle:
        json.dump(topology.production_defaults(config), handle)
    return node


class HandStartedNodeTests(WireCase):
    """`crossbar start --cbdir DIR` alone: the node's own boot entries install the patches."""

    @defer.inlineCallbacks
    def test_declared_2_gb_body_gets_413(self):
        """POST /auth/login and /publish declaring Content-Length 2147483648 are answered 413 at once."""
        node = hand_started("handstart")
        self.addCleanup(node.cleanup)
        self.assertNotIn("PYTHONPATH", node.env)
        yield node.start()
        self.assertEqual(os.path.basename(CROSSBAR), "crossbar")
        for target in (b"/auth/login", b"/publish"):
            client = yield self.open(node)
            client.transport.write(head(target, b"Content-Type: application/json", b"Content-Length: 2147483648"))
            status, _, body = yield self.answer(client, timeout=5.0)
            self.assertEqual((status, json.loads(body)), (413, REFUSAL), target)
        # every router patch said so, once
        for module in registry.for_kind("router"):
            self.assertEqual(node.log_text().count(registry.installed_note(module)), 1, module.NAME)

    @defer.inlineCallbacks
    def test_a_config_without_its_boot_entry_still_gets_the_patches(self):
        """A hand-written config without the boot component: the assembly's first component installs the patches
        before any transport listens, with one warning naming the missing entry (fails without that net)."""
        def unbooted(config):
            for worker in config["workers"]:
                if worker.get("type") == "router":
                    worker["components"] = [item for item in worker.get("components", [])
                                            if item.get("id") != boot.BOOT_ID]
            return config

        node = hand_started("unbooted", transform=unbooted)
        self.addCleanup(node.cleanup)
        yield node.start()
        client = yield self.open(node)
        client.transport.write(head(b"/auth/login", b"Content-Type: application/json", b"Content-Length: 2147483648"))
        status, _, body = yield self.answer(client, timeout=5.0)
        self.assertEqual((status, json.loads(body)), (413, REFUSAL))
        self.assertEqual(node.log_text().count("this worker's config has no boot entry"), 1, node.log_tail())

    @defer.inlineCallbacks
    def test_health_first_in_a_router_worker_installs_the_router_patches(self):
        """A router worker whose config keeps only ``/health`` of the hub (no boot entry, no hub components): the
        health resource installs the router's patches (session_cutoff among them), not a proxy's."""
        def health_only(config):
            router = next(worker for worker in config["workers"] if worker.get("type") == "router")
            router["components"] = []
            for transport in router.get("transports", []):
                endpoint = transport.get("endpoint", {})
                if "interface" in endpoint:
                    endpoint["interface"] = "127.0.0.1"
            return config

        node = hand_started("healthfirst", transform=health_only)
        self.addCleanup(node.cleanup)
        yield node.start()
        yield node.logged(registry.installed_note(session_cutoff))
        self.assertIn("HealthResource installs the router patches", node.log_text())
        for module in registry.for_kind("router"):
            self.assertEqual(node.log_text().count(registry.installed_note(module)), 1, module.NAME)

    @defer.inlineCallbacks
    def test_client_node_proxies_and_containers(self):
        """A client node: the proxies refuse the 2 GB body; proxy and container workers install their patches."""
        node = hand_started_client("handclient", proxies=2, containers=1)
        self.addCleanup(node.cleanup)
        yield node.start()
        client = yield self.open_when_listening(node)
        client.transport.write(head(b"/publish", b"Content-Length: 2147483648"))
        status, _, body = yield self.answer(client, timeout=5.0)
        self.assertEqual((status, json.loads(body)), (413, REFUSAL))
        from tests.support.polling import eventually
        yield eventually(lambda: node.log_text().count(registry.installed_note(nodekey_cache)) == 2, timeout=60,
                         message=node.log_tail())
        # router + 2 proxies send fast; the router and the container take caller keywords
        self.assertEqual(node.log_text().count(registry.installed_note(fast_send)), 3)
        self.assertEqual(node.log_text().count("reactive hub: patch callkwargs installed"), 2)


class RefusalTests(unittest.TestCase):
    """A security patch that cannot install: the worker refuses, the node exits non-zero."""

    timeout = 120

    def older_twisted_in(self, node, workers):
        """The workers of ``node``'s config in ``workers`` import a Twisted without the hooked method."""
        os.makedirs(os.path.join(node.directory, "old-twisted"))
        with open(os.path.join(node.directory, "old-twisted", "sitecustomize.py"), "w") as handle:
            handle.write(OLD_TWISTED)
        path = os.path.join(node.directory, "config.json")
        with open(path) as handle:
            config = json.load(handle)
        for worker in config["workers"]:
            if worker["type"] in workers:
                worker.setdefault("options", {})["pythonpath"] = ["old-twisted"]
        with open(path, "w") as handle:
            json.dump(config, handle)

    @defer.inlineCallbacks
    def refused(self, node):
        """Fire with the one refusal line once the node has exited non-zero."""
        try:
            # Crossbar may still log the worker "configured and ready" while the node goes down
            yield node.start()
        except NodeFailed:
            pass
        code = yield node.wait_exit(timeout=60)
        self.assertNotEqual(code, 0, node.log_tail())
        lines = [line for line in node.log_text().splitlines() if "security patch" in line]
        self.assertTrue(lines, node.log_tail())
        for text in ("security patch bodylimit cannot be installed", "Twisted " + metadata.version("Twisted"),
                     "_maybeChooseTransferDecoder", "refuses to start"):
            self.assertIn(text, lines[0])
        return lines

    @defer.inlineCallbacks
    def test_router_refuses_without_the_body_limit_internals(self):
        """One line names bodylimit, the installed Twisted and what is missing; the node exits non-zero."""
        node = hand_started("refusal")
        self.addCleanup(node.cleanup)
        self.older_twisted_in(node, ("router",))
        lines = yield self.refused(node)
        self.assertEqual(len(lines), 1, node.log_tail())
        self.assertIn("[Router", lines[0])
        self.assertNotIn(registry.installed_note(bodylimit), node.log_text())
        self.assertNotIn("component 'authenticator' started", node.log_text())

    @defer.inlineCallbacks
    def test_proxy_refuses_without_the_body_limit_internals(self):
        """A client node whose proxy workers lack the internals: a proxy refuses, the node exits non-zero."""
        node = hand_started_client("proxyrefusal", proxies=1, containers=0)
        self.addCleanup(node.cleanup)
        self.older_twisted_in(node, ("proxy",))
        lines = yield self.refused(node)
        self.assertEqual(len(lines), 1, node.log_tail())
        self.assertIn("[Proxy", lines[0])


class ConfigTests(unittest.SynchronousTestCase):
    """Every node config the hub ships or generates starts each worker with its boot entry."""

    def assertBooted(self, config, name):
        self.assertEqual(boot.booted(copy.deepcopy(config)), config, name)
        for worker in config["workers"]:
            if worker["type"] in ("router", "container"):
                self.assertEqual(worker["components"][0]["classname"],
                                 boot.ROUTER_BOOT if worker["type"] == "router" else boot.CONTAINER_BOOT, name)
            if worker["type"] == "proxy":
                self.assertEqual(worker["transports"][0]["paths"]["/"]["classname"], boot.PROXY_ROOT, name)

    def test_committed_configs(self):
        for name in COMMITTED:
            with open(os.path.join(os.path.dirname(CONFIG), name)) as handle:
                config = json.load(handle)
            self.assertBooted(config, name)
            for worker in config["workers"]:
                for transport in worker.get("transports", []):
                    self.assertNotEqual(transport["endpoint"].get("port"), "$PORT", name)

    def test_generated_configs(self):
        self.assertBooted(topology.client_config(proxies=2, containers=2), "client")
        self.assertBooted(topology.master_config(), "master")
        self.assertBooted(topology.router_replicas_config(routers=2), "replicas")

    def test_boot_added_once_and_first(self):
        config = {"workers": [
            {"type": "router", "realms": [{"name": "r"}], "components": [{"id": "a", "classname": "x.A"}]},
            {"type": "container", "components": [{"id": "b", "realm": "r", "transport": {"type": "rawsocket"}}]},
            {"type": "proxy", "transports": [{"type": "web", "paths": {"/": {"type": "resource", "classname": "x.R"}}}]},
            {"type": "guest"}]}
        once = boot.booted(copy.deepcopy(config))
        self.assertEqual(boot.booted(copy.deepcopy(once)), once)
        router, container, proxy, guest = once["workers"]
        self.assertEqual([item["id"] for item in router["components"]], ["boot", "a"])
        self.assertEqual(container["components"][0]["transport"], {"type": "rawsocket"})
        self.assertEqual(proxy["transports"][0]["paths"]["/"]["extra"]["root"]["classname"], "x.R")
        self.assertEqual(guest, {"type": "guest"})

    def test_proxy_must_start_with_a_web_root(self):
        """A proxy whose first transport has no web root would listen before its patches: refused."""
        config = {"workers": [{"type": "proxy", "id": "p", "transports": [{"type": "rawsocket"}]}]}
        self.assertRaises(ValueError, boot.booted, config)


class InstallTests(unittest.SynchronousTestCase):
    """boot.install: a refusal is logged as one critical line and exits with REFUSED; boot.ensure installs the
    kind of worker the process is."""

    def test_worker_kind_from_the_command_line(self):
        for klass, kind in (("crossbar.worker.router.RouterController", "router"),
                            ("crossbar.worker.proxy.ProxyController", "proxy"),
                            ("crossbar.worker.container.ContainerController", "container"),
                            ("crossbar.worker.testee.WebSocketTesteeController", None)):
            self.assertEqual(boot.worker_kind(["main.py", "--cbdir", "x", "--klass", klass, "--loglevel", "info"]),
                             kind)
        self.assertIsNone(boot.worker_kind(["trial", "tests"]))
        self.assertIsNone(boot.worker_kind(["main.py", "--klass"]))

    def test_ensure_installs_the_kind_of_this_worker(self):
        installed, warned = [], []
        self.patch(boot, "_BOOTED", set())
        self.patch(boot, "install", lambda kind, log=None, **options: installed.append(kind))

        class Log:
            def warn(self, format, **fields):
                warned.append(fields["kind"])
        boot.ensure("proxy", "HealthResource", log=Log(), argv=["main.py", "--klass", "a.b.RouterController"])
        boot.ensure("proxy", "HealthResource", log=Log(), argv=["trial"])
        self.assertEqual((installed, warned), (["router", "proxy"], ["router", "proxy"]))

    def test_refusal_exits(self):
        lines, exits = [], []

        class Log:
            def critical(self, format, **fields):
                lines.append(format.format(**fields))

        def refuse(kind, log, environ):
            raise registry.Refused("reactive hub: security patch x cannot be installed")

        self.patch(registry, "install_for", refuse)
        self.assertRaises(registry.Refused, boot.install, "router", Log(), {}, exits.append)
        self.assertEqual((lines, exits), (["reactive hub: security patch x cannot be installed"], [boot.REFUSED]))
