"""
What an application session's WAMP publications cost now that the ``app``
role's dynamic authorizer (``reactive.apps.authorize``, AppGate in
components/applications/wamp_gate.py) answers ``"cache": False``
(commit 196d169): the router calls the embedded authorizer on every
PUBLISH instead of reusing Crossbar's cached answer. Before and after in
one run:

- ``before``: the code at ``196d169~1`` (authorizer answers ``"cache": True``),
  checked out with ``git worktree add --detach`` in a temporary directory
  (removed at the end); its node runs with ``PYTHONPATH`` = the worktree, so
  its ``components`` package wins over the editable install of this checkout.
- ``after``: this working tree (HEAD; ``--after REV`` runs a worktree of REV
  instead, e.g. ``--after 196d169`` to leave out what later commits changed).

Both nodes are the dev node (.crossbar/config.json of this checkout via
tests.support.node.RouterNode: one router worker, every component, SQLite,
demo and emulator workers left out), started once and kept up together;
the measurements alternate between them (round 1 before then after, round 2
after then before, ...). An application is added with AppRegistry against
each node's database and joins with WAMP-CRA (as
tests/applications/test_wamp_gate.py does); this process (Twisted, autobahn)
publishes on ``app.<name>.x`` with ``acknowledge=True``, one positional
argument, no kwargs (so the ``event_kwargs`` patch 196d169 also adds copies
nothing), no subscribers besides the event history recorder (a prefix
subscription on ``app.``; it stores up to ``HISTORY_STORE_RATE`` = 100/s
per application, default, in both nodes). Per round and node, after 200
warm-up publishes:

(a) ``sequential``: N acknowledged publishes one after another (the next
    when the previous one's PUBLISHED arrives): publishes/s, p50/p99 latency
    (publish -> PUBLISHED);
(b) ``in flight``: M acknowledged publishes keeping W outstanding at once:
    publishes/s.

CPU (psutil): the router worker's user+system time over each phase, as % of
one core and as ms per publish; this process (the client) as %. The table
gives the median over rounds and the ratio after / before.

That the ``before`` node really runs the old code is checked two ways, each
failing the run if wrong: ``components.applications.wamp_gate`` imported by
the venv's Python with the node's environment comes from the worktree (the
``after`` one from this checkout); and, in the router worker itself, the
behaviour 196d169 changed: a *private* application's WAMP publish is
acknowledged by ``before`` and refused (``wamp.error.not_authorized``) by
``after``. (The worker's ``/proc/<pid>/environ`` cannot tell: its process
title, set with setproctitle, overwrites that memory.)

    .venv/bin/python bench/app_wamp_publish.py [--rounds 4] [--count 1000] [--inflight 50]
        [--inflight-total 5000] [--base 196d169~1]
        [--after REV] [--output app_wamp_publish]

Prints the table; writes bench/results/app_wamp_publish.{md,json}.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import psutil

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)

from autobahn.twisted.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp import types  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from twisted.internet import defer, endpoints, task  # noqa: E402

from bench import report  # noqa: E402
from components.applications.app_registry import AppRegistry  # noqa: E402
from components.core.settings import Settings  # noqa: E402
from components.db import db_settings  # noqa: E402
from components.db.database import Database  # noqa: E402
from components.e2e.keys import load_kek  # noqa: E402
from tests.applications.test_wamp_gate import AppSession  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402

NAME = "app_wamp_publish"
APP = "wampbench"
PRIVATE_APP = "wampbenchpriv"
TOPIC = "app.{}.x".format(APP)
WARMUP = 200
ACK = types.PublishOptions(acknowledge=True)


class Variant:
    """One node under test (``before`` or ``after``), its registry, application session and router worker."""

    def __init__(self, label, pythonpath=None):
        self.label = label
        # the per-session publish bucket (SESSION_PUBLISH_RATE 100/s, burst 200) would refuse the load
        self.node = RouterNode(name="authbench-" + label,
                               env={"SESSION_PUBLISH_RATE": "1000000", "SESSION_PUBLISH_BURST": "1000000"})
        if pythonpath:
            self.node.env["PYTHONPATH"] = pythonpath
        self.pythonpath = pythonpath
        self.registry = self.session = self.protocol = self.router = None
        self.checks = {}

    @defer.inlineCallbacks
    def start(self, reactor):
        yield self.node.start()
        settings = Settings(environ=self.node.env, node_directory=self.node.directory)
        self.registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        key, secret = yield self.registry.add(APP)
        self.session, self.protocol = yield self.join(reactor, key, secret)
        self.router = router_worker(self.node.process.pid)
        return self

    @defer.inlineCallbacks
    def join(self, reactor, key, secret):
        session = AppSession(types.ComponentConfig(realm="reactive"), key, secret)
        factory = WampWebSocketClientFactory(lambda: session, url=self.node.url)
        factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", self.node.port, timeout=30)
        protocol = yield endpoint.connect(factory)
        yield session.joined
        return session, protocol

    @defer.inlineCallbacks
    def verify(self, reactor):
        """The checks the docstring names; raises when the node does not run the code it should."""
        imported = subprocess.run(
            [sys.executable, "-c", "import components.applications.wamp_gate as m; print(m.__file__)"],
            env=self.node.env, cwd=self.node.directory, capture_output=True, text=True, check=True).stdout.strip()
        self.checks["wamp_gate_imported_from"] = imported
        self.checks["pythonpath"] = self.node.env.get("PYTHONPATH")
        key, secret = yield self.registry.add(PRIVATE_APP, private=True)
        session, protocol = yield self.join(reactor, key, secret)
        try:
            yield session.publish("app.{}.x".format(PRIVATE_APP), 1, options=ACK)
            self.checks["private_app_wamp_publish"] = "acknowledged"
        except ApplicationError as error:
            self.checks["private_app_wamp_publish"] = error.error
        session.leave()
        protocol.transport.loseConnection()
        self.checks["serializer"] = getattr(getattr(self.protocol, "_serializer", None), "SERIALIZER_ID", None)
        old = self.label == "before"
        expected_dir = self.pythonpath or REPO
        if not imported.startswith(expected_dir + os.sep):
            raise SystemExit("{}: wamp_gate imported from {}, not {}".format(self.label, imported, expected_dir))
        want = "acknowledged" if old else ApplicationError.NOT_AUTHORIZED
        if self.checks["private_app_wamp_publish"] != want:
            raise SystemExit("{}: a private application's publish gave {!r}, expected {!r}".format(
                self.label, self.checks["private_app_wamp_publish"], want))

    def stop(self):
        if self.protocol is not None:
            self.protocol.transport.loseConnection()
        if self.registry is not None:
            self.registry.db.close()
        self.node.cleanup()  # SIGKILL of the node's process group, then its directory


def router_worker(node_pid):
    """The psutil.Process of the node's router worker (its process title names it)."""
    for proc in psutil.Process(node_pid).children(recursive=True):
        try:
            title = " ".join(proc.cmdline()).lower()
        except psutil.Error:
            continue
        if "router" in title:
            return proc
    raise SystemExit("no router worker under node pid {}".format(node_pid))


def cpu_seconds(proc):
    times = proc.cpu_times()
    return times.user + times.system


class Meter:
    """Router worker CPU and this process's CPU between ``start`` and ``stop``."""

    def __init__(self, router):
        self.router = router

    def start(self):
        self.cpu, self.own, self.wall = cpu_seconds(self.router), time.process_time(), time.perf_counter()

    def stop(self, publishes):
        wall = time.perf_counter() - self.wall
        router = cpu_seconds(self.router) - self.cpu
        return {"seconds": round(wall, 3), "publishes_per_s": round(publishes / wall, 1),
                "router_cpu_pct": round(100.0 * router / wall, 1),
                "router_cpu_ms_per_publish": round(1000.0 * router / publishes, 4),
                "client_cpu_pct": round(100.0 * (time.process_time() - self.own) / wall, 1)}


@defer.inlineCallbacks
def sequential(session, router, count):
    for index in range(WARMUP):
        yield session.publish(TOPIC, index, options=ACK)
    latencies = []
    meter = Meter(router)
    meter.start()
    for index in range(count):
        began = time.perf_counter()
        yield session.publish(TOPIC, index, options=ACK)
        latencies.append((time.perf_counter() - began) * 1000.0)
    result = meter.stop(count)
    result.update(report.latency_summary(latencies, 3))
    return result


def in_flight(session, router, total, window):
    """``total`` acknowledged publishes, ``window`` outstanding at once; fires with the figures."""
    finished = defer.Deferred()
    state = {"sent": 0, "done": 0, "errors": 0}
    meter = Meter(router)

    def send():
        if state["sent"] < total:
            state["sent"] += 1
            session.publish(TOPIC, state["sent"], options=ACK).addCallbacks(done, failed)

    def failed(failure):
        state["errors"] += 1
        done(None)

    def done(_):
        state["done"] += 1
        if state["done"] == total:
            result = meter.stop(total)
            result.update(window=window, errors=state["errors"])
            finished.callback(result)
        else:
            send()
    meter.start()
    for _ in range(window):
        send()
    return finished


def median(runs, key):
    values = [run[key] for run in runs]
    return round(statistics.median(values), 4) if values else None


SUMMARY_ROWS = [
    ("sequential publishes/s", "sequential", "publishes_per_s"),
    ("sequential p50 ms", "sequential", "p50_ms"),
    ("sequential p99 ms", "sequential", "p99_ms"),
    ("sequential router CPU %", "sequential", "router_cpu_pct"),
    ("sequential router CPU ms/publish", "sequential", "router_cpu_ms_per_publish"),
    ("{W} in flight publishes/s", "in_flight", "publishes_per_s"),
    ("{W} in flight router CPU %", "in_flight", "router_cpu_pct"),
    ("{W} in flight router CPU ms/publish", "in_flight", "router_cpu_ms_per_publish"),
    ("{W} in flight client CPU %", "in_flight", "client_cpu_pct"),
]


def summarize(results):
    summary = []
    window = results["meta"]["inflight"]
    for label, phase, key in SUMMARY_ROWS:
        before = median([run[phase] for run in results["rounds"] if run["variant"] == "before"], key)
        after = median([run[phase] for run in results["rounds"] if run["variant"] == "after"], key)
        ratio = round(after / before, 3) if before else None
        summary.append({"metric": label.format(W=window), "phase": phase, "key": key, "before": before,
                        "after": after, "after_over_before": ratio})
    return summary


def markdown(results):
    meta = results["meta"]
    lines = ["# Application WAMP publishes: authorizer answer cached (before) vs not (after)", "",
             "`before` = {base} ({base_sha}, `reactive.apps.authorize` answers `cache: True`), `after` = "
             "{head_sha}{tree} (`cache: False`: the router calls the embedded authorizer on every PUBLISH). One "
             "dev node each (one router worker, all components, SQLite), both up for the whole run, measured "
             "alternately over {rounds} rounds; {cpus} CPUs, Python {python}, load average at start {start}, "
             "at end {end} (shared machine). {date}.".format(
                 start=", ".join("{:.2f}".format(v) for v in meta["load_avg_start"]),
                 end=", ".join("{:.2f}".format(v) for v in meta["load_avg_end"]),
                 tree="" if meta.get("after") else " working tree", **meta), "",
             "Commits between them: {} (196d169 is the authorizer change; any later ones also differ between the "
             "nodes; `--after 196d169` isolates it).".format(", ".join(meta["commits_between"])), "",
             "`SESSION_PUBLISH_RATE`/`_BURST` lifted to 1,000,000 on both nodes. One WAMP-CRA application session (autobahn, Twisted, in the bench process) publishes on "
             "`{topic}` with `acknowledge=True`, one positional argument; no subscriber but the history "
             "recorder. Sequential: {count} publishes, each after the previous PUBLISHED (latency = publish -> "
             "PUBLISHED). In flight: {total} publishes, {inflight} outstanding. After {warmup} warm-up "
             "publishes per round. Medians over rounds; router CPU = router worker user+system.".format(
                 topic=TOPIC, warmup=WARMUP, **meta), "",
             "| metric | before | after | after / before |", "| --- | ---: | ---: | ---: |"]
    for row in results["summary"]:
        lines.append("| {metric} | {before} | {after} | {after_over_before} |".format(**row))
    lines += ["", "Per round:", "",
              "| round | node | seq pub/s | seq p50 ms | seq p99 ms | seq router CPU ms/pub | in-flight pub/s | "
              "in-flight router CPU % | in-flight router CPU ms/pub |",
              "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in results["rounds"]:
        seq, flight = run["sequential"], run["in_flight"]
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            run["round"], run["variant"], seq["publishes_per_s"], seq["p50_ms"], seq["p99_ms"],
            seq["router_cpu_ms_per_publish"], flight["publishes_per_s"], flight["router_cpu_pct"],
            flight["router_cpu_ms_per_publish"]))
    lines += ["", "Which code each node ran (checked before measuring):", ""]
    for label, checks in results["checks"].items():
        lines.append("- `{}`: node PYTHONPATH `{}`; wamp_gate imported with the node's environment from `{}`; "
                     "a private application's WAMP publish: `{}`; serializer `{}`".format(
                         label, checks["pythonpath"], checks["wamp_gate_imported_from"],
                         checks["private_app_wamp_publish"], checks["serializer"]))
    return "\n".join(lines) + "\n"


def git(*args):
    return subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True, check=True).stdout.strip()


@defer.inlineCallbacks
def run(reactor, options):
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_start": list(os.getloadavg()),
            "base": options.base, "base_sha": git("rev-parse", "--short", options.base),
            "head_sha": git("rev-parse", "--short", "HEAD"), "rounds": options.rounds, "count": options.count,
            "inflight": options.inflight, "total": options.inflight_total}
    meta["commits_between"] = git("log", "--format=%h", "{}..{}".format(options.base, options.after or "HEAD")).split()
    if options.after:
        meta["after"] = options.after
        meta["head_sha"] = git("rev-parse", "--short", options.after)
    scratch = tempfile.mkdtemp(prefix="authbench-")
    worktrees = {"before": os.path.join(scratch, "before")}
    if options.after:
        worktrees["after"] = os.path.join(scratch, "after")
    variants = {}
    try:
        git("worktree", "add", "--detach", worktrees["before"], options.base)
        if options.after:
            git("worktree", "add", "--detach", worktrees["after"], options.after)
        variants["before"] = Variant("before", pythonpath=worktrees["before"])
        variants["after"] = Variant("after", pythonpath=worktrees.get("after"))
        for variant in variants.values():
            print("starting", variant.label, flush=True)
            yield variant.start(reactor)
            yield variant.verify(reactor)
            print(variant.label, variant.checks, flush=True)
        results = {"meta": meta, "checks": {label: v.checks for label, v in variants.items()}, "rounds": []}
        for number in range(1, options.rounds + 1):
            order = ["before", "after"] if number % 2 else ["after", "before"]
            for label in order:
                variant = variants[label]
                seq = yield sequential(variant.session, variant.router, options.count)
                flight = yield in_flight(variant.session, variant.router, options.inflight_total, options.inflight)
                results["rounds"].append({"round": number, "variant": label, "sequential": seq, "in_flight": flight})
                print("round {} {}: seq {} pub/s p50 {} p99 {} ms | in flight {} pub/s router {}%".format(
                    number, label, seq["publishes_per_s"], seq["p50_ms"], seq["p99_ms"], flight["publishes_per_s"],
                    flight["router_cpu_pct"]), flush=True)
        meta["load_avg_end"] = list(os.getloadavg())
        results["summary"] = summarize(results)
        report.save(options.output, markdown(results), results)
    finally:
        for variant in variants.values():
            variant.stop()
        for worktree in worktrees.values():
            subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", worktree], check=False)
        subprocess.run(["rm", "-rf", scratch], check=False)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--count", type=int, default=1000, help="sequential publishes per round")
    parser.add_argument("--inflight", type=int, default=50, help="publishes outstanding at once")
    parser.add_argument("--inflight-total", type=int, default=5000, help="publishes of the in-flight phase")
    parser.add_argument("--base", default="196d169~1", help="the 'before' commit")
    parser.add_argument("--output", default=NAME, help="results name under bench/results")
    parser.add_argument("--after", default="", help="the 'after' commit (default: this working tree)")
    return parser.parse_args(argv)


def main(argv=None):
    options = parse(argv)
    task.react(run, [options])


if __name__ == "__main__":
    main()
