"""
What a burst of ``/metrics`` scrapes costs the router and the other users:
a dev node with ``--topics`` extra subscriptions (``counter.changed.<name>``,
one user session), then ``--rounds`` bursts of ``--concurrency`` concurrent
``GET /metrics`` (with the bearer token). For each burst: the router worker's
CPU time (user + system, from /proc via psutil) from the first request to
the last answer, the burst's wall time, and ``time.get`` round trips that a
second user makes one after another while the burst runs (against the same
calls on the idle node before the bursts).

    python bench/metrics.py [--label cached] [--concurrency 40] [--rounds 5] [--topics 200]

Each run is stored under its ``--label`` in bench/results/metrics.json (other
labels are kept), and bench/results/metrics.md shows every label: run it on
an older checkout with ``--label uncached`` to compare against the code that
rendered the metrics on every request.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid

import psutil
import treq
from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from components.clock import GET as TIME_GET  # noqa: E402
from components.client.hub_client import HubClient  # noqa: E402
from components.counter import NAMED_TOPIC_PREFIX  # noqa: E402
from tests.support.clients import token  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402

METRICS_TOKEN = "bench-metrics-" + "t" * 32
ROUTER_TITLE = "reactive hub router"


def router_process(node):
    """The node's router worker (its process title names it)."""
    root = psutil.Process(node.process.pid)
    for proc in root.children(recursive=True):
        if ROUTER_TITLE in " ".join(proc.cmdline()):
            return proc
    raise RuntimeError("no router worker under pid {}".format(node.process.pid))


def cpu_seconds(proc):
    times = proc.cpu_times()
    return times.user + times.system


@defer.inlineCallbacks
def scrape(url):
    response = yield treq.get(url, headers={"Authorization": "Bearer " + METRICS_TOKEN}, persistent=False)
    body = yield response.content()
    return response.code, len(body)


@defer.inlineCallbacks
def round_trips(session, until):
    """Sequential ``time.get`` calls until ``until()`` is true (at least one): the latencies in ms."""
    samples = []
    while True:
        started = time.perf_counter()
        yield session.call(TIME_GET)
        samples.append((time.perf_counter() - started) * 1000)
        if until():
            return samples


@defer.inlineCallbacks
def burst(url, proc, session, concurrency):
    done = []
    cpu0 = cpu_seconds(proc)
    started = time.perf_counter()
    requests = defer.gatherResults([scrape(url) for _ in range(concurrency)])
    requests.addBoth(lambda result: done.append(result) or result)
    latencies = yield round_trips(session, lambda: bool(done))
    answers = yield requests
    wall = time.perf_counter() - started
    cpu = cpu_seconds(proc) - cpu0
    return {"router_cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "codes": sorted({code for code, _ in answers}), "bytes": max(size for _, size in answers),
            "time_get_ms": latencies}


@defer.inlineCallbacks
def background_collection(url):
    """``hub_metrics_collect_seconds`` (one collection on the monitor's loop), or None where it is not reported."""
    response = yield treq.get(url, headers={"Authorization": "Bearer " + METRICS_TOKEN}, persistent=False)
    text = yield response.text()
    for line in text.splitlines():
        if line.startswith("hub_metrics_collect_seconds "):
            return float(line.split()[1])
    return None


def _summary(samples):
    ordered = sorted(samples)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 2),
            "max_ms": round(ordered[-1], 2), "mean_ms": round(statistics.fmean(ordered), 2)}


@defer.inlineCallbacks
def run(options):
    node = RouterNode(name="bench-metrics", env={"METRICS_TOKEN": METRICS_TOKEN})
    clients = []
    try:
        yield node.start()
        proc = router_process(node)
        for name in ("bench-subscriber", "bench-caller"):
            client = HubClient(node.url, lambda name=name: token(name, "user", ttl=3600))
            clients.append(client)
            yield client.connect()
        subscriber, caller = (client.session for client in clients)
        for _ in range(options.topics):
            yield subscriber.subscribe(lambda *args, **kwargs: None, NAMED_TOPIC_PREFIX + uuid.uuid4().hex[:12])
        url = node.http + "/metrics"
        code, _ = yield scrape(url)  # the first answer may wait for the first sample
        if code != 200:
            raise RuntimeError("/metrics answered {}".format(code))
        yield round_trips(caller, lambda: True)
        idle = []
        for _ in range(200):
            idle += (yield round_trips(caller, lambda: True))
        bursts = []
        for index in range(options.rounds):
            bursts.append((yield burst(url, proc, caller, options.concurrency)))
            print("burst {}/{}: {router_cpu_s} s router CPU, {wall_s} s".format(index + 1, options.rounds,
                                                                                   **bursts[-1]), file=sys.stderr)
            yield task.deferLater(_reactor(), 1.0, lambda: None)  # let the router settle between bursts
        collection_s = yield background_collection(url)
    finally:
        for client in clients:
            yield client.close()
        yield node.stop()
        node.cleanup()
    during = [sample for item in bursts for sample in item["time_get_ms"]]
    return {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "concurrency": options.concurrency, "rounds": options.rounds, "extra_topics": options.topics,
        "router_cpu_s_per_burst": round(statistics.median(item["router_cpu_s"] for item in bursts), 3),
        "router_cpu_s_max": max(item["router_cpu_s"] for item in bursts),
        "burst_wall_s": round(statistics.median(item["wall_s"] for item in bursts), 3),
        "background_collection_s": collection_s,
        "codes": sorted({code for item in bursts for code in item["codes"]}),
        "response_bytes": max(item["bytes"] for item in bursts),
        "time_get_idle": _summary(idle), "time_get_during_bursts": _summary(during),
    }


def _reactor():
    from twisted.internet import reactor
    return reactor


def markdown(runs):
    lines = ["# /metrics under a burst of scrapes", "",
             "Each run: a dev node (one router worker), extra subscriptions on `counter.changed.<random>`, then bursts",
             "of concurrent `GET /metrics`; router CPU is the router worker's user + system time from the first",
             "request to the last answer; `time.get` is called one after another by another user during the bursts.",
             "The last column is the wall time of one collection on the monitor's sampling loop",
             "(`hub_metrics_collect_seconds`), the fixed cost the cache pays whether anyone scrapes or not.",
             "",
             "| run | concurrency x bursts | extra topics | router CPU per burst (median / max) | burst wall | "
             "time.get idle p50 / max | time.get during bursts p50 / max | answers | collection on the loop |",
             "| --- | --- | ---: | --- | ---: | --- | --- | --- | --- |"]
    for label, run_ in runs.items():
        idle, during = run_["time_get_idle"], run_["time_get_during_bursts"]
        collection = run_.get("background_collection_s")
        lines.append("| {} | {} x {} | {} | {} s / {} s | {} s | {} / {} ms | {} / {} ms | {} | {} |".format(
            label, run_["concurrency"], run_["rounds"], run_["extra_topics"], run_["router_cpu_s_per_burst"],
            run_["router_cpu_s_max"], run_["burst_wall_s"], idle["p50_ms"], idle["max_ms"], during["p50_ms"],
            during["max_ms"], ", ".join(str(code) for code in run_["codes"]),
            "-" if collection is None else "{:.0f} ms per METRICS_INTERVAL".format(collection * 1000)))
    lines += ["", "Machine: {} CPUs, Python {}. Runs are stored by label in metrics.json.".format(
        next(iter(runs.values()))["machine"]["cpus"], next(iter(runs.values()))["machine"]["python"])]
    notes = [run_.get("note") for run_ in runs.values() if run_.get("note")]
    lines += [""] + ["- {}: {}".format(label, run_["note"]) for label, run_ in runs.items() if run_.get("note")] \
        if notes else []
    return "\n".join(lines) + "\n"


@defer.inlineCallbacks
def main(reactor, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="cached")
    parser.add_argument("--note", default="", help="a line about this run for the table's notes")
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--topics", type=int, default=200)
    options = parser.parse_args(argv)
    found = yield run(options)
    if options.note:
        found["note"] = options.note
    path = os.path.join(report.RESULTS, "metrics.json")
    runs = {}
    if os.path.exists(path):
        with open(path) as handle:
            runs = json.load(handle)
    runs[options.label] = found
    report.save("metrics", markdown(runs), runs)


if __name__ == "__main__":
    task.react(main)
