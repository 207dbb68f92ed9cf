"""
Change-to-DOM latency in a real headless Chromium: the time from a change
made by another application (a Python WAMP client) until it is in the DOM
of every open dashboard tab, p50/p99 over N changes, with 1 and with 10 tabs
of one browser profile (which share one WebSocket through the SharedWorker).
Changes: a counter click (-> the count), and a master edit of the user's
first name (-> the greeting, through outbox, SNS, SQS and the client DB).

Timestamps: the client takes ``time.time()`` just before the call; each tab
records ``performance.timeOrigin + performance.now()`` in a MutationObserver
on the count. Both are epoch clocks of the same machine.

The master edit runs when the node config has the user-sync components,
against a local moto server (SNS/SQS emulator); otherwise the table says so.

    python bench/browser.py [--changes 200] [--tabs 1,10]

Prints a table and writes bench/results/browser.{json,md,png}.
"""

import argparse
import json
import os
import platform
import sys
import time

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from components.auth.directory import Directory  # noqa: E402
from components.db.database import Database  # noqa: E402
from components.db.migrations import migrate_all  # noqa: E402
from tests.support.browser import BrowserThread, log_in, open_signed_in  # noqa: E402
from tests.support.clients import connect  # noqa: E402
from tests.support.node import RouterNode, load_config, router_worker  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PASSWORD = "bench-password-1"

WATCH = """(selectors) => {
    window.__seen = {};
    for (const selector of selectors) {
        const seen = window.__seen[selector] = {};
        const element = document.querySelector(selector);
        new MutationObserver(() => {
            const at = performance.timeOrigin + performance.now();
            if (!(element.textContent in seen)) seen[element.textContent] = at;
        }).observe(element, {childList: true, characterData: true, subtree: true});
    }
}"""
WATCHED = ["#count", "#greeting"]


class _Quiet:
    """Stands in for a trial TestCase where tests.support.clients.connect wants one: cleanups run at exit."""

    def __init__(self):
        self.cleanups = []

    def addCleanup(self, fn, *args):
        self.cleanups.append((fn, args))


def has_component(prefix):
    return any(item.get("classname", "").startswith(prefix)
               for item in router_worker(load_config()).get("components", []))


OTHER_APP = "other-app"


@defer.inlineCallbacks
def add_user(node, username):
    from components.node import schema_registry
    db = Database("sqlite:///" + os.path.join(node.directory, "master.db"))
    try:
        yield migrate_all(db, schema_registry.master())
        directory = Directory(db, iterations=1000)
        yield directory.create_user(username, PASSWORD, first_name="Bench")
        if not (yield directory.get_user(OTHER_APP)):
            # the application editing profiles: an admin procedure caller must be a superuser in the directory
            yield directory.create_user(OTHER_APP, PASSWORD, first_name="Other app", is_superuser=True)
    finally:
        db.close()


def open_dashboards(browser, base_url, username, tabs):
    """On the browser thread: a fresh profile with ``tabs`` dashboard tabs, each watching the count."""
    context = browser.new_context()
    pages = [log_in(context.new_page(), base_url, username, PASSWORD)]
    pages += [open_signed_in(context, base_url) for _ in range(tabs - 1)]
    for page in pages:
        page.wait_for_selector("#count[data-seq]")
        page.evaluate(WATCH, WATCHED)
    return context, pages


def seen_times(_browser, pages, selector, text, timeout=30.0):
    """On the browser thread: each tab's DOM time of ``text`` in ``selector``, polling until every tab has it."""
    deadline = time.monotonic() + timeout
    while True:
        times = [page.evaluate("([selector, text]) => window.__seen[selector][text] ?? null", [selector, text])
                 for page in pages]
        if all(t is not None for t in times):
            return times
        if time.monotonic() > deadline:
            raise RuntimeError("{!r} not shown in every tab after {}s".format(text, timeout))
        pages[0].wait_for_timeout(1)


@defer.inlineCallbacks
def click(session, _username, _index):
    """A counter click by another application; fires with what the tabs must show and where."""
    state = yield session.call("counter.click", n=1)
    return "#count", str(state["value"])


@defer.inlineCallbacks
def edit(session, username, index):
    """A master edit of the user's first name by an admin application."""
    name = "Bench{}".format(index)
    yield session.call("master.users.save", {"username": username, "first_name": name})
    return "#greeting", "Hello " + name


@defer.inlineCallbacks
def change_run(browser, node, username, tabs, changes, change, first_index=0):
    context, pages = yield browser.run(open_dashboards, node.http, username, tabs)
    owner = _Quiet()
    other_app = yield connect(owner, node, sub=OTHER_APP, role="admin")
    latencies = []
    try:
        for index in range(first_index, first_index + changes):
            started = time.time() * 1000.0
            selector, text = yield change(other_app.session, username, index)
            times = yield browser.run(seen_times, pages, selector, text)
            latencies.extend(t - started for t in times)
    finally:
        yield other_app.close()
        yield browser.run(lambda _browser: context.close())
    return latencies


@defer.inlineCallbacks
def usersync_env():
    """Settings for the user sync through a local moto server (SNS topic, one client queue)."""
    import uuid
    from components.usersync import provision
    from tests.support.emulator import ENV, blocking, shared_moto
    moto = yield shared_moto()
    plan = provision.Plan("bench-" + uuid.uuid4().hex[:8], ["bench"])
    aws = yield blocking(provision.provision, moto.client("sns"), moto.client("sqs"), plan)
    return dict(ENV, SNS_TOPIC_ARN=aws["topic_arn"], SQS_QUEUE_URL=aws["clients"]["bench"]["queue_url"],
                AWS_ENDPOINT_URL=moto.url)


@defer.inlineCallbacks
def main(reactor, options):
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "changes": options.changes, "runs": {}, "notes": []}
    if not has_component("components.counter"):
        raise SystemExit("the counter component is not in .crossbar/config.json: nothing to click")
    # lift the counter's per-user click rate limit: the benchmark clicks as fast as updates arrive
    env = {"COUNTER_RATE": "100000", "COUNTER_BURST": "100000"}
    kinds = [("click", click)]
    if has_component("components.usersync"):
        env.update((yield usersync_env()))
        kinds.append(("master edit", edit))
    else:
        results["notes"].append("master edit not measured: the user-sync components are not in the node config")
    node = RouterNode(name="bench-browser", env=env)
    browser = BrowserThread()
    try:
        yield node.start()
        yield browser.start()
        for tabs in options.tabs:
            username = "bench{}".format(tabs)
            yield add_user(node, username)
            for kind, change in kinds:
                warm = min(20, options.changes)
                yield change_run(browser, node, username, tabs, warm, change, first_index=10 ** 6)
                latencies = yield change_run(browser, node, username, tabs, options.changes, change)
                results["runs"]["{}, {} tab{}".format(kind, tabs, "s" if tabs > 1 else "")] = dict(
                    report.latency_summary(latencies), tabs=tabs, samples=[round(x, 3) for x in latencies])
    finally:
        browser.stop()
        yield node.stop()
        node.cleanup()
    write(results)


def write(results):
    os.makedirs(RESULTS, exist_ok=True)
    lines = ["# Browser: change -> DOM latency", "",
             "{} changes per run, made by a Python WAMP client: counter click -> new count, master edit -> "
             "new first name in the greeting, in the DOM of every tab (one browser profile, tabs share the "
             "SharedWorker's WebSocket). Python {}, {} CPUs.".format(
                 results["changes"], results["machine"]["python"], results["machine"]["cpus"]), "",
             "| run | samples | p50 ms | p99 ms | mean ms | max ms |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, run in results["runs"].items():
        lines.append("| {} | {} | {} | {} | {} | {} |".format(
            name, run["n"], run["p50_ms"], run["p99_ms"], run["mean_ms"], run["max_ms"]))
    lines += [""] + ["Note: " + note for note in results["notes"]]
    report.save("browser", "\n".join(lines) + "\n", results)
    plot(results)


def plot(results):
    report.latency_plot(results["runs"], "change -> DOM latency (ms)", "fraction of updates",
                        "Change to DOM update in headless Chromium", "browser.png")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--tabs", default="1,10", help="comma-separated tab counts")
    options = parser.parse_args(argv)
    options.tabs = [int(x) for x in options.tabs.split(",") if x]
    return options


if __name__ == "__main__":
    task.react(main, [parse(sys.argv[1:])])
