"""
Page load to a drawn IoT chart in a real headless Chromium: the time from
navigating to the dashboard until the chart of one source shows its newest
point, with 10 minutes of history at 10 readings/s (6,000 stored states)
loaded through ``iot.history`` by ``hub.series``.

The states are seeded into the node's history store through its own API
(``components.iot.history.HistoryStore.insert``, on the node's client
database) as the device source ``iot.device.bench-chart``, one every 100 ms
up to now; before each run the store is topped up to now, so every run finds
a full window. Each run is a fresh browser profile (its own SharedWorker, no
points held anywhere), signed in through ``/auth/login`` before the clock
starts (one login; its session cookie goes into every profile); the time is
from navigation start to the dashboard's performance mark of the first
drawing of the chart (the whole window arrives in one batch; the run waits
until the chart's ``data-last-seq`` names the newest seeded seq), with the
marks before it (online, ``iot.sources`` answered, points in), and the wall
time until Playwright saw it. A "warm" run opens a second tab in a profile whose
SharedWorker already holds the window.

    python bench/iot_chart.py [--runs 5] [--minutes 10] [--rate 10]

Prints a table and writes bench/results/iot_chart.{json,md}. ``bench/iot.py``
calls :func:`measure`.
"""

import argparse
import os
import platform
import sys
import time

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from bench.browser import PASSWORD, add_user  # noqa: E402
from components.core.state import epoch_ms  # noqa: E402
from components.db.database import Database  # noqa: E402
from components.iot.history import HistoryStore  # noqa: E402
from tests.support.browser import BrowserThread  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402

SOURCE = "iot.device.bench-chart"
USERNAME = "bench-chart"
CARD = 'figure[data-source="{}"][data-last-seq="{}"]'
# the dashboard's performance marks (ms from navigation start): online, iot.sources answered, the series'
# first points, the chart first drawn with them (the whole window comes in one batch)
STEPS = (("online", "hub:online"), ("sources", "hub:sources"), ("points", "hub:series-points:" + SOURCE),
         ("drawn", "hub:chart-drawn:" + SOURCE))
MARKS = """() => Object.fromEntries(performance.getEntriesByType('mark').map((m) => [m.name, m.startTime]))"""


class Seeder:
    """Keeps ``SOURCE``'s history at ``rate`` states/s up to now in the node's client database."""

    def __init__(self, node, rate):
        self.db = Database("sqlite:///" + os.path.join(node.directory, "client.db"))
        self.store = HistoryStore(self.db)
        self.step = int(round(1000 / rate))
        self.last = None

    @defer.inlineCallbacks
    def top_up(self, minutes):
        """Store the states missing up to now (the whole window the first time); fire with the newest seq."""
        now = int(time.time() * 1000)
        start = now - int(minutes * 60000) + self.step if self.last is None else self.last + self.step
        rows = []
        for ts in range(start, now + 1, self.step):
            value = 50 + 40 * ((ts // self.step) % 600) / 600   # a slow saw tooth
            rows.append((SOURCE, {"device": "bench-chart", "value": round(value, 2), "seq": ts, "ts": ts}))
        for offset in range(0, len(rows), 1000):
            yield self.store.insert(rows[offset:offset + 1000])
        if rows:
            self.last = rows[-1][1]["seq"]
        return self.last

    def close(self):
        self.db.close()


def sign_in(browser, base_url):
    """On the browser thread: POST /auth/login once; the storage state (the session cookie) for fresh profiles."""
    context = browser.new_context()
    try:
        answer = context.request.post(base_url + "/auth/login", data={"username": USERNAME, "password": PASSWORD})
        if not answer.ok:
            raise RuntimeError("login failed: {} {}".format(answer.status, answer.text()))
        return context.storage_state()
    finally:
        context.close()


def load_run(browser, base_url, signed_in, transport, last_seq, warm=False, timeout=60.0):
    """On the browser thread: page load -> chart with ``last_seq`` drawn; (page ms, wall ms, points drawn)."""
    context = browser.new_context(storage_state=signed_in)   # a fresh profile: no SharedWorker, no points held
    try:
        path = "/?transport=" + transport
        if warm:
            first = context.new_page()
            first.goto(base_url + path)
            first.wait_for_selector(CARD.format(SOURCE, last_seq), timeout=timeout * 1000)
        page = context.new_page()
        started = time.monotonic()
        page.goto(base_url + path)
        page.wait_for_selector(CARD.format(SOURCE, last_seq), timeout=timeout * 1000)
        wall = (time.monotonic() - started) * 1000
        marks = page.evaluate(MARKS)
        drawn = int(page.locator('figure[data-source="{}"]'.format(SOURCE)).get_attribute("data-count"))
        mode = page.evaluate("hub.mode")
        if mode != transport:
            raise RuntimeError("asked for the {} transport, the page used {}".format(transport, mode))
        return marks, wall, drawn
    finally:
        context.close()


@defer.inlineCallbacks
def measure(node=None, browser=None, runs=5, minutes=10, rate=10, transports=("shared", "direct")):
    """
    Fire with ``{"states", "minutes", "rate", "runs": {name: summary + drawn}}``: page load -> drawn chart
    per transport (cold: a fresh profile per run) and warm (SharedWorker already holding the window).
    ``node`` (a started RouterNode) and ``browser`` (a started BrowserThread) are made and ended here when
    not given.
    """
    own_node, own_browser = node is None, browser is None
    if own_node:
        node = RouterNode(name="bench-chart")
        yield node.start()
    if own_browser:
        browser = BrowserThread()
        yield browser.start()
    seeder = Seeder(node, rate)
    results = {"states": int(minutes * 60 * rate), "minutes": minutes, "rate": rate, "runs": {}}
    try:
        yield add_user(node, USERNAME)
        signed_in = yield browser.run(sign_in, node.http)
        plans = [(transport, False) for transport in transports]
        if "shared" in transports:
            plans.append(("shared", True))
        for transport, warm in plans:
            steps = {step: [] for step, _ in STEPS}
            wall_ms, drawn = [], []
            for _ in range(runs):
                last_seq = yield seeder.top_up(minutes)
                marks, wall, count = yield browser.run(load_run, node.http, signed_in, transport, last_seq, warm)
                for step, mark in STEPS:
                    steps[step].append(marks[mark])
                wall_ms.append(wall)
                drawn.append(count)
            name = "{}{}".format(transport, ", warm (worker holds the window)" if warm else "")
            results["runs"][name] = dict(report.latency_summary(steps["drawn"]),
                                         wall=report.latency_summary(wall_ms), drawn_min=min(drawn),
                                         drawn_max=max(drawn), samples=[round(x, 1) for x in steps["drawn"]],
                                         steps_p50_ms={step: report.percentile(values, 0.5, 2)
                                                       for step, values in steps.items()})
    finally:
        seeder.close()
        if own_browser:
            browser.stop()
        if own_node:
            yield node.stop()
            node.cleanup()
    return results


def write(results):
    lines = ["# IoT chart: page load -> drawn chart", "",
             "{states} stored states ({minutes} min at {rate}/s) of one device source, loaded by hub.series "
             "through iot.history (1,000 per call) and drawn as one SVG polyline; time from navigation start "
             "(the dashboard's performance marks) until the chart is drawn with the whole window, and the steps "
             "before it; the wall time until Playwright saw the newest state adds its own polling. Fewer than "
             "{states} points drawn: the window slid on before the page drew it. Fresh browser profile per cold "
             "run. Python {python}, {cpus} CPUs.".format(python=platform.python_version(), cpus=os.cpu_count(),
                                                               **results), "",
             "| transport | runs | drawn p50 ms | p99 ms | mean ms | max ms | p50: online / sources / points ms "
             "| seen by Playwright p50 ms | points drawn |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, run in results["runs"].items():
        steps = run["steps_p50_ms"]
        lines.append("| {} | {n} | {p50_ms} | {p99_ms} | {mean_ms} | {max_ms} | {} / {} / {} | {} | {}-{} |".format(
            name, steps["online"], steps["sources"], steps["points"], run["wall"]["p50_ms"], run["drawn_min"],
            run["drawn_max"], **run))
    report.save("iot_chart", "\n".join(lines) + "\n", results)


@defer.inlineCallbacks
def main(_reactor, options):
    results = yield measure(runs=options.runs, minutes=options.minutes, rate=options.rate)
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                          "measured_at_ms": epoch_ms(time.time)}
    write(results)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=10)
    return parser.parse_args(argv)


if __name__ == "__main__":
    task.react(main, [parse(sys.argv[1:])])
