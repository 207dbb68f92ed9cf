"""
The production topology: the master and client node configs, and two client
nodes on this machine linked with Crossbar's router-to-router links, behind
proxy workers, with the counter in container workers on one PostgreSQL
database, tokens verified with the master's Ed25519 public key, and a small
failover TCP balancer in front (what a load balancer does in production);
and a master/client split with the keys keygen makes, sharing the
end-to-end key-encryption key (a mismatched one gives 503, not 500).
"""

import copy
import json
import os
import shutil
import subprocess
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, protocol, reactor
from twisted.protocols import portforward
from twisted.trial import unittest

from components.node.patches import fast_send, nodekey_cache, registry
from components.auth import tokens
from components.node import boot, topology
from components.core.settings import KeyConfigError, Settings
from tests.support.clients import connect, status_of
from tests.support.databases import postgres_url
from tests.support.node import CROSSBAR, REPO, RouterNode, free_port
from tests.support.polling import eventually

NODE_DIR = os.path.join(REPO, ".crossbar")


def _check(config_name, env=None):
    return subprocess.run([CROSSBAR, "check", "--cbdir", NODE_DIR, "--config", config_name],
                          env=dict(os.environ, PORT="8080", **(env or {})), capture_output=True, text=True,
                          timeout=60)


class ConfigTests(unittest.TestCase):
    """The committed node configs."""

    timeout = 120

    def test_every_config_checks(self):
        """`crossbar check --config` accepts config.json, master.json and client.json."""
        for name in ("config.json", "master.json", "client.json"):
            result = _check(name)
            self.assertEqual(result.returncode, 0, name + ": " + result.stdout + result.stderr)
            self.assertIn("looks good", result.stdout, name)

    def test_linked_variant_checks(self):
        """A client config with rlinks to two peers (as `python -m components.node.topology client --peer` prints) checks."""
        directory = tempfile.mkdtemp(prefix="hub-linked-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "config.json")
        result = subprocess.run([os.path.join(os.path.dirname(CROSSBAR), "python"), "-m", "components.node.topology",
                                 "client", "--peer", "client-1:8090", "--peer", "client-2:8090"],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(path, "w") as handle:
            handle.write(result.stdout)
        links = topology._realm(topology._router(json.loads(result.stdout)))["rlinks"]
        self.assertEqual([link["transport"]["url"] for link in links],
                         ["ws://client-1:8090/rlink", "ws://client-2:8090/rlink"])
        checked = subprocess.run([CROSSBAR, "check", "--cbdir", directory], capture_output=True, text=True,
                                 timeout=60, env=dict(os.environ, PORT="8080"))
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_router_replicas_variant_checks(self):
        """`components.node.topology client --routers 2` (router workers on one shared port, linked) checks."""
        directory = tempfile.mkdtemp(prefix="hub-replicas-")
        self.addCleanup(shutil.rmtree, directory, True)
        with open(os.path.join(directory, "config.json"), "w") as handle:
            json.dump(topology.router_replicas_config(routers=2), handle)
        checked = subprocess.run([CROSSBAR, "check", "--cbdir", directory], capture_output=True, text=True,
                                 timeout=60, env=dict(os.environ, PORT="8080"))
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_committed_configs_are_current(self):
        """master.json and client.json are what `python -m components.node.topology write` makes of config.json."""
        for name, text in topology.rendered().items():
            with open(os.path.join(NODE_DIR, name)) as handle:
                self.assertEqual(handle.read(), text, "{} is stale: run python -m components.node.topology write".format(
                    name))


class TopologyTests(unittest.SynchronousTestCase):
    """The shape of the generated configs."""

    def test_client_shape(self):
        """Client: router + 2 containers (counter, user-sync bridge) + 2 proxies on one shared port, every user role routed."""
        config = topology.client_config()
        kinds = [(worker["id"], worker["type"]) for worker in config["workers"]]
        self.assertEqual(kinds, [("router", "router"), ("backend1", "container"), ("backend2", "container"),
                                 ("proxy1", "proxy"), ("proxy2", "proxy")])
        router = topology._router(config)
        in_router = {item["id"] for item in router["components"]}
        self.assertIn("authenticator", in_router)
        self.assertIn("peer_authenticator", in_router)
        self.assertIn("clock", in_router)
        self.assertNotIn("counter", in_router)
        self.assertNotIn("usersync_master", in_router)
        container = {item["id"] for item in config["workers"][1]["components"]}
        self.assertIn("counter", container)
        proxy = config["workers"][3]
        self.assertTrue(proxy["transports"][0]["endpoint"]["shared"])
        routed = set(proxy["routes"]["reactive"])
        self.assertTrue({"user", "admin", "device", "proxy_auth"} <= routed)
        self.assertNotIn("rlink", routed)
        self.assertEqual(proxy["transports"][0]["paths"]["ws"]["auth"]["ticket"]["authenticator-role"], "proxy_auth")

    def test_rlink_role_pulls_shared_topics_only(self):
        """A peer's link may subscribe the shared topics and nothing else (node-local time.tic stays home)."""
        realm = topology._realm(topology._router(topology.client_config(peers=[("peer", 8090)])))
        role = topology._role(realm, "rlink")
        uris = {item["uri"]: item["allow"] for item in role["permissions"]}
        self.assertEqual(set(uris), set(topology.SHARED_TOPICS) | set(topology.SHARED_PREFIXES))
        self.assertEqual({item["match"] for item in role["permissions"] if item["uri"] in topology.SHARED_PREFIXES},
                         {"prefix"})
        self.assertTrue(all(allow == {"call": False, "register": False, "publish": False, "subscribe": True}
                            for allow in uris.values()))
        link = realm["rlinks"][0]
        self.assertEqual((link["forward_local_events"], link["forward_remote_events"],
                          link["forward_local_invocations"], link["forward_remote_invocations"]),
                         (True, False, False, False))

    def test_router_replicas_shape(self):
        """Replicas: each router worker on the shared port, pulling from the other through a Unix socket;
        the serial reader only in the first; one container worker per router worker."""
        config = topology.router_replicas_config(routers=2)
        routers = [worker for worker in config["workers"] if worker["type"] == "router"]
        self.assertEqual([worker["id"] for worker in routers], ["router", "router2"])
        for index, router in enumerate(routers):
            self.assertTrue(router["transports"][0]["endpoint"]["shared"])
            links = topology._realm(router)["rlinks"]
            self.assertEqual([link["transport"]["endpoint"]["path"] for link in links],
                             ["rlink{}.sock".format(2 - index)])
        self.assertIn("serial_reader", {item["id"] for item in routers[0]["components"]})
        self.assertNotIn("serial_reader", {item["id"] for item in routers[1]["components"]})
        containers = [worker for worker in config["workers"] if worker["type"] == "container"]
        self.assertEqual([item["transport"]["endpoint"]["path"] for item in
                          (worker["components"][0] for worker in containers)], ["backend1.sock", "backend2.sock"])

    def test_master_shape(self):
        """Master: the login endpoint, no device bridge, user-sync master components in a container worker."""
        config = topology.master_config()
        router = topology._router(config)
        paths = topology._web_transport(router)["paths"]
        self.assertIn("auth", paths)
        self.assertNotIn("publish", paths)
        self.assertEqual({item["id"] for item in router["components"]}, {"boot", "authenticator", "monitor"})
        containers = [worker for worker in config["workers"] if worker["type"] == "container"]
        self.assertEqual([item["id"] for item in containers[0]["components"]], ["boot", "usersync_master"])


class ExposureTests(unittest.SynchronousTestCase):
    """What the committed production configs show strangers, and their documented defaults."""

    def committed(self, name):
        with open(os.path.join(NODE_DIR, name)) as handle:
            return json.load(handle)

    def web_services(self, config):
        for worker in config["workers"]:
            for transport in worker.get("transports", []):
                for name, service in transport.get("paths", {}).items():
                    yield worker["id"], name, service

    def test_no_websocket_status_page_anywhere(self):
        """Every WebSocket service of master.json and client.json (router and proxies) has the status page off."""
        for name in ("master.json", "client.json"):
            services = [(worker, path, service) for worker, path, service in self.web_services(self.committed(name))
                        if service.get("type") == "websocket" and path == "ws"]
            self.assertTrue(services, name)
            for worker, path, service in services:
                self.assertIs(service["options"]["enable_webstatus"], False, (name, worker, path))
                self.assertFalse(service["options"].get("show_server_version", False), (name, worker, path))

    def test_public_url_reaches_the_ui_and_the_login(self):
        """The UI resource and /auth of every production config read PUBLIC_URL."""
        for name in ("master.json", "client.json"):
            for worker, path, service in self.web_services(self.committed(name)):
                if service.get("classname") == boot.PROXY_ROOT:
                    service = service["extra"]["root"]  # a proxy's root: the UI resource it builds after its patches
                if path in ("/", "auth") and service.get("type") == "resource":
                    self.assertEqual(service["extra"]["PUBLIC_URL"], "${PUBLIC_URL}", (name, worker, path))

    def test_production_configs_encrypt_by_default(self):
        """master.json and client.json default E2E_ENCRYPTION to on (the dev config to off), as docs/operations.md
        says."""
        for name, default in (("config.json", "off"), ("master.json", "on"), ("client.json", "on")):
            text = json.dumps(self.committed(name))
            self.assertIn('"${{E2E_ENCRYPTION:-{}}}"'.format(default), text, name)
            self.assertNotIn('"${{E2E_ENCRYPTION:-{}}}"'.format("on" if default == "off" else "off"), text, name)
        with open(os.path.join(REPO, "docs", "operations.md")) as handle:
            text = " ".join(handle.read().split())
        self.assertIn("End-to-end encryption is on by default in `master.json` and `client.json` "
                      "(`E2E_ENCRYPTION` defaults to `off` only in the dev config)", text)


class FailoverBalancer(protocol.ServerFactory):
    """A TCP balancer: each connection goes to the first backend that accepts it (ordered preference)."""

    def __init__(self, backends):
        self.backends = list(backends)
        self.connections = []

    def buildProtocol(self, addr):
        inbound = portforward.ProxyServer()
        inbound.factory = self
        inbound.connectionMade = lambda: self._dial(inbound, list(self.backends))
        self.connections.append(inbound)
        return inbound

    def _dial(self, inbound, remaining):
        inbound.transport.pauseProducing()
        if not remaining:
            inbound.transport.loseConnection()
            return
        host, port = remaining[0]
        client = portforward.ProxyClientFactory()
        client.setServer(inbound)
        original = client.clientConnectionFailed
        client.clientConnectionFailed = lambda connector, reason: (
            self._dial(inbound, remaining[1:]) if remaining[1:] else original(connector, reason))
        reactor.connectTCP(host, port, client, timeout=2)


def _keypair(directory):
    key = ed25519.Ed25519PrivateKey.generate()
    private = os.path.join(directory, "jwt.key")
    public = os.path.join(directory, "jwt.pub")
    with open(private, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with open(public, "wb") as handle:
        handle.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


class LinkedClientNodes:
    """Two client nodes with the production config, linked both ways, on one PostgreSQL database."""

    def __init__(self, testcase, env=None):
        self.keys = tempfile.mkdtemp(prefix="hub-keys-")
        private, public = self.key_files = _keypair(self.keys)
        self.database_url = postgres_url(testcase)
        env = dict({"JWT_SECRET": "", "JWT_PUBLIC_KEY_FILE": public, "DATABASE_URL": self.database_url,
                    "CLOCK_INTERVAL": "0.5", "COUNTER_RATE": "1000", "COUNTER_BURST": "1000"}, **(env or {}))
        self.issuer = tokens.TokenIssuer(tokens.load_keys(Settings({}, {"JWT_PUBLIC_KEY_FILE": public,
                                                           "JWT_PRIVATE_KEY_FILE": private}, self.keys)))
        self.nodes = [RouterNode(name="client{}".format(index), env=env) for index in (1, 2)]
        internal = [free_port(), free_port()]
        for index, node in enumerate(self.nodes):
            peer = 1 - index
            config = topology.client_config(port=node.port, internal_port=internal[index],
                                            peers=[("127.0.0.1", internal[peer])])
            with open(os.path.join(node.directory, "config.json"), "w") as handle:
                json.dump(config, handle, indent=2)
        self.balancer = FailoverBalancer([("127.0.0.1", node.port) for node in self.nodes])
        self.listening = reactor.listenTCP(0, self.balancer, interface="127.0.0.1")
        self.url = "ws://127.0.0.1:{}/ws".format(self.listening.getHost().port)

    def token(self, sub, role="user"):
        return self.issuer.issue(sub, role)

    @defer.inlineCallbacks
    def start(self, index=None):
        indexes = [0, 1] if index is None else [index]
        if index is None:
            # one node key for both, as a Secret would give them: each accepts the other's link
            yield self.nodes[0].start()
            for name in ("key.priv", "key.pub"):
                shutil.copy(os.path.join(self.nodes[0].directory, name), os.path.join(self.nodes[1].directory, name))
            yield self.nodes[1].start()
        else:
            yield self.nodes[index].start()
        for position in indexes:
            yield self.ready(self.nodes[position])

    @defer.inlineCallbacks
    def ready(self, node):
        """Poll until the proxies answer /health/ready (the router is ready well before the proxies listen)."""
        yield eventually(lambda: status_of(node.http + "/health/ready"), check=lambda code: code == 200,
                         timeout=60, interval=0.1, message="node not ready", details=node.log_tail)

    def linked(self, node):
        return 'Ok, router-to-router peer0 started' in node.log_text()

    @defer.inlineCallbacks
    def cleanup(self):
        yield self.listening.stopListening()
        for connection in self.balancer.connections:
            if connection.transport is not None:
                connection.transport.loseConnection()
        for node in self.nodes:
            node.cleanup()
        shutil.rmtree(self.keys, ignore_errors=True)


class RouterReplicasTests(unittest.TestCase):
    """Two router workers of one node, linked over Unix sockets (components.node.topology.router_replicas_config)."""

    timeout = 150

    @defer.inlineCallbacks
    def test_users_on_both_router_workers(self):
        """Users of either router worker get their own clock, click the one counter and see each other's clicks."""
        node = RouterNode(name="replicas")
        self.addCleanup(node.cleanup)
        config = topology.router_replicas_config(routers=2, port=node.port)
        direct = []
        for router in (worker for worker in config["workers"] if worker["type"] == "router"):
            port = free_port()
            direct.append("ws://127.0.0.1:{}/ws".format(port))  # each worker also on a port of its own
            transport = copy.deepcopy(router["transports"][0])
            transport.update(id="direct", endpoint={"type": "tcp", "port": port})
            transport["paths"] = {"/": transport["paths"]["/"], "ws": transport["paths"]["ws"]}
            router["transports"].append(transport)
        with open(os.path.join(node.directory, "config.json"), "w") as handle:
            json.dump(config, handle)
        yield node.start()
        yield eventually(lambda: 'Ok, worker "Container backend2" configured and ready' in node.log_text(),
                         timeout=90, message="second container worker not ready")
        yield eventually(lambda: node.log_text().count("Ok, router-to-router") >= 2, timeout=30,
                         message="links between the router workers not up")
        clients = []
        for index, url in enumerate(direct):
            client = yield connect(self, _Direct(url), sub="replica{}".format(index))
            clients.append(client)
        seen = [[], []]
        for index, client in enumerate(clients):
            yield client.session.subscribe(seen[index].append, "counter.changed")
            state = yield client.session.call("time.get")
            self.assertIn("value", state)
        first = yield clients[0].session.call("counter.click", 2)
        second = yield clients[1].session.call("counter.click", 3)
        self.assertEqual((first["value"], second["value"]), (2, 5))
        yield eventually(lambda: all([state["value"] for state in events][-1:] == [5] for events in seen),
                         message="clicks not seen on both router workers: {}".format(seen))


def _keygen(directory):
    """The documented key material: run ``python -m components.auth.keygen DIR``; the paths it wrote."""
    result = subprocess.run([os.path.join(os.path.dirname(CROSSBAR), "python"), "-m", "components.auth.keygen",
                             directory], capture_output=True, text=True, timeout=120, cwd=REPO)
    if result.returncode != 0:
        raise AssertionError("keygen failed: " + result.stderr)
    return {name: os.path.join(directory, name) for name in ("jwt.key", "jwt.pub", "e2e_kek")}


def _adduser(node, username, password, superuser=False):
    adduser = subprocess.run(
        [os.path.join(os.path.dirname(CROSSBAR), "python"), "-m", "components.auth", "adduser", username,
         "--password-stdin"] + (["--superuser"] if superuser else []), input=password + "\n", capture_output=True, text=True, timeout=60,
        cwd=REPO, env=dict(node.env, CROSSBAR_DIR=node.directory))
    if adduser.returncode != 0:
        raise AssertionError("adduser failed: " + adduser.stderr)


@defer.inlineCallbacks
def _raw_get(port, path):
    """The raw bytes of a ``GET path`` answer (headers and body), read until the server closes."""
    done = defer.Deferred()

    class Collect(protocol.Protocol):
        data = b""

        def connectionMade(self):
            self.transport.write(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")

        def dataReceived(self, data):
            self.data += data

        def connectionLost(self, reason):
            done.callback(self.data)
    yield protocol.ClientCreator(reactor, Collect).connectTCP("127.0.0.1", port, timeout=5)
    return (yield done)


class _Request:
    """The parts of a request AuthService.token reads: no Origin (a script), a session cookie."""

    def getHeader(self, name):
        return None

    def getCookie(self, name):
        return b"session-1"


class _Found:
    """Directory and login sessions that know one active user."""

    def login(self, session_id):
        return defer.succeed(("erin", "sid-1", 0))

    def get_user(self, username):
        return defer.succeed({"username": username, "is_active": True, "is_superuser": False, "first_name": "E"})


class _WrongKEK:
    def usable(self, username, generation=None):
        return defer.fail(KeyConfigError("cannot unwrap the data key of {!r} (k1): wrong E2E_KEK?".format(username)))


class TokenKeyMismatchTests(unittest.SynchronousTestCase):
    """/auth/token on a node whose key-encryption key cannot unwrap the user's data key."""

    def test_503_naming_e2e_kek(self):
        """The answer is 503 reactive.error.unavailable without a token, and the log line names E2E_KEK."""
        from twisted.logger import formatEvent, globalLogPublisher
        from components.auth.resource import AuthService
        from components.core.httpjson import HTTPError
        issuer = tokens.TokenIssuer(tokens.Keys("HS256", "s" * 40, "s" * 40))
        service = AuthService(_Found(), _Found(), issuer, None, cookie_lifetime=60, user_keys=_WrongKEK())
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        error = self.failureResultOf(service.token(_Request()), HTTPError).value
        self.assertEqual((error.status, error.uri), (503, "reactive.error.unavailable"))
        logged = [event for event in events if event.get("username") == "erin"]
        self.assertTrue(logged)
        self.assertIn("E2E_KEK", formatEvent(logged[0]))


class MasterAndClientTests(unittest.TestCase):
    """A master node (master.json) and a client node behind a proxy worker, as separate processes."""

    timeout = 240

    @defer.inlineCallbacks
    def test_master_token_works_on_client_until_it_expires(self):
        """
        With the keys ``components.auth.keygen`` makes (as compose and k8s give them): a user created on the
        master logs in at the master's /auth/token (EdDSA, signed with JWT_PRIVATE_KEY_FILE) and gets the
        end-to-end keys (production configs encrypt by default); the client node, sharing E2E_KEK_FILE and
        the client database, answers users.me sealed under that very key; a client node that has only the
        public key accepts the token through its proxy worker, and ends that proxied session when the token
        expires. A user whose data key was wrapped under another key-encryption key gets 503 (not 500) and
        the master's log names E2E_KEK. Neither node shows Crossbar's status page or version.
        """
        from components.db.database import Database
        from components.e2e import envelope, keys as e2e_keys
        from components.usersync import CHANGED
        from tests.support.clients import post_json
        directory = tempfile.mkdtemp(prefix="hub-keys-")
        self.addCleanup(shutil.rmtree, directory, True)
        keys = _keygen(directory)
        client_db = postgres_url(self)
        shared = {"JWT_SECRET": "", "JWT_PUBLIC_KEY_FILE": keys["jwt.pub"], "E2E_KEK_FILE": keys["e2e_kek"],
                  "DATABASE_URL": client_db}
        master = RouterNode(name="master", config_path=os.path.join(NODE_DIR, "master.json"), env=dict(
            shared, JWT_PRIVATE_KEY_FILE=keys["jwt.key"], MASTER_DATABASE_URL=postgres_url(self), JWT_TTL="10"))
        self.addCleanup(master.cleanup)
        client = RouterNode(name="proxied", env=shared)
        self.addCleanup(client.cleanup)
        config = topology.production_defaults(topology.client_config(port=client.port, internal_port=free_port(),
                                                                     proxies=1, containers=1))
        with open(os.path.join(client.directory, "config.json"), "w") as handle:
            json.dump(config, handle)
        _adduser(master, "carol", "carol-password-1")
        _adduser(master, "dave", "dave-password-1")
        yield defer.gatherResults([master.start(), client.start()])
        yield LinkedClientNodes.ready(None, client)

        code, body, response = yield post_json(master.http + "/auth/login",
                                               {"username": "carol", "password": "carol-password-1"})
        self.assertEqual(code, 200, body)
        cookies = {cookie.name: cookie.value for cookie in response.cookies()}
        code, body, _ = yield post_json(master.http + "/auth/token", cookies=cookies)
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(__import__("base64").urlsafe_b64decode(
            body["token"].split(".")[0] + "=="))["alg"], "EdDSA")
        e2e = body["e2e"]
        session = yield connect(self, client, token_source=lambda: body["token"], reconnect=False)
        state = yield session.session.call("counter.click")
        self.assertEqual(state["value"], 1)
        me = yield self._call_when_ready(session, "users.me")
        kid = envelope.parse(me["value"])[0]
        self.assertEqual(kid, e2e["current"])
        opened = envelope.open_envelope(envelope.b64decode(e2e["keys"][kid], "key"), CHANGED, me["seq"], me["value"])
        self.assertIsNone(opened)  # carol has no synced profile on this client yet: sealed "no profile"
        left = []
        session.on_leave(left.append)
        yield eventually(lambda: left, timeout=20, message="proxied session outlived its token")

        # dave's data key was wrapped under another key-encryption key (a node with its own E2E_KEK)
        db = Database(client_db)
        self.addCleanup(db.close)
        yield e2e_keys.UserKeys(db, b"k" * 32).current("dave")
        code, body, response = yield post_json(master.http + "/auth/login",
                                               {"username": "dave", "password": "dave-password-1"})
        self.assertEqual(code, 200, body)
        cookies = {cookie.name: cookie.value for cookie in response.cookies()}
        code, body, _ = yield post_json(master.http + "/auth/token", cookies=cookies)
        self.assertEqual((code, body["error"]), (503, "reactive.error.unavailable"), body)
        self.assertNotIn("token", body)
        yield eventually(lambda: any("E2E_KEK" in line and "dave" in line for line in master.log_text().splitlines()),
                         timeout=10,
                         message="no log line naming E2E_KEK: {}".format(
                             [line for line in master.log_text().splitlines() if "KEK" in line]))

        for node in (master, client):
            raw = yield _raw_get(node.port, b"/ws")
            self.assertNotIn(b"Crossbar", raw.partition(b"\r\n\r\n")[2])
            for path in (b"/", b"/health", b"/ws", b"/no-such-page"):
                raw = yield _raw_get(node.port, path)
                server = [line for line in raw.partition(b"\r\n\r\n")[0].split(b"\r\n")
                          if line.lower().startswith(b"server:")]
                self.assertFalse([line for line in server if b"/" in line or b"Crossbar" in line], (path, server))

    @defer.inlineCallbacks
    def _call_when_ready(self, session, procedure):
        """Call ``procedure``; retry while the component behind it is still starting (unavailable / no such)."""

        @defer.inlineCallbacks
        def call():
            try:
                return [(yield session.session.call(procedure))]
            except ApplicationError as error:
                if error.error not in ("reactive.error.unavailable", "wamp.error.no_such_procedure"):
                    raise
        answer = yield eventually(call, interval=0.1, message=procedure + " never became ready")
        return answer[0]


class _Direct:
    """``connect`` wants something with ``.url``."""

    def __init__(self, url):
        self.url = url


class LinkedNodesTests(unittest.TestCase):
    """Two linked client nodes (one test: starting the pair takes most of its time)."""

    timeout = 240

    @defer.inlineCallbacks
    def join(self, url, sub):
        client = yield connect(self, _Direct(url), token_source=lambda: self.pair.token(sub))
        return client

    @defer.inlineCallbacks
    def test_linked_nodes(self):
        """
        A user on node 2 gets users.changed and counter.changed published on node 1; clicks on both nodes
        count exactly; time.tic stays node-local; after node 1 is killed its clients reconnect through the
        balancer to node 2 and catch up by the seq rule.
        """
        self.pair = LinkedClientNodes(self)
        self.addCleanup(self.pair.cleanup)
        yield self.pair.start()
        one, two = self.pair.nodes
        yield eventually(lambda: self.pair.linked(one) and self.pair.linked(two), timeout=30,
                         message="rlinks not up")
        # both proxy workers of each node read the node key once, not per session (crossbar_site)
        yield eventually(lambda: all(node.log_text().count(registry.installed_note(nodekey_cache)) == 2 for node in (one, two)),
                         timeout=30, message="a proxy worker reads the node key per session")
        # the router worker and both proxy workers of each node send through components.node.patches.fast_send
        yield eventually(lambda: all(node.log_text().count(registry.installed_note(fast_send)) == 3 for node in (one, two)),
                         timeout=30, message="a router or proxy worker without the fast send path")

        # per-user event: the producer publishes users.relay on node 1 (as the SQS bridge does)
        alice_two = yield self.join(two.url, "alice")
        bob_two = yield self.join(two.url, "bob")
        producer = yield self.join(one.url, "producer")  # a user: may not publish the relay topic
        seen = {"alice": [], "bob": [], "counter": [], "tic": []}
        yield alice_two.session.subscribe(lambda event: seen["alice"].append(event), "users.changed")
        yield bob_two.session.subscribe(lambda event: seen["bob"].append(event), "users.changed")
        yield alice_two.session.subscribe(lambda state: seen["counter"].append(state), "counter.changed")
        yield alice_two.session.subscribe(lambda state: seen["tic"].append(state), "time.tic")
        from autobahn.wamp.types import PublishOptions
        refused = yield producer.session.publish("users.relay", {"username": "alice", "event": {"value": "x"}},
                                                 options=PublishOptions(acknowledge=True)).addErrback(
            lambda failure: failure.value.error)
        self.assertEqual(refused, "wamp.error.not_authorized")
        yield self._relay_from_node_one(one, {"username": "alice", "event": {"value": {"first_name": "Alice"},
                                                                             "seq": 7}})
        yield eventually(lambda: seen["alice"], message="users.changed from node 1 did not reach node 2")
        self.assertEqual(seen["alice"][0]["seq"], 7)
        self.assertEqual(seen["bob"], [])
        yield self._app_events_cross(one, alice_two, bob_two)

        # counter clicked on both nodes stays exact (one database), events cross both ways
        clickers = yield defer.gatherResults([self.join(node.url, "clicker{}".format(index))
                                              for index, node in enumerate((one, two))])
        results = yield defer.gatherResults([clickers[index % 2].session.call("counter.click", 1)
                                             for index in range(40)])
        final = yield clickers[0].session.call("counter.get")
        self.assertEqual(final["value"], 40)
        self.assertEqual(sorted(result["value"] for result in results), list(range(1, 41)))
        yield eventually(lambda: any(state["value"] == 40 for state in seen["counter"]))
        self.assertEqual(len({state["seq"] for state in seen["counter"]}), len(seen["counter"]), "duplicate events")

        # time.tic is not forwarded: node 2's subscribers see node 2's clock only (~2/s, not ~4/s)
        start = len(seen["tic"])
        yield eventually(lambda: len(seen["tic"]) >= start + 8, timeout=15)
        tics = [state["seq"] for state in seen["tic"][start:start + 8]]
        self.assertGreaterEqual(tics[-1] - tics[0], 7 * 400, "more than one clock per subscriber: {}".format(tics))

        # failover: a client through the balancer (node 1 preferred), node 1 killed, clicks on node 2 meanwhile
        viewer = yield self.join(self.pair.url, "viewer")
        view = {"seq": -1, "value": None, "joins": 0}

        def keep(state):
            if state["seq"] > view["seq"]:
                view.update(seq=state["seq"], value=state["value"])

        @defer.inlineCallbacks
        def on_join(session):
            view["joins"] += 1
            try:
                yield session.subscribe(keep, "counter.changed")
                keep((yield session.call("counter.get")))
            except ApplicationError as lost:
                if not lost.error.startswith("wamp.close."):
                    raise  # a session lost mid re-sync re-syncs on its next join
        viewer.on_join(on_join)
        yield eventually(lambda: view["value"] == 40)
        one.kill()
        yield clickers[1].session.call("counter.click", 5)
        yield eventually(lambda: view["joins"] >= 2, timeout=30, message="viewer did not reconnect to node 2")
        yield eventually(lambda: view["value"] == 45, message="viewer did not catch up after failover")

    @defer.inlineCallbacks
    def _app_events_cross(self, one, alice_two, bob_two):
        """POST /apps/publish on node 1: an event for alice reaches alice's session on node 2 (relayed), not
        bob's there; an event for everyone reaches both."""
        import base64
        from components.applications.app_registry import AppRegistry
        from components.db import db_settings
        from components.db.database import Database
        from components.e2e.keys import load_kek
        from tests.support.clients import post_json
        settings = Settings(environ=one.env, node_directory=one.directory)
        apps = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        self.addCleanup(apps.db.close)
        key, secret = yield apps.add("linked")
        auth = "Basic " + base64.b64encode("{}:{}".format(key, secret).encode()).decode("ascii")
        got = {"alice": [], "bob": []}
        feeds = {"alice": [], "bob": []}
        yield alice_two.session.subscribe(lambda *args: got["alice"].append(args), "app.linked.news")
        yield bob_two.session.subscribe(lambda *args: got["bob"].append(args), "app.linked.news")
        for name, client in (("alice", alice_two), ("bob", bob_two)):
            yield client.session.subscribe(feeds[name].append, "hub.feed.app.linked.news")
        for body in ({"topic": "app.linked.news", "args": ["for alice"], "to_users": ["alice"]},
                     {"topic": "app.linked.news", "args": ["for all"]}):
            status, answer, _ = yield post_json(one.http + "/apps/publish", body, headers={"Authorization": auth})
            self.assertEqual(status, 200, answer)
        yield eventually(lambda: len(got["alice"]) == 2 and got["bob"], timeout=30,
                         message="app events from node 1 did not reach node 2", details=lambda: repr(got))
        # the relayed event takes one hop more than the forwarded one: either may arrive first
        self.assertEqual((sorted(got["alice"]), got["bob"]), ([("for alice",), ("for all",)], [("for all",)]))
        # the stored history: node 1 stored both (the personal one for alice only), the feed carried the
        # positions to node 2, and hub.history on node 2 answers the same messages from the shared database
        yield eventually(lambda: len(feeds["alice"]) == 2 and feeds["bob"], timeout=30,
                         message="feed events from node 1 did not reach node 2", details=lambda: repr(feeds))
        self.assertEqual([message["args"] for message in feeds["bob"]], [["for all"]])
        self.assertTrue(all(message["publication"] for message in feeds["alice"] + feeds["bob"]))
        for name, client in (("alice", alice_two), ("bob", bob_two)):
            page = yield client.session.call("hub.history", "app.linked.news")
            self.assertEqual(page["events"], sorted(feeds[name], key=lambda message: message["publication"]))

    @defer.inlineCallbacks
    def _relay_from_node_one(self, node, message):
        """Publish on node 1 as a backend component would (through node 1's container socket, role backend)."""
        from autobahn.twisted.wamp import ApplicationSession
        from autobahn.twisted.rawsocket import WampRawSocketClientFactory
        from autobahn.wamp.types import ComponentConfig, PublishOptions
        joined = defer.Deferred()

        class Backend(ApplicationSession):
            def onJoin(self, details):
                joined.callback(self)

        factory = WampRawSocketClientFactory(lambda: Backend(ComponentConfig("reactive")))
        from twisted.internet.endpoints import UNIXClientEndpoint
        protocol_ = yield UNIXClientEndpoint(reactor, os.path.join(node.directory, topology.BACKEND_SOCKET)).connect(
            factory)
        session = yield joined
        yield session.publish("users.relay", message, options=PublishOptions(acknowledge=True))
        yield session.leave()
        protocol_.transport.loseConnection()
