"""
Production node configs, derived from the all-in-one dev config
(``.crossbar/config.json``) so the realm, roles and component settings are
written once:

- ``master``: the user directory side. One router worker; the web transport
  serves the admin UI, ``ws``, ``/auth/*`` (signs tokens with
  ``JWT_PRIVATE_KEY_FILE``), ``/health`` and ``/metrics``; the master
  components of user sync run in a container worker.
- ``client``: the side users connect to. The router worker keeps the realm,
  the authenticator (verifies with ``JWT_PUBLIC_KEY_FILE`` only), the
  per-node singletons (clock, serial, OData, device bridge) and an internal
  web transport on ``INTERNAL_PORT`` (``/publish``, ``/apps``, ``/health``, ``/metrics``
  open to whoever reaches that port, ``/rlink``). ``PROXIES`` proxy workers
  terminate the public WebSocket on ``$PORT`` (shared port, one process per
  core) and hand each session to the router over a Unix socket (the public
  ``/metrics`` needs ``METRICS_TOKEN``); ``CONTAINERS`` container workers run the
  scalable components (counter, user-sync bridge) with shared registrations.
- ``client --peer host:port``: the same, plus a router-to-router link
  (Crossbar's ``rlinks``) to another client node's internal port.

``reactive-hub topology write`` (``python -m components.node.topology write``)
rewrites ``.crossbar/master.json`` and ``.crossbar/client.json``; the test
suite fails when they are stale.
``reactive-hub topology client --peer client-1:8090 > linked.json``
prints a linked variant; ``client --mesh client-peers --replicas 3`` links a
StatefulSet pod to its siblings. The dev config is read from the node
directory (``CROSSBAR_DIR``), else from the repository.
"""

import argparse
import copy
import json
import os
import socket
import sys

from components import applications, counter, event_history, iot, usersync
from components.applications import wamp_gate
from components.auth import AUTHENTICATE, PEER_AUTHENTICATE
from components.core.exits import outcome
from components.core import core_settings, devsecrets
from components.core.settings import Settings, node_dir
from components.iot import demo
from components.node.boot import booted
from components.node.patches import listen_interface

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEV_CONFIG = os.path.join(REPO, ".crossbar", "config.json")
REALM = "reactive"
INTERNAL_PORT = 8090
# proxy workers take a literal port (Crossbar substitutes "$PORT" only in router transports)
PUBLIC_PORT = 8080
PROXIES = 2
CONTAINERS = 2
PROXY_SOCKET = "proxy.sock"
BACKEND_SOCKET = "backend.sock"
# the internal transport's token-guarded /metrics, which the proxies serve as the public /metrics
PUBLIC_METRICS = "public-metrics"
# topics every linked node forwards to its users; the rest (time.tic, iot.odata.value) are produced on each node
SHARED_TOPICS = (counter.TOPIC, usersync.RELAY, iot.SERIAL_TOPIC, applications.RELAY, iot.ALARM_TOPIC)
# ... and topic families, matched by prefix (named counters publish on counter.changed.<name>)
SHARED_PREFIXES = (counter.NAMED_TOPIC_PREFIX, iot.DEVICE_PREFIX, applications.PREFIX, event_history.FEED_PREFIX)
# components that scale out: one instance per container worker (shared registrations)
SCALABLE = ("counter", "usersync_client", "usersync_bridge", "usersync")
# components that belong to the master node
MASTER_ONLY_PREFIXES = ("usersync_master", "usersync_relay", "outbox", "master_")


PEER_AUTHENTICATOR = {"id": "peer_authenticator", "type": "class",
                      "classname": "components.auth.peerauth.PeerAuthenticator", "realm": REALM, "role": "authenticator",
                      "extra": {"RLINK_PEER_KEYS": "${RLINK_PEER_KEYS}"}}


def _allow(call=False, register=False, publish=False, subscribe=False):
    return {"call": call, "register": register, "publish": publish, "subscribe": subscribe}


def _permission(uri, match="exact", **allow):
    return {"uri": uri, "match": match, "allow": _allow(**allow),
            "disclose": {"caller": True, "publisher": True}, "cache": True}


def dev_config_path():
    """``config.json`` of the node directory (``--cbdir``/``CROSSBAR_DIR``/``./.crossbar``), else the repository's."""
    candidate = os.path.join(node_dir(), "config.json")
    return candidate if os.path.exists(candidate) else DEV_CONFIG


def load_dev_config(path=None):
    with open(path or dev_config_path()) as handle:
        return json.load(handle)


def mesh_peers(hostname, service, replicas, port=INTERNAL_PORT):
    """
    The peers of a StatefulSet pod: ``<name>-<i>.<service>`` for every other
    ordinal ``i`` of ``replicas`` (the pod's own hostname is ``<name>-<ordinal>``).
    """
    name, _, ordinal = hostname.rpartition("-")
    if not name or not ordinal.isdigit():
        raise ValueError("hostname {!r} is not <statefulset>-<ordinal>".format(hostname))
    return [("{}-{}.{}".format(name, index, service), port) for index in range(replicas) if index != int(ordinal)]


def _router(config):
    return next(worker for worker in config["workers"] if worker["type"] == "router")


def _realm(router):
    return next(realm for realm in router["realms"] if realm["name"] == REALM)


def _role(realm, name):
    for role in realm["roles"]:
        if role["name"] == name:
            return role
    return None


def _add_role(realm, name, permissions):
    existing = _role(realm, name)
    if existing is None:
        realm["roles"].append({"name": name, "permissions": permissions})
    else:
        uris = {item["uri"] for item in existing["permissions"]}
        existing["permissions"].extend(item for item in permissions if item["uri"] not in uris)


def _web_transport(router):
    return next(transport for transport in router["transports"] if transport["type"] == "web")


def _is_master_only(component):
    return any(component.get("id", "").startswith(prefix) for prefix in MASTER_ONLY_PREFIXES)


def _is_scalable(component):
    return component.get("id") in SCALABLE or component.get("id", "").startswith("usersync_client")


def _peer_roles(realm):
    """
    ``rlink``: the remote leg of a peer's router-to-router link, which pulls
    the shared topics only (node-local ones such as ``time.tic`` stay home);
    ``proxy_auth``: the service session proxies call the authenticator with.
    """
    _add_role(realm, "rlink", [_permission(uri, subscribe=True) for uri in SHARED_TOPICS]
              + [_permission(uri, match="prefix", subscribe=True) for uri in SHARED_PREFIXES])
    _add_role(realm, "proxy_auth", [_permission(AUTHENTICATE, call=True),
                                    _permission(wamp_gate.AUTHENTICATE, call=True)])
    if _role(realm, "authenticator") is not None:
        _add_role(realm, "authenticator", [_permission(PEER_AUTHENTICATE, register=True)])
    if _role(realm, "backend") is not None:
        _add_role(realm, "backend", [_permission(usersync.RELAY, publish=True, subscribe=True)])


def _unix_rawsocket(path):
    return {"type": "rawsocket", "endpoint": {"type": "unix", "path": path}, "serializer": "cbor",
            "url": "rs://localhost"}


def _container_component(component, socket_path):
    item = copy.deepcopy(component)
    item.pop("role", None)
    item["transport"] = _unix_rawsocket(socket_path)
    return item


def _websocket_service(dev_web):
    service = copy.deepcopy(dev_web["paths"]["ws"])
    service["auth"]["ticket"]["authenticator-role"] = "proxy_auth"
    if "wampcra" in service["auth"]:
        service["auth"]["wampcra"]["authenticator-role"] = "proxy_auth"
    return service


def client_config(dev=None, peers=(), proxies=PROXIES, containers=CONTAINERS, internal_port=INTERNAL_PORT,
                  port=PUBLIC_PORT):
    """The client node config: see the module docstring. ``peers`` is a list of ``(host, port)``."""
    dev = copy.deepcopy(dev or load_dev_config())
    router = _router(dev)
    realm = _realm(router)
    _peer_roles(realm)
    dev_web = _web_transport(router)
    components = router.get("components", [])
    singletons = [item for item in components if not _is_scalable(item) and not _is_master_only(item)]
    scalable = [item for item in components if _is_scalable(item)]

    internal_paths = {
        "/": {"type": "json", "value": {"node": "client", "transport": "internal"}},
        "rlink": {"type": "websocket", "serializers": ["cbor"],
                  "auth": {"cryptosign": {"type": "dynamic", "authenticator": PEER_AUTHENTICATE}}},
    }
    for name in ("health", "metrics", "publish", "apps"):
        if name in dev_web["paths"]:
            internal_paths[name] = copy.deepcopy(dev_web["paths"][name])
    if "metrics" in internal_paths:
        # open to whoever reaches the internal port; the public /metrics goes to the token-guarded copy
        internal_paths[PUBLIC_METRICS] = copy.deepcopy(internal_paths["metrics"])
        internal_paths["metrics"]["extra"] = {"transport": "internal"}
    router["transports"] = [
        # every proxied session has its own backend connection: a deep accept queue for connection storms
        {"id": "proxies", "type": "rawsocket", "endpoint": {"type": "unix", "path": PROXY_SOCKET, "backlog": 4096},
         "serializers": ["cbor"], "options": {"max_message_size": 1048576},
         "auth": {"anonymous-proxy": {"type": "static"}}},
        {"id": "containers", "type": "rawsocket", "endpoint": {"type": "unix", "path": BACKEND_SOCKET, "backlog": 256},
         "serializers": ["cbor"], "auth": {"anonymous": {"type": "static", "role": "backend"}}},
        {"id": "internal", "type": "web", "endpoint": {"type": "tcp", "port": internal_port, "backlog": 1024},
         "paths": internal_paths},
    ]
    router["components"] = singletons + [PEER_AUTHENTICATOR]
    _monitor_extra(router, MONITOR_DATABASE="client", MONITOR_OUTBOX="off")
    # a client node has no user table of its own: the user sync copies the revocation facts into its database
    _component_extra(router, "authenticator", REVOCATION_DATABASE="${REVOCATION_DATABASE:-client}")
    router["options"] = dict(router.get("options", {}), title="reactive hub client router")
    if peers:
        realm["rlinks"] = [_rlink(index, host, port) for index, (host, port) in enumerate(peers)]

    public_paths = {"/": copy.deepcopy(dev_web["paths"]["/"]), "ws": _websocket_service(dev_web)}
    for name in ("health", "metrics", "publish", "apps"):
        target = PUBLIC_METRICS if name == "metrics" else name
        public_paths[name] = {"type": "reverseproxy", "host": "127.0.0.1", "port": internal_port, "path": "/" + target}
    roles = sorted({role["name"] for role in realm["roles"]} - {"rlink"})
    workers = [router]
    for index in range(1, containers + 1):
        if scalable:
            workers.append({"id": "backend{}".format(index), "type": "container",
                            "options": {"title": "reactive hub components {}".format(index)},
                            "components": [_container_component(item, BACKEND_SOCKET) for item in scalable]})
    for index in range(1, proxies + 1):
        workers.append({
            "id": "proxy{}".format(index), "type": "proxy",
            "options": {"title": "reactive hub proxy {}".format(index)},
            "connections": {"router": {"transport": _unix_rawsocket(PROXY_SOCKET)}},
            "routes": {REALM: {role: "router" for role in roles}},
            "transports": [{"id": "web", "type": "web",
                            "endpoint": {"type": "tcp", "port": port, "backlog": 1024, "shared": True},
                            "paths": public_paths}],
        })
    dev["workers"] = workers
    return booted(dev)


def router_replicas_config(dev=None, routers=2, port=PUBLIC_PORT):
    """
    One node, several router workers (one core each): every router worker is a
    replica of the realm with its own authenticator, clock and components and
    its own container worker (counter, user-sync bridge), all listening on one
    shared port (SO_REUSEPORT spreads the connections). The replicas are linked
    pairwise with rlinks over Unix sockets for the shared topics, exactly as
    separate client nodes are, so each event is fanned out by the router worker
    that holds the subscriber. The serial reader (hardware) runs in the first
    router worker only. This node does not link to other nodes.
    """
    dev = copy.deepcopy(dev or load_dev_config())
    template = _router(dev)
    components = template.get("components", [])
    singletons = [item for item in components if not _is_scalable(item) and not _is_master_only(item)]
    scalable = [item for item in components if _is_scalable(item)]
    dev_web = _web_transport(template)
    paths = {name: copy.deepcopy(service) for name, service in dev_web["paths"].items() if name != "auth"}
    workers = []
    for index in range(1, routers + 1):
        router = copy.deepcopy(template)
        router["id"] = "router" if index == 1 else "router{}".format(index)
        router["options"] = dict(router.get("options", {}), title="reactive hub router {}".format(index))
        realm = _realm(router)
        _peer_roles(realm)
        socket_path = "backend{}.sock".format(index)
        router["transports"] = [
            {"id": "web", "type": "web", "endpoint": {"type": "tcp", "port": port, "backlog": 1024, "shared": True},
             "paths": copy.deepcopy(paths)},
            {"id": "rlink", "type": "websocket", "serializers": ["cbor"],
             "endpoint": {"type": "unix", "path": "rlink{}.sock".format(index), "backlog": 64},
             "auth": {"cryptosign": {"type": "dynamic", "authenticator": PEER_AUTHENTICATE}}},
            {"id": "containers", "type": "rawsocket", "endpoint": {"type": "unix", "path": socket_path, "backlog": 256},
             "serializers": ["cbor"], "auth": {"anonymous": {"type": "static", "role": "backend"}}},
        ]
        # one serial port: on the first router only (alarms run on each: components.iot.alarm_sync)
        router["components"] = [item for item in singletons
                                if index == 1 or item.get("id") != "serial_reader"]
        router["components"].append(PEER_AUTHENTICATOR)
        _monitor_extra(router, MONITOR_DATABASE="client", MONITOR_OUTBOX="off")
        _component_extra(router, "authenticator", REVOCATION_DATABASE="${REVOCATION_DATABASE:-client}")
        realm["rlinks"] = [_local_rlink(other) for other in range(1, routers + 1) if other != index]
        workers.append(router)
        if scalable:
            workers.append({"id": "backend{}".format(index), "type": "container",
                            "options": {"title": "reactive hub components {}".format(index)},
                            "components": [_container_component(item, socket_path) for item in scalable]})
    dev["workers"] = workers
    return booted(dev)


def _local_rlink(other):
    link = _rlink(other, "localhost", 0)
    link["id"] = "router{}".format(other)
    link["transport"] = {"type": "websocket", "serializers": ["cbor"], "url": "ws://localhost/rlink",
                         "endpoint": {"type": "unix", "path": "rlink{}.sock".format(other), "timeout": 5}}
    return link


def _rlink(index, host, port):
    return {"id": "peer{}".format(index), "realm": REALM,
            "transport": {"type": "websocket", "endpoint": {"type": "tcp", "host": host, "port": port, "timeout": 5},
                          "url": "ws://{}:{}/rlink".format(host, port), "serializers": ["cbor"]},
            "forward_local_events": True, "forward_remote_events": False,
            "forward_local_invocations": False, "forward_remote_invocations": False}


def master_config(dev=None):
    """The master node config: one router worker; master components in a container worker."""
    dev = copy.deepcopy(dev or load_dev_config())
    router = _router(dev)
    components = router.get("components", [])
    keep = [item for item in components if item.get("id") in ("authenticator", "monitor")]
    master_only = [item for item in components if _is_master_only(item)]
    router["components"] = keep
    _monitor_extra(router, MONITOR_DATABASE="master", MONITOR_OUTBOX="on")
    router["options"] = dict(router.get("options", {}), title="reactive hub master router")
    web = _web_transport(router)
    web["paths"].pop("publish", None)
    web["paths"].pop("apps", None)
    # applications join client nodes only (their gate and registry live there)
    web["paths"]["ws"]["auth"].pop("wampcra", None)
    realm = _realm(router)
    realm["roles"] = [role for role in realm["roles"] if role["name"] not in ("app", "app_gate")]
    workers = [router]
    if master_only:
        router["transports"].append(
            {"id": "containers", "type": "rawsocket", "endpoint": {"type": "unix", "path": BACKEND_SOCKET},
             "serializers": ["cbor"], "auth": {"anonymous": {"type": "static", "role": "backend"}}})
        workers.append({"id": "master", "type": "container", "options": {"title": "reactive hub master components"},
                        "components": [_container_component(item, BACKEND_SOCKET) for item in master_only]})
    dev["workers"] = workers
    return booted(dev)


def _monitor_extra(router, **settings):
    _component_extra(router, "monitor", **settings)


def _component_extra(router, component_id, **settings):
    for item in router["components"]:
        if item.get("id") == component_id:
            item.setdefault("extra", {}).update(settings)


def production_defaults(value):
    """
    ``value`` (a config or part of one) with the production defaults: private payloads are end-to-end
    encrypted unless told otherwise (``E2E_ENCRYPTION`` defaults to on; the dev config's default is off),
    so every master and client node needs the one shared ``E2E_KEK``/``E2E_KEK_FILE``. The dev node's
    demo stays out: no ``demo`` worker, and ``SERIAL_URL``/``ODATA_URL`` have no demo defaults
    (``components.iot.demo.without_demo``). Every native worker of a whole config gets
    ``HUB_CONFIG_ENV=production`` in its environment, so it refuses generated development secrets
    (``components.core.devsecrets``; ``HUB_ENV`` overrides).
    A listening endpoint's dev ``interface`` (``${HUB_INTERFACE:-127.0.0.1}``) is left out.
    """
    if isinstance(value, dict):
        if "workers" in value:
            value = dict(value, workers=[_production_worker(worker) for worker in value["workers"]])
        # the dev config's loopback default stays out: production endpoints listen on every interface
        return {key: production_defaults(item) for key, item in value.items()
                if not (key == "interface" and item == listen_interface.DEV_INTERFACE)}
    if isinstance(value, list):
        return [production_defaults(item) for item in value if not demo.is_worker(item)]
    if value == "${E2E_ENCRYPTION:-off}":
        return "${E2E_ENCRYPTION:-on}"
    return demo.DEV_DEFAULTS.get(value, value) if isinstance(value, str) else value


def _production_worker(worker):
    """``worker`` (a copy) with ``HUB_CONFIG_ENV=production`` in its environment when it runs hub code."""
    if worker.get("type") not in ("router", "container", "proxy"):
        return worker
    worker = copy.deepcopy(worker)
    env = worker.setdefault("options", {}).setdefault("env", {})
    env.setdefault("vars", {})[devsecrets.CONFIG_MARKER] = devsecrets.PRODUCTION
    return worker


def _dump(config):
    return json.dumps(production_defaults(config), indent=4) + "\n"


def rendered(dev=None):
    """``{filename: text}`` of the committed production configs."""
    return {"master.json": _dump(master_config(dev)), "client.json": _dump(client_config(dev))}


def _parse_peer(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("peer must be host:port")
    return host, int(port)


def main(argv=None, prog="python -m components.node.topology"):
    """The command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="rewrite .crossbar/master.json and .crossbar/client.json")
    write.add_argument("--directory", default=os.path.dirname(DEV_CONFIG))
    client = sub.add_parser("client", help="print a client node config")
    client.add_argument("--peer", action="append", type=_parse_peer, default=[], help="host:port of a peer's rlink")
    client.add_argument("--mesh", metavar="SERVICE", help="link to every other pod of this StatefulSet "
                        "(hostname <name>-<ordinal>) through the headless SERVICE; needs --replicas")
    client.add_argument("--replicas", type=int, default=0)
    client.add_argument("--port", type=int, default=PUBLIC_PORT, help="the proxies' public port")
    client.add_argument("--proxies", type=int, default=PROXIES)
    client.add_argument("--routers", type=int, default=1, help="router worker replicas on the shared port "
                        "instead of proxy workers (no links to other nodes)")
    client.add_argument("--containers", type=int, default=CONTAINERS)
    sub.add_parser("master", help="print the master node config")
    args = parser.parse_args(argv)
    if args.command == "write":
        for name, text in rendered().items():
            with open(os.path.join(args.directory, name), "w") as handle:
                handle.write(text)
    elif args.command == "client":
        peers = list(args.peer)
        if args.mesh:
            peers += mesh_peers(Settings().get(core_settings.HOSTNAME) or socket.gethostname(), args.mesh, args.replicas)
        if args.routers > 1:
            if peers:
                parser.error("--routers does not combine with --peer/--mesh")
            config = router_replicas_config(routers=args.routers, port=args.port)
        else:
            config = client_config(peers=peers, proxies=args.proxies, containers=args.containers, port=args.port)
        sys.stdout.write(_dump(config))
    else:
        sys.stdout.write(_dump(master_config()))
    return 0


if __name__ == "__main__":
    sys.exit(outcome(main))
