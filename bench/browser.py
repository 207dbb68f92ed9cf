"""
Change-to-DOM latency in a real headless Chromium: the time from a counter
click made by another application (a Python WAMP client) until the new
count is in the DOM of every open dashboard tab, p50/p99 over N changes,
with 1 and with 10 tabs of one browser profile (which share one WebSocket
through the SharedWorker).

Timestamps: the client takes ``time.time()`` just before the call; each tab
records ``performance.timeOrigin + performance.now()`` in a MutationObserver
on the count. Both are epoch clocks of the same machine.

A master edit (user sync: ``master.users.save`` -> ``users.changed``) is
measured the same way when the node config runs the user-sync components;
otherwise the table says so.

    python bench/browser.py [--changes 200] [--tabs 1,10]

Prints a table and writes bench/results/browser.{json,md,png}.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.directory import Directory  # noqa: E402
from components.storage import Database, migrate_all  # noqa: E402
from tests.support.browser import BrowserThread, log_in, open_signed_in  # noqa: E402
from tests.support.clients import connect  # noqa: E402
from tests.support.node import RouterNode, load_config, router_worker  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PASSWORD = "bench-password-1"

WATCH = """() => {
    window.__seen = {};
    const count = document.getElementById('count');
    new MutationObserver(() => {
        const at = performance.timeOrigin + performance.now();
        if (!(count.textContent in window.__seen)) window.__seen[count.textContent] = at;
    }).observe(count, {childList: true, characterData: true, subtree: true});
}"""


class _Quiet:
    """Stands in for a trial TestCase where tests.support.clients.connect wants one: cleanups run at exit."""

    def __init__(self):
        self.cleanups = []

    def addCleanup(self, fn, *args):
        self.cleanups.append((fn, args))


def percentile(samples, fraction):
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def summary(samples):
    return {"n": len(samples), "p50_ms": round(percentile(samples, 0.50), 2),
            "p99_ms": round(percentile(samples, 0.99), 2), "mean_ms": round(statistics.mean(samples), 2),
            "max_ms": round(max(samples), 2)}


def has_component(prefix):
    return any(item.get("classname", "").startswith(prefix)
               for item in router_worker(load_config()).get("components", []))


@defer.inlineCallbacks
def add_user(node, username):
    from components import schema
    db = Database("sqlite:///" + os.path.join(node.directory, "master.db"))
    try:
        yield migrate_all(db, schema.MASTER)
        yield Directory(db, iterations=1000).create_user(username, PASSWORD, first_name="Bench")
    finally:
        db.close()


def open_dashboards(browser, base_url, username, tabs):
    """On the browser thread: a fresh profile with ``tabs`` dashboard tabs, each watching the count."""
    context = browser.new_context()
    pages = [log_in(context.new_page(), base_url, username, PASSWORD)]
    pages += [open_signed_in(context, base_url) for _ in range(tabs - 1)]
    for page in pages:
        page.wait_for_selector("#count[data-seq]")
        page.evaluate(WATCH)
    return context, pages


def seen_times(_browser, pages, value, timeout=10.0):
    """On the browser thread: each tab's DOM time of ``value``, waiting (polling) until every tab has it."""
    deadline = time.monotonic() + timeout
    key = str(value)
    while True:
        times = [page.evaluate("(key) => window.__seen[key] ?? null", key) for page in pages]
        if all(t is not None for t in times):
            return times
        if time.monotonic() > deadline:
            raise RuntimeError("value {} not shown in every tab after {}s".format(value, timeout))
        pages[0].wait_for_timeout(1)


@defer.inlineCallbacks
def click_run(browser, node, username, tabs, changes):
    context, pages = yield browser.run(open_dashboards, node.http, username, tabs)
    owner = _Quiet()
    clicker = yield connect(owner, node, sub="clicker", role="user")
    latencies = []
    try:
        for _ in range(changes):
            started = time.time() * 1000.0
            state = yield clicker.session.call("counter.click", n=1)
            times = yield browser.run(seen_times, pages, state["value"])
            latencies.extend(t - started for t in times)
    finally:
        yield clicker.close()
        yield browser.run(lambda _browser: context.close())
    return latencies


@defer.inlineCallbacks
def main(reactor, options):
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "changes": options.changes, "runs": {}, "notes": []}
    if not has_component("components.counter"):
        raise SystemExit("the counter component is not in .crossbar/config.json: nothing to click")
    if not has_component("components.usersync"):
        results["notes"].append("master edit not measured: the user-sync components are not in the node config")
    # lift the counter's per-user click rate limit: the benchmark clicks as fast as updates arrive
    node = RouterNode(name="bench-browser", env={"COUNTER_RATE": "100000", "COUNTER_BURST": "100000"})
    browser = BrowserThread()
    try:
        yield node.start()
        yield browser.start()
        for tabs in options.tabs:
            username = "bench{}".format(tabs)
            yield add_user(node, username)
            yield click_run(browser, node, username, tabs, min(20, options.changes))   # warm-up
            latencies = yield click_run(browser, node, username, tabs, options.changes)
            results["runs"]["click, {} tab{}".format(tabs, "s" if tabs > 1 else "")] = dict(
                summary(latencies), tabs=tabs, samples=[round(x, 3) for x in latencies])
    finally:
        browser.stop()
        yield node.stop()
        node.cleanup()
    write(results)


def write(results):
    os.makedirs(RESULTS, exist_ok=True)
    lines = ["# Browser: change -> DOM latency", "",
             "{} changes per run; counter click by a Python WAMP client -> new count in the DOM of every tab "
             "(one browser profile, tabs share the SharedWorker's WebSocket). Python {}, {} CPUs.".format(
                 results["changes"], results["machine"]["python"], results["machine"]["cpus"]), "",
             "| run | samples | p50 ms | p99 ms | mean ms | max ms |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, run in results["runs"].items():
        lines.append("| {} | {} | {} | {} | {} | {} |".format(
            name, run["n"], run["p50_ms"], run["p99_ms"], run["mean_ms"], run["max_ms"]))
    lines += [""] + ["Note: " + note for note in results["notes"]]
    table = "\n".join(lines) + "\n"
    print(table)
    with open(os.path.join(RESULTS, "browser.md"), "w") as handle:
        handle.write(table)
    with open(os.path.join(RESULTS, "browser.json"), "w") as handle:
        json.dump(results, handle, indent=2)
    plot(results)


def plot(results):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install -e '.[bench]'): no plot")
        return
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, run in results["runs"].items():
        ordered = sorted(run["samples"])
        axis.plot(ordered, [i / len(ordered) for i in range(1, len(ordered) + 1)], label=name)
    axis.set_xlabel("change -> DOM latency (ms)")
    axis.set_ylabel("fraction of updates")
    axis.set_title("Counter click to DOM update in headless Chromium")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, "browser.png"), dpi=110)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--tabs", default="1,10", help="comma-separated tab counts")
    options = parser.parse_args(argv)
    options.tabs = [int(x) for x in options.tabs.split(",") if x]
    return options


if __name__ == "__main__":
    task.react(main, [parse(sys.argv[1:])])
