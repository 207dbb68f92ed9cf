"""
Fan-out of time.tic to many WebSocket subscribers, in one run, on four servers:

- ``floor``: a minimal Node ``ws`` broadcast server (bench/fanout/floor.js)
  that serialises each event once and writes it to every socket -- what this
  machine can do at all;
- ``bare``: a bare Crossbar router (anonymous, no components but the boot
  component that installs the hub's patches; a Node client publishes time.tic);
- ``hub``: the all-in-one dev node (.crossbar/config.json): authenticated
  users (JWT ticket through the dynamic authenticator), the clock component
  publishing time.tic, every other component running; one router worker;
- ``stock``: the same node with ``HUB_FAST_SEND=off``: Crossbar's own send
  path instead of components/node/patches/fast_send.py (every other target has it);
- ``proxies``: the production client node (components.node.topology): the same
  realm and authenticator, with 2 proxy workers terminating the WebSockets
  in front of the router worker, and 2 container workers;
- ``before`` (only with ``--before TREE``): the dev node of an earlier checkout
  of the hub (``git worktree add TREE COMMIT``), run with this venv the way
  that tree's launchers ran it (``PYTHONPATH`` = the tree and its
  ``crossbar_site``, when it has one), to compare a change in one run;
- ``routers``: the same realm in ``--replicas`` router workers (4 by
  default: on 2 cores, 4 replicas of 1,000 subscribers each beat 2 of 2,000
  on latency) on one shared port, linked with rlinks over Unix sockets, each with its own clock
  and container worker (components.node.topology.router_replicas_config).

The load clients (one process per 1,000 connections, WAMP JSON) are
bench/fanout/client.cc, an epoll client built with g++ by --setup, so the
client side is not the bottleneck: it costs a fraction of the Node client
(bench/fanout/client.js, ``ws``; ``--client node``) per event, which matters
when clients and servers share two cores.
For each server, rate (CLOCK_INTERVAL) and subscriber count: connect and
subscribe everyone, measure memory per idle session, then count for 15 s
the events whose publication time lies in the window: delivered, loss
(events missing or later than the grace period), latency p50/p99/max
(receive time minus the event's ``ts``), CPU of every process.

    python bench/fanout.py --setup            # npm install of bench/fanout (ws) and g++ build, once
    python bench/fanout.py [--counts 1000,4000] [--rates 2,20] [--seconds 15] [--targets floor,bare,hub,...]
                           [--client native|node] [--replicas 4] [--before TREE --alternate]

Prints a table; writes bench/results/fanout.{json,md,png}. Before any work it
checks what the run needs (matplotlib for the plot; node for the floor
target and the Node client; npm and g++ when ws or the native client still
have to be installed or built) and exits with 2, naming what is missing and
how to get it.
"""

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

try:
    import psutil
except ImportError:  # a Crossbar dependency; missing() reports it before any work
    psutil = None

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)

from bench.report import histogram_percentile  # noqa: E402
from components.auth import tokens  # noqa: E402
from components.node import boot, topology  # noqa: E402
from tests.support.node import CONFIG, CROSSBAR, TEST_SECRET, RouterNode, free_port  # noqa: E402

NODE_DIR = os.path.join(BENCH, "fanout")
RESULTS = os.path.join(BENCH, "results")
PER_PROCESS = 1000
CONNECT_RATE = 400
GRACE_MS = 5000
TARGETS = ("floor", "bare", "stock", "hub", "proxies", "routers")
NATIVE_CLIENT = os.path.join(NODE_DIR, "client")
CLIENT_COMMANDS = {"native": [NATIVE_CLIENT], "node": ["node", "client.js"]}
CLIENT_NAMES = {"native": "bench/fanout/client.cc (epoll, C++)", "node": "bench/fanout/client.js (Node ws)"}


def setup(ws=True, build=True):
    """npm install ws (floor server, Node client) into bench/fanout/node_modules; build the native client."""
    if ws:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)
    if build:
        subprocess.run(["bash", os.path.join(NODE_DIR, "build.sh")], check=True)


def needs_ws():
    """True while bench/fanout/node_modules has no ``ws``."""
    return not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws"))


def needs_build():
    """True while the native client is missing or older than its sources."""
    sources = [os.path.join(NODE_DIR, name) for name in ("client.cc", "build.sh")]
    return (not os.path.exists(NATIVE_CLIENT)
            or os.path.getmtime(NATIVE_CLIENT) < max(os.path.getmtime(path) for path in sources))


def uses_node(args):
    """True when the run starts Node: the floor server or the Node load client."""
    return args.client == "node" or "floor" in args.targets.split(",")


def has_module(name):
    """True when Python module ``name`` can be imported."""
    return importlib.util.find_spec(name) is not None


BENCH_EXTRA = "pip install -e '.[bench]' (make bench does)"
TOOL_HINTS = {
    "node": "apt-get install nodejs (or --client native without the floor target)",
    "npm": "apt-get install npm, then python bench/fanout.py --setup",
    "g++": "apt-get install g++, then python bench/fanout.py --setup",
    "bash": "apt-get install bash",
}


def missing(args, which=None, module=None, ws_missing=None, build_missing=None):
    """
    ``[(what, how to get it)]`` that this invocation (``args``) needs and this
    machine lacks; empty when it can run. ``which``, ``module``, ``ws_missing``
    and ``build_missing`` default to shutil.which, has_module, needs_ws and
    needs_build.
    """
    which = which or shutil.which
    module = module or has_module
    ws_missing = ws_missing or needs_ws
    build_missing = build_missing or needs_build
    lacking = []
    if not args.setup and not module("matplotlib"):
        lacking.append(("matplotlib (the .png report)", BENCH_EXTRA))
    if args.render:
        return lacking
    tools = []
    if args.setup:
        tools = ["npm", "bash", "g++"]
    else:
        known = TARGETS + (("before",) if getattr(args, "before", None) else ())
        unknown = [name for name in args.targets.split(",") if name not in known]
        if unknown:
            lacking.append(("target " + ",".join(unknown), "--targets takes " + ",".join(TARGETS)
                            + " (and before, with --before TREE)"))
        if not module("psutil"):
            lacking.append(("psutil", "pip install -e . (a Crossbar dependency)"))
        if uses_node(args):
            tools += ["node"] + (["npm"] if ws_missing() else [])
        if args.client == "native" and build_missing():
            tools += ["bash", "g++"]
    for tool in tools:
        if which(tool) is None:
            lacking.append((tool, TOOL_HINTS[tool]))
    return lacking


def report_missing(lacking, out=None):
    """Print what is missing and how to get it (to stderr)."""
    out = out or sys.stderr
    out.write("bench/fanout.py cannot run; missing:\n")
    for what, how in lacking:
        out.write("  {}: {}\n".format(what, how))


def raise_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def load():
    return os.getloadavg()


def _wait_http(url, deadline, process=None, log=None):
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("server exited:\n" + (log() if log else ""))
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("{} not ready".format(url))


def start_quiet(node, probe="/health/ready"):
    """Start ``node`` (a RouterNode) logging warnings only, as the benches measure it; its process once
    ``probe`` answers 200 (within 120 s)."""
    log = open(node.log_path, "a")
    process = subprocess.Popen(
        [CROSSBAR, "start", "--cbdir", node.directory, "--loglevel", "warn", "--color", "false"],
        stdout=log, stderr=subprocess.STDOUT, env=node.env, cwd=node.directory, start_new_session=True)
    log.close()
    _wait_http(node.http + probe, time.monotonic() + 120, process, node.log_tail)
    return process


def bare_router():
    everything = {"call": True, "register": True, "publish": True, "subscribe": True}
    return {"version": 2, "controller": {}, "workers": [{
        "id": "router", "type": "router",
        "realms": [{"name": "reactive", "roles": [{"name": "anonymous", "permissions": [
            {"uri": "", "match": "prefix", "allow": everything, "cache": True}]}]}],
        "transports": [{"type": "web", "endpoint": {"type": "tcp", "port": "$PORT", "backlog": 4096},
                        "paths": {"ws": {"type": "websocket", "serializers": ["json"]},
                                  "health": {"type": "json", "value": {"status": "ok"}}}}]}]}


class Server:
    """One server under test: ``start(rate)`` -> ws URL; ``processes()``; ``stop()``."""

    def __init__(self, name, replicas=4, client="native", before=None):
        self.name = name
        self.replicas = replicas
        self.client = client
        self.before = before
        self.node = None
        self.process = None
        self.publisher = None

    @property
    def authenticated(self):
        return self.name in ("hub", "stock", "proxies", "routers", "before")

    def start(self, rate):
        if self.name == "floor":
            port = free_port()
            self.process = subprocess.Popen(["node", "floor.js", str(port), str(rate)], cwd=NODE_DIR,
                                            stdout=subprocess.PIPE, text=True, start_new_session=True)
            self.process.stdout.readline()
            return "ws://127.0.0.1:{}/ws".format(port)
        env = {"CLOCK_INTERVAL": str(1.0 / rate), "JWT_SECRET": TEST_SECRET, "COUNTER_RATE": "10"}
        if self.name == "stock":
            env["HUB_FAST_SEND"] = "off"
        config_path = CONFIG
        if self.name == "before":
            # an earlier tree's dev node, launched as that tree's launchers did (its crossbar_site, if any)
            config_path = os.path.join(self.before, ".crossbar", "config.json")
            env["PYTHONPATH"] = os.pathsep.join(path for path in (self.before, os.path.join(self.before, "crossbar_site"))
                                                if os.path.isdir(path))
        self.node = RouterNode(name="fanout-" + self.name, env=env, config_path=config_path)
        if self.name == "bare":
            # Crossbar with the hub's patches (its boot component) but nothing else of the hub
            config = boot.booted(bare_router())
        elif self.name == "proxies":
            config = topology.client_config(port=self.node.port, internal_port=free_port())
        elif self.name == "routers":
            config = topology.router_replicas_config(routers=self.replicas, port=self.node.port)
        else:
            config = self.node.config
        with open(os.path.join(self.node.directory, "config.json"), "w") as handle:
            json.dump(config, handle)
        self.process = start_quiet(self.node, "/health" if self.name == "bare" else "/health/ready")
        # the proxies start one after another: wait until every one listens on the shared port
        listeners = sum(1 for worker in config["workers"] if worker["type"] == "proxy") or \
            sum(1 for worker in config["workers"] if worker["type"] == "router")
        deadline = time.monotonic() + 120
        while self._listening() < listeners:
            if time.monotonic() > deadline:
                raise RuntimeError("{} of {} listeners:\n{}".format(self._listening(), listeners,
                                                                     self.node.log_tail()))
            time.sleep(0.2)
        if self.name == "bare":
            self.publisher = Clients(self.node.url, 1, None, self.client, publish_rate=rate)
            self.publisher.wait_ready(30)
        return self.node.url

    def _listening(self):
        count = 0
        for proc in self.processes().values():
            try:
                count += any(conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.node.port
                             for conn in proc.net_connections("tcp"))
            except psutil.Error:
                pass
        return count

    def processes(self):
        """``{label: psutil.Process}`` of the server (controller and every worker)."""
        if self.process is None:
            return {}
        root = psutil.Process(self.process.pid)
        found = {}
        for proc in [root] + root.children(recursive=True):
            label = _label(proc, self.name)
            found[label if label not in found else "{} {}".format(label, proc.pid)] = proc
        return found

    def stop(self):
        if self.publisher is not None:
            self.publisher.stop()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.node is not None:
            shutil.rmtree(self.node.directory, ignore_errors=True)


def _label(proc, target):
    # workers set their process title (crossbar-controller, "reactive hub proxy 1", ...)
    try:
        title = " ".join(proc.cmdline()).strip()
    except psutil.Error:
        return "gone-{}".format(proc.pid)
    if target == "floor":
        return "node floor"
    title = title.replace("reactive hub ", "")
    return title if len(title) <= 40 else "{} ({})".format(proc.name(), proc.pid)


class Clients:
    """Load-client processes (``client``: native or node) for ``count`` connections (``PER_PROCESS`` each)."""

    def __init__(self, url, count, token_file, client="native", publish_rate=0):
        self.processes = []
        self.lines = []
        self.lock = threading.Lock()
        per = [PER_PROCESS] * (count // PER_PROCESS) + ([count % PER_PROCESS] if count % PER_PROCESS else [])
        for index, size in enumerate(per):
            args = CLIENT_COMMANDS[client] + [url, str(size), token_file or "-", str(CONNECT_RATE)]
            if publish_rate:
                args += ["publish", str(publish_rate)]
            process = subprocess.Popen(args, cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, start_new_session=True)
            self.processes.append(process)
            threading.Thread(target=self._read, args=(index, process), daemon=True).start()

    def _read(self, index, process):
        for line in process.stdout:
            with self.lock:
                self.lines.append((index, json.loads(line)))

    def _latest(self, kind):
        with self.lock:
            found = {}
            for index, message in self.lines:
                if message["type"] == kind:
                    found[index] = message
            return found

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._latest("ready")) == len(self.processes):
                return True
            time.sleep(0.2)
        return False

    def subscribed(self):
        progress = self._latest("progress")
        progress.update(self._latest("ready"))
        return sum(message["subscribed"] for message in progress.values())

    def start_window(self, t0, t1):
        for process in self.processes:
            process.stdin.write(json.dumps({"t0": t0, "t1": t1, "grace": GRACE_MS}) + "\n")
            process.stdin.flush()

    def results(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self._latest("result")) < len(self.processes):
            time.sleep(0.2)
        return list(self._latest("result").values())

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _rss(processes):
    total = 0
    for proc in processes.values():
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def _cpu(processes):
    times = {}
    for label, proc in processes.items():
        try:
            cpu = proc.cpu_times()
            times[label] = cpu.user + cpu.system
        except psutil.Error:
            pass
    return times


def measure(server, url, count, rate, seconds, token_file):
    """One run: connect ``count`` subscribers, measure memory, count a window of ``seconds``."""
    before = _rss(server.processes())
    started = time.monotonic()
    clients = Clients(url, count, token_file if server.authenticated else None, server.client)
    ready = clients.wait_ready(60 + count / 50)
    connect_s = round(time.monotonic() - started, 1)
    time.sleep(2)  # let the server settle after the connection storm before reading memory
    processes = server.processes()
    after = _rss(processes)
    client_procs = {"client {}".format(index): psutil.Process(process.pid)
                    for index, process in enumerate(clients.processes)}
    t0 = int(time.time() * 1000) + 1000
    t1 = t0 + seconds * 1000
    clients.start_window(t0, t1)
    time.sleep(max(0.0, t0 / 1000.0 - time.time()))
    cpu0, cpu0_clients, wall0 = _cpu(processes), _cpu(client_procs), time.monotonic()
    time.sleep(max(0.0, t1 / 1000.0 - time.time()))
    cpu1, cpu1_clients, wall1 = _cpu(processes), _cpu(client_procs), time.monotonic()
    results = clients.results(GRACE_MS / 1000.0 + 30)
    clients.stop()
    hist = {}
    seqs = set()
    for result in results:
        for bucket, n in result["hist"].items():
            hist[int(bucket)] = hist.get(int(bucket), 0) + n
        seqs.update(result["seqs"])
    subscribed = sum(result["subscribed"] for result in results) if results else clients.subscribed()
    # expected: the configured rate for the whole window, per subscriber. A saturated router delays its own
    # clock (fewer tics) as well as the delivery; both count against it. "published" is the number of distinct
    # tics any subscriber saw (one stream per router worker for "routers": each has its own clock).
    published = len(seqs)
    expected = int(round(rate * seconds)) * count
    delivered = sum(result["in_window"] for result in results)
    wall = wall1 - wall0
    return {
        "target": server.name, "subscribers": count, "rate": rate, "seconds": seconds, "all_connected": ready,
        "subscribed": subscribed, "connect_s": connect_s, "published": published, "nominal": int(round(rate * seconds)),
        "expected": expected, "delivered": delivered, "late": sum(result["late"] for result in results),
        "loss_pct": max(0.0, round(100.0 * (expected - delivered) / expected, 2)) if expected else None,
        "p50_ms": histogram_percentile(hist, 0.1, 0.50), "p99_ms": histogram_percentile(hist, 0.1, 0.99),
        "max_ms": round(max([result["max_ms"] for result in results] or [0]), 1),
        "server_cpu_pct": {label: round(100.0 * (cpu1[label] - cpu0.get(label, 0)) / wall, 1)
                           for label in cpu1},
        "client_cpu_pct": round(sum(100.0 * (cpu1_clients[label] - cpu0_clients.get(label, 0)) / wall
                                    for label in cpu1_clients), 1),
        "mem_per_session_kb": round((after - before) / 1024.0 / max(1, subscribed), 1),
        "load_avg": [round(value, 2) for value in load()],
    }


def _tokens(count, directory):
    keys = tokens.Keys("HS256", TEST_SECRET, TEST_SECRET)
    issuer = tokens.TokenIssuer(keys, ttl=3600)
    path = os.path.join(directory, "tokens.txt")
    with open(path, "w") as handle:
        for index in range(count):
            handle.write(issuer.issue("bench{:05d}".format(index), "user") + "\n")
    return path


def row(result):
    server_cpu = " ".join("{}={}".format(label, value) for label, value in sorted(result["server_cpu_pct"].items())
                          if value >= 1.0)
    return "| {target} | {subscribed}/{subscribers} | {rate}/s | {published} | {delivered}/{expected} | {loss_pct}% | {p50_ms} | {p99_ms} | " \
           "{max_ms} | {cpu} | {client_cpu_pct} | {mem_per_session_kb} | {load} |".format(
               cpu=server_cpu or "-", load=result["load_avg"][0], **result)


HEADER = ("| server | subscribed/wanted | rate | tics seen | delivered/expected | loss | p50 ms | p99 ms | max ms | "
          "server CPU % (per process) | clients CPU % | KB per session | load |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = []
    p99 = []
    delivered = []
    for result in results:
        labels.append("{}\n{}@{}/s".format(result["target"], result["subscribers"], result["rate"]))
        p99.append(result["p99_ms"] or 0)
        delivered.append(100.0 - (result["loss_pct"] or 0))
    positions = range(len(labels))
    axes[0].bar(positions, p99, color="#4477aa")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("p99 latency (ms, log)")
    axes[1].bar(positions, delivered, color="#228833")
    axes[1].set_ylabel("delivered within grace (%)")
    axes[1].set_ylim(0, 105)
    for axis in axes:
        axis.set_xticks(list(positions))
        axis.set_xticklabels(labels, rotation=90, fontsize=7)
    fig.suptitle("time.tic fan-out: floor (Node ws), bare Crossbar, hub (stock and fast send), proxies, router replicas")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parser():
    """The command line of bench/fanout.py."""
    command = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    command.add_argument("--setup", action="store_true", help="npm install ws and build the native load client, then exit")
    command.add_argument("--counts", default="1000,4000")
    command.add_argument("--rates", default="2,20")
    command.add_argument("--seconds", type=int, default=15)
    command.add_argument("--targets", default=",".join(TARGETS))
    command.add_argument("--replicas", type=int, default=4, help="router workers of the routers target")
    command.add_argument("--client", choices=sorted(CLIENT_COMMANDS), default="native",
                         help="load client: the epoll client.cc (default) or the Node ws client.js")
    command.add_argument("--before", metavar="TREE", help="also measure target 'before': the dev node of an "
                         "earlier checkout (git worktree add TREE COMMIT), with this venv, in the same run")
    command.add_argument("--alternate", action="store_true", help="run the targets of one rate side by side and "
                         "measure them in turn for each count (a fairer comparison on a shared machine)")
    command.add_argument("--output", default="fanout")
    command.add_argument("--render", action="store_true", help="only rewrite the .md and .png from the .json")
    return command


def main(argv=None):
    args = parser().parse_args(argv)
    lacking = missing(args)
    if lacking:
        report_missing(lacking)
        return 2
    if args.render:
        with open(os.path.join(RESULTS, args.output + ".json")) as handle:
            saved = json.load(handle)
        write_report(saved["meta"], saved["results"], args.output)
        return 0
    if args.setup:
        setup()
        return 0
    wants_ws, wants_build = uses_node(args) and needs_ws(), args.client == "native" and needs_build()
    if wants_ws or wants_build:
        setup(ws=wants_ws, build=wants_build)
    limit = raise_open_files()
    counts = [int(value) for value in args.counts.split(",")]
    rates = [float(value) for value in args.rates.split(",")]
    scratch = os.path.join(RESULTS, "fanout.tmp")
    os.makedirs(scratch, exist_ok=True)
    token_file = _tokens(max(counts), scratch)
    started_load = load()
    results = []
    print(HEADER)
    names = args.targets.split(",")
    # one group of servers at a time: each target alone, or with --alternate all targets of one rate side by side
    groups = ([(names, rate) for rate in rates] if args.alternate
              else [([name], rate) for name in names for rate in rates])
    for group, rate in groups:
        servers = [Server(name, args.replicas, args.client, args.before) for name in group]
        try:
            urls = [server.start(rate) for server in servers]
            for count in counts:
                for server, url in zip(servers, urls):
                    result = measure(server, url, count, rate, args.seconds, token_file)
                    results.append(result)
                    print(row(result), flush=True)
        finally:
            for server in servers:
                server.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
            if shutil.which("node") else "-",
            "open_files_limit": limit, "load_avg_start": started_load, "load_avg_end": load(),
            "grace_ms": GRACE_MS, "per_client_process": PER_PROCESS, "router_replicas": args.replicas,
            "client": args.client, "before": args.before, "alternate": args.alternate,
            "before_commit": subprocess.run(["git", "-C", args.before, "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True).stdout.strip() if args.before else None}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, args.output + ".json"), "w") as handle:
        json.dump({"meta": meta, "results": results}, handle, indent=2)
    write_report(meta, results, args.output)
    return 0


def write_report(meta, results, output):
    started_load = meta["load_avg_start"]
    with open(os.path.join(RESULTS, output + ".md"), "w") as handle:
        handle.write("# time.tic fan-out ({})\n\n".format(meta["date"]))
        handle.write("{cpus} CPUs, {machine}, Node {node}; load average at start {start}, at end {end} "
                     "(the machine is shared with other engineers' test runs).\n\n".format(
                         start=", ".join("{:.2f}".format(v) for v in started_load),
                         end=", ".join("{:.2f}".format(v) for v in meta["load_avg_end"]), **meta))
        handle.write("`routers`: the hub as {} router-worker replicas on one port. `stock`: the hub with\n"
                     "Crossbar's own send path (HUB_FAST_SEND=off); every other Crossbar target uses\n"
                     "components/node/patches/fast_send.py. Load clients: {}.\n\n".format(
                         meta.get("router_replicas", 2), CLIENT_NAMES[meta.get("client", "node")]))
        if meta.get("before"):
            handle.write("`before`: the dev node of {} (commit {}) with that tree's own launch (its crossbar_site); "
                         "`hub`: this tree.{}\n\n".format(
                             meta["before"], meta.get("before_commit", "?"),
                             " The targets of one rate ran side by side and were measured in turn for each count."
                             if meta.get("alternate") else ""))
        handle.write("Expected = rate x seconds per wanted subscriber: subscribers that never connected, tics a\n"
                     "saturated clock never produced and events later than {} ms all count as lost.\n\n".format(
                         meta["grace_ms"]))
        handle.write(HEADER + "\n" + "\n".join(row(result) for result in results) + "\n")
    plot(results, os.path.join(RESULTS, output + ".png"))


if __name__ == "__main__":
    sys.exit(main())
