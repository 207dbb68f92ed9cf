"""
Click counter throughput and latency through a real router, on SQLite and
PostgreSQL (a throwaway database on the local server):

- throughput: 1, 10 and 50 WAMP clients (user role, WebSocket) click one
  counter as fast as their answers come back, for ``--seconds`` each;
  acknowledged clicks/s, and the final count must equal the acknowledged
  clicks exactly. With ``--pages`` every clicker is also subscribed to
  ``counter.changed`` like a browser page (all of them run in this one
  process on the same 2 CPUs as the hub, so that mostly measures the
  benchmark's own event decoding);
- latency: from sending ``counter.click`` to the first ``counter.changed``
  event with that click's ``seq`` or a later one at another subscriber (the
  component publishes the newest state of each committed batch), p50/p99.

Runs the component as configured (group commit, ``COUNTER_BATCH`` 200) and,
for comparison, with ``COUNTER_BATCH=1`` (one transaction per click).

    python bench/counter.py [--clients 1,10,50] [--seconds 5] [--databases sqlite,postgresql] [--batches 200,1]
                            [--pages]

Prints a table and writes bench/results/counter.{json,md,png}.
"""

import argparse
import bisect
import json
import os
import platform
import sys
import tempfile
import time
import uuid

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.report import percentile  # noqa: E402
from components.counter import topic_of  # noqa: E402
from tests.support.clients import connect  # noqa: E402
from tests.support.databases import postgres_url  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TARGET = 1000  # acknowledged clicks/s with 50 clients on PostgreSQL


class _Owner:
    """Collects cleanups where the test helpers want a TestCase."""

    def __init__(self):
        self.cleanups = []

    def addCleanup(self, fn, *args):
        self.cleanups.append((fn, args))

    @defer.inlineCallbacks
    def run_cleanups(self):
        while self.cleanups:
            fn, args = self.cleanups.pop()
            try:
                yield defer.maybeDeferred(fn, *args)
            except Exception as exc:  # keep cleaning up
                print("cleanup failed: {!r}".format(exc), file=sys.stderr)


class Observer:
    """Arrival time of every ``counter.changed`` event of one counter."""

    def __init__(self, name):
        self.name = name
        self.arrivals = []  # (seq, value, time)

    def __call__(self, state):
        if state.get("name") == self.name:
            self.arrivals.append((state["seq"], state["value"], time.perf_counter()))

    def first_arrival_at_or_after(self):
        """A function seq -> earliest arrival of an event with that seq or a later one."""
        ordered = sorted(self.arrivals)
        seqs = [seq for seq, _, _ in ordered]
        earliest = [arrived for _, _, arrived in ordered]
        for index in range(len(earliest) - 2, -1, -1):
            earliest[index] = min(earliest[index], earliest[index + 1])

        def lookup(seq):
            index = bisect.bisect_left(seqs, seq)
            return earliest[index] if index < len(seqs) else None
        return lookup


@defer.inlineCallbacks
def measure(owner, node, clients, seconds, pages=False):
    name = "bench-" + uuid.uuid4().hex[:8]
    sessions = yield defer.gatherResults(
        [connect(owner, node, sub="clicker{}".format(index)) for index in range(clients)])
    sessions = [client.session for client in sessions]
    if pages:
        for session in sessions:
            yield session.subscribe(lambda state: None, topic_of(name))
    watcher = yield connect(owner, node, sub="observer")
    observer = Observer(name)
    yield watcher.session.subscribe(observer, topic_of(name))
    clicks = []  # (sent, seq, answered)
    deadline = time.perf_counter() + seconds

    @defer.inlineCallbacks
    def clicker(session):
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            state = yield session.call("counter.click", name=name)
            clicks.append((sent, state["seq"], time.perf_counter()))

    print("  {} clients clicking for {} s ...".format(clients, seconds), flush=True)
    started = time.perf_counter()
    yield defer.gatherResults([clicker(session) for session in sessions])
    elapsed = max(answered for _, _, answered in clicks) - started
    final = yield watcher.session.call("counter.get", name=name)
    # let the last events arrive, then compute latencies
    for _ in range(200):
        if observer.arrivals and max(seq for seq, _, _ in observer.arrivals) >= final["seq"]:
            break
        yield task.deferLater(_reactor(), 0.01, lambda: None)
    lookup = observer.first_arrival_at_or_after()
    event_ms = [(lookup(seq) - sent) * 1000 for sent, seq, _ in clicks if lookup(seq) is not None]
    call_ms = [(answered - sent) * 1000 for sent, _, answered in clicks]
    for client in [watcher]:
        yield client.close()
    return {
        "clients": clients, "acknowledged": len(clicks), "seconds": round(elapsed, 3),
        "clicks_per_s": round(len(clicks) / elapsed, 1),
        "final_value": final["value"], "exact": final["value"] == len(clicks) and final["seq"] == len(clicks),
        "events": len(observer.arrivals),
        "clicks_per_transaction": round(len(clicks) / max(1, len(observer.arrivals)), 2),
        "call_p50_ms": percentile(call_ms, 0.5, 3), "call_p99_ms": percentile(call_ms, 0.99, 3),
        "event_p50_ms": percentile(event_ms, 0.5, 3), "event_p99_ms": percentile(event_ms, 0.99, 3),
        "events_missing": len(clicks) - len(event_ms),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


@defer.inlineCallbacks
def ceiling(owner, node, clients, seconds):
    """Calls/s of the trivial ``time.get`` (clock component, no database) with the same clients and node:
    what the router and this benchmark's clients manage on this machine right now."""
    sessions = yield defer.gatherResults(
        [connect(owner, node, sub="caller{}".format(index)) for index in range(clients)])
    done = []
    deadline = time.perf_counter() + seconds

    @defer.inlineCallbacks
    def caller(session):
        while time.perf_counter() < deadline:
            yield session.call("time.get")
            done.append(time.perf_counter())

    started = time.perf_counter()
    yield defer.gatherResults([caller(client.session) for client in sessions])
    return round(len(done) / (max(done) - started), 1)


def _reactor():
    from twisted.internet import reactor
    return reactor


@defer.inlineCallbacks
def run_database(kind, batch, client_counts, seconds, pages=False):
    owner = _Owner()
    try:
        if kind == "postgresql":
            url = postgres_url(owner)
        else:
            url = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="bench-counter-"), "client.db")
        node = RouterNode(env={"DATABASE_URL": url, "COUNTER_RATE": "1000000", "COUNTER_BURST": "1000000",
                               "COUNTER_BATCH": str(batch)}, name="bench-counter")
        owner.addCleanup(node.cleanup)
        yield node.start()
        rows = []
        for clients in client_counts:
            client_owner = _Owner()
            try:
                row = yield measure(client_owner, node, clients, seconds, pages)
            finally:
                yield client_owner.run_cleanups()
            row.update({"database": kind, "batch": batch, "pages": pages})
            print("{database:<10} batch {batch:>3} {clients:>3} clients: {clicks_per_s:>8.1f} clicks/s "
                  "(exact: {exact}, {clicks_per_transaction} clicks/txn) call p50/p99 {call_p50_ms}/{call_p99_ms} ms, "
                  "event p50/p99 {event_p50_ms}/{event_p99_ms} ms".format(**row), flush=True)
            client_owner = _Owner()
            try:
                row["time_get_calls_per_s"] = yield ceiling(client_owner, node, clients, seconds / 2)
            finally:
                yield client_owner.run_cleanups()
            print("{:>32} time.get (no database) with the same clients: {} calls/s".format(
                "", row["time_get_calls_per_s"]), flush=True)
            rows.append(row)
        return rows
    finally:
        yield owner.run_cleanups()


def write_markdown(path, rows, seconds):
    lines = [
        "# Click counter: acknowledged clicks/s and click -> event latency", "",
        "Each client clicks one counter as fast as answers come back for {} s; the final count is checked "
        "against the acknowledged clicks. Latency: `counter.click` sent -> first `counter.changed` with that "
        "seq or later at another subscriber. Clickers subscribed to the events too: {}. "
        "Target: >= {} clicks/s with 50 clients on PostgreSQL. Python {}, {} CPUs shared by the hub, "
        "PostgreSQL and this benchmark's clients.".format(
            seconds, "yes" if rows and rows[0]["pages"] else "no", TARGET, platform.python_version(),
            os.cpu_count()), "",
        "| database | batch | clients | clicks/s | exact | clicks/txn | call p50 ms | call p99 ms "
        "| event p50 ms | event p99 ms | load avg | time.get calls/s |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append("| {database} | {batch} | {clients} | {clicks_per_s} | {exact} | {clicks_per_transaction} "
                     "| {call_p50_ms} | {call_p99_ms} | {event_p50_ms} | {event_p99_ms} "
                     "| {load_average_1min} | {time_get_calls_per_s} |".format(**row))
    lines += ["", "`time.get calls/s`: the trivial clock RPC (no database) with the same number of clients on the "
              "same node right after each row: the ceiling the router and the benchmark's own clients allow on "
              "this machine at that moment."]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def plot(path, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = sorted({(row["database"], row["batch"]) for row in rows})
    for index, (database, batch) in enumerate(series):
        color = "C{}".format(index)
        mine = sorted((row for row in rows if (row["database"], row["batch"]) == (database, batch)),
                      key=lambda row: row["clients"])
        label = "{} batch {}".format(database, batch)
        xs = [row["clients"] for row in mine]
        left.plot(xs, [row["clicks_per_s"] for row in mine], marker="o", color=color, label=label)
        right.plot(xs, [row["event_p50_ms"] for row in mine], marker="o", color=color, label=label + " p50")
        right.plot(xs, [row["event_p99_ms"] for row in mine], marker="x", linestyle="--", color=color,
                   label=label + " p99")
    left.axhline(TARGET, color="grey", linestyle=":", label="target (50 clients, PostgreSQL)")
    left.set_xscale("log")
    left.set_xlabel("concurrent WAMP clients")
    left.set_ylabel("acknowledged clicks/s")
    left.set_title("throughput (count exact)")
    left.legend(fontsize=8)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("concurrent WAMP clients")
    right.set_ylabel("click -> event at another subscriber (ms)")
    right.set_title("latency")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


@defer.inlineCallbacks
def main(reactor, argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--batches", default="200,1", help="COUNTER_BATCH values to run")
    parser.add_argument("--pages", action="store_true", help="every clicker also subscribes to the events")
    parser.add_argument("--out", default=RESULTS)
    options = parser.parse_args(argv)
    client_counts = [int(item) for item in options.clients.split(",")]
    rows = []
    for batch in [int(item) for item in options.batches.split(",")]:
        for kind in options.databases.split(","):
            found = yield run_database(kind, batch, client_counts, options.seconds, options.pages)
            rows.extend(found)
    os.makedirs(options.out, exist_ok=True)
    result = {"benchmark": "counter", "python": platform.python_version(), "cpus": os.cpu_count(),
              "seconds": options.seconds, "clickers_subscribed": options.pages, "target_clicks_per_s_50_clients_postgresql": TARGET, "rows": rows}
    with open(os.path.join(options.out, "counter.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    write_markdown(os.path.join(options.out, "counter.md"), rows, options.seconds)
    plot(os.path.join(options.out, "counter.png"), rows)
    print("wrote {}/counter.{{json,md,png}}".format(options.out))
    if not all(row["exact"] for row in rows):
        raise SystemExit("a final count did not match the acknowledged clicks")


if __name__ == "__main__":
    task.react(main)
