"""
A 30-day chart of one source at 1 reading/s (2.6 M raw readings) served
from the history's rollups, on a real node.

1. Seed: ``--days`` days of ``--rate`` readings/s of ``iot.device.bench-30d``
   are written into a fresh SQLite client database through
   ``components.iot.history.HistoryStore.insert`` in batches of ``--batch``:
   the code path of a live hub, so the 1-minute and 1-hour rollups are built
   incrementally as the raw states are stored (progress printed). Before
   that, ``--sample`` states are written twice into scratch databases, with
   the rollups and with them switched off, for the per-state cost of rollups.
2. Node: a real node on that database (``HISTORY_RAW_DAYS`` and
   ``HISTORY_MAX_STATES`` high enough to keep every raw state) and a WAMP
   client of role ``user``. Timed ``--loads`` times each, after warm-up:
   ``iot.history(resolution="1h", minutes=43200)`` (the 30-day chart),
   ``resolution="1m", minutes=1440`` (a day, paged), raw for the last hour
   (paged), and ``--raw-pages`` pages of 1,000 raw states from the oldest on
   (the raw-equivalent of the 30-day chart, extrapolated to all its pages:
   nobody should load it).
3. Browser: the source's readings are topped up to now; a real headless
   Chromium signed in on the dashboard picks the 30-day range on the
   source's chart; the time from the change to the chart drawn with the
   1-hour rows (in-page ``performance.now()``, polled every animation
   frame), ``--loads`` times, back to 10 minutes (raw points drawn) between.

    python bench/iot_rollups.py [--days 30] [--rate 1] [--batch 20000] [--loads 15] [--raw-pages 30]
                                [--sample 100000]

Prints a table and writes bench/results/iot_rollups.{json,md}.
"""

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from bench.browser import add_user  # noqa: E402
from bench.iot_chart import USERNAME, sign_in  # noqa: E402
from components.core.state import epoch_ms  # noqa: E402
from components.db.database import Database  # noqa: E402
from components.iot import history_rollup  # noqa: E402
from components.iot.history import HistoryStore  # noqa: E402
from tests.support.browser import BrowserThread  # noqa: E402
from tests.support.clients import connect  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402
from tests.support.polling import eventually  # noqa: E402

SOURCE = "iot.device.bench-30d"
DAY_MS = 86_400_000
CARD = 'figure[data-source="{}"]'.format(SOURCE)
# in the page: pick `minutes` on the chart's range picker; ms until the chart is drawn in `resolution`
PICK = """async ([source, minutes, resolution]) => {
  const figure = document.querySelector(`figure[data-source="${source}"]`);
  const select = figure.querySelector("select.chart-range");
  const band = figure.querySelector("polygon.chart-band");
  const started = performance.now();
  select.value = String(minutes);
  select.dispatchEvent(new Event("change"));
  await new Promise((resolve) => {
    const check = () => {
      const drawn = figure.dataset.resolution === resolution && !figure.dataset.loading
        && Number(resolution === "raw" ? figure.dataset.count : band.dataset.count) > 0;
      if (drawn) resolve(); else requestAnimationFrame(check);
    };
    check();
  });
  return {ms: performance.now() - started, rows: Number(band.dataset.count),
          points: Number(figure.dataset.count)};
}"""


class _Owner:
    """Stands in for a TestCase where tests.support.clients.connect wants one."""

    def addCleanup(self, fn, *args):
        pass


def states(start_ms, end_ms, step_ms):
    """Readings from ``start_ms`` to before ``end_ms``: a daily wave with a little noise; seq = ts."""
    for ts in range(start_ms, end_ms, step_ms):
        value = 50 + 30 * math.sin(ts / DAY_MS * 2 * math.pi) + ((ts // step_ms) * 37) % 21 - 10
        yield (SOURCE, {"value": round(value, 2), "seq": ts, "ts": ts})


@defer.inlineCallbacks
def write(url, rows, batch, progress=None):
    """Store ``rows`` through HistoryStore.insert in batches; fire with the seconds it took."""
    db = Database(url)
    store = HistoryStore(db)
    try:
        yield store.highest_seq(SOURCE)   # the schema, outside the clock
        started = time.monotonic()
        chunk = []
        done = 0
        for row in rows:
            chunk.append(row)
            if len(chunk) >= batch:
                yield store.insert(chunk)
                done += len(chunk)
                chunk = []
                if progress:
                    progress(done, time.monotonic() - started)
        if chunk:
            yield store.insert(chunk)
            done += len(chunk)
        return time.monotonic() - started
    finally:
        db.close()


@defer.inlineCallbacks
def insert_cost(sample, batch, step_ms, now_ms):
    """States/s writing ``sample`` states with and without the rollups (scratch databases, alternating)."""
    rates = {"with rollups": [], "without rollups": []}
    original = history_rollup.add
    for attempt in range(2):
        order = ("with rollups", "without rollups")
        for name in (order if attempt == 0 else order[::-1]):
            directory = tempfile.mkdtemp(prefix="bench-rollup-sample-")
            history_rollup.add = original if name == "with rollups" else (lambda cursor, rows: 0)
            try:
                seconds = yield write("sqlite:///" + os.path.join(directory, "client.db"),
                                      states(now_ms - sample * step_ms, now_ms, step_ms), batch)
            finally:
                history_rollup.add = original
                shutil.rmtree(directory, ignore_errors=True)
            rates[name].append(sample / seconds)
    return {name: round(max(values)) for name, values in rates.items()}


@defer.inlineCallbacks
def timed_loads(client, loads, kwargs, warmup=3):
    """``loads`` timed loads of every page of ``kwargs``' answer; summary with calls, rows and bytes."""
    samples, calls, rows, size = [], 0, 0, 0
    for attempt in range(warmup + loads):
        started = time.monotonic()
        after, calls, rows, size = None, 0, 0, 0
        while True:
            extra = dict(kwargs, limit=1000)
            if after is not None:
                extra["after_seq"] = after
            answer = yield client.session.call("iot.history", SOURCE, **extra)
            calls += 1
            rows += len(answer["states"])
            size += len(json.dumps(answer, separators=(",", ":")))
            if not answer["more"] or not answer["states"]:
                break
            after = answer["states"][-1]["seq"]
        if attempt >= warmup:
            samples.append((time.monotonic() - started) * 1000)
    return dict(report.latency_summary(samples), calls=calls, rows=rows, json_bytes=size,
                samples=[round(x, 1) for x in samples])


@defer.inlineCallbacks
def raw_pages(client, pages):
    """``pages`` consecutive raw pages of 1,000 from the oldest state: ms per page."""
    samples, after = [], None
    for _ in range(pages):
        started = time.monotonic()
        kwargs = {"limit": 1000} if after is None else {"limit": 1000, "after_seq": after}
        answer = yield client.session.call("iot.history", SOURCE, **kwargs)
        samples.append((time.monotonic() - started) * 1000)
        after = answer["states"][-1]["seq"]
    return samples, len(json.dumps(answer, separators=(",", ":")))


def browser_loads(browser, base_url, signed_in, loads):
    """On the browser thread: the dashboard, then ``loads`` times 10 min -> 30 days on the chart; ms each."""
    context = browser.new_context(storage_state=signed_in)
    try:
        page = context.new_page()
        page.goto(base_url + "/")
        page.wait_for_selector(CARD + ' select.chart-range', timeout=60000)
        results = []
        for _ in range(loads + 1):
            page.evaluate(PICK, [SOURCE, 10, "raw"])
            results.append(page.evaluate(PICK, [SOURCE, 43200, "1h"]))
        return results[1:]   # the first one warms the page's code paths
    finally:
        context.close()


@defer.inlineCallbacks
def main(_reactor, options):
    step_ms = int(round(1000 / options.rate))
    now_ms = int(time.time() * 1000) // 1000 * 1000
    start_ms = now_ms - int(options.days * DAY_MS)
    total = len(range(start_ms, now_ms, step_ms))
    results = {"source": SOURCE, "days": options.days, "rate": options.rate, "raw_states": total,
               "batch": options.batch, "sample": options.sample}
    print("insert cost: {} states with and without rollups ...".format(options.sample))
    results["insert_states_per_s"] = yield insert_cost(options.sample, options.batch, step_ms, now_ms)
    print("  ", results["insert_states_per_s"])

    node = RouterNode(name="bench-rollups", env={
        "HISTORY_RAW_DAYS": str(options.days + 2), "HISTORY_MAX_STATES": str(total * 2),
        "HISTORY_PRUNE_INTERVAL": "3600"})
    url = "sqlite:///" + os.path.join(node.directory, "client.db")
    node.env["DATABASE_URL"] = url
    last_print = [0.0]

    def progress(done, seconds):
        if seconds - last_print[0] >= 5 or done == total:
            last_print[0] = seconds
            print("  seeded {:>9,} / {:,} states ({:.0f}%) in {:.0f} s, {:,.0f} states/s".format(
                done, total, 100.0 * done / total, seconds, done / seconds), flush=True)

    print("seeding {:,} states ({} days at {}/s) through HistoryStore.insert ...".format(
        total, options.days, options.rate))
    seconds = yield write(url, states(start_ms, now_ms, step_ms), options.batch, progress)
    db_bytes = os.path.getsize(os.path.join(node.directory, "client.db"))
    results["seed"] = {"seconds": round(seconds, 1), "states_per_s": round(total / seconds),
                       "database_mb": round(db_bytes / 1e6, 1)}
    print("  ", results["seed"])
    browser = BrowserThread()
    try:
        yield node.start()
        yield eventually(lambda: "IoT history on" in node.log_text(), timeout=60,
                         message="history did not start")
        client = yield connect(_Owner(), node, sub="bench-rollups", role="user")
        loads = {}
        for name, kwargs in (("1h rollups, 30 days (the 30-day chart)",
                              {"resolution": "1h", "minutes": 43200}),
                             ("1m rollups, 1 day", {"resolution": "1m", "minutes": 1440}),
                             ("raw, last hour", {"minutes": 60})):
            loads[name] = yield timed_loads(client, options.loads, kwargs)
            print("  ", name, {key: value for key, value in loads[name].items() if key != "samples"})
        page_ms, page_bytes = yield raw_pages(client, options.raw_pages)
        pages = math.ceil(total / 1000)
        per_page = report.percentile(page_ms, 0.5, 2)
        results["raw_equivalent"] = {"pages_timed": len(page_ms), "page_p50_ms": per_page,
                                     "page_json_bytes": page_bytes, "pages": pages,
                                     "estimated_s": round(per_page * pages / 1000, 1),
                                     "estimated_mb": round(page_bytes * pages / 1e6, 1)}
        print("   raw equivalent:", results["raw_equivalent"])
        results["loads"] = loads
        rollup_rows = yield client.session.call("iot.history", SOURCE, resolution="1h", limit=1000,
                                                minutes=options.days * 1440 + 60)
        counted = sum(row["count"] for row in rollup_rows["states"])
        results["hour_rows_count_sum"] = counted
        if counted != total:
            raise RuntimeError("the 1-hour rollups count {} readings, {} were stored".format(counted, total))
        yield client.close()
        # the raw 10-minute view between the browser's loads needs readings up to now
        topped = int(time.time() * 1000) // step_ms * step_ms
        yield write(url, states(now_ms, topped, step_ms), options.batch)
        yield browser.start()
        yield add_user(node, USERNAME)
        signed_in = yield browser.run(sign_in, node.http)
        picked = yield browser.run(browser_loads, node.http, signed_in, options.loads)
        results["browser"] = dict(report.latency_summary([run["ms"] for run in picked]),
                                  rows=picked[-1]["rows"], samples=[round(run["ms"], 1) for run in picked])
        print("   browser:", {key: value for key, value in results["browser"].items() if key != "samples"})
    finally:
        browser.stop()
        yield node.stop()
        node.cleanup()
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform(),
                          "load_average": [round(x, 2) for x in os.getloadavg()],
                          "measured_at_ms": epoch_ms(time.time)}
    save(results)


def save(results):
    seed = results["seed"]
    raw = results["raw_equivalent"]
    rates = results["insert_states_per_s"]
    month = results["loads"]["1h rollups, 30 days (the 30-day chart)"]
    lines = [
        "# IoT history: a 30-day chart from rollups", "",
        "{raw_states:,} raw states ({days} days at {rate}/s) of one device source, written through "
        "HistoryStore.insert in batches of {batch:,} (the rollups built incrementally, as on a live hub): "
        "{s} s, {sps:,} states/s, a {mb} MB SQLite file. Writing {n} states into a fresh database (best of "
        "2 each, alternating): {w:,}/s with rollups, {wo:,}/s without; on a loaded 2-CPU machine this pair "
        "swings by more than the rollups cost, so read it as the same order, not as a ratio. The 1-hour rows "
        "count {c:,} readings (all of them). A real node on that file; "
        "iot.history over WebSocket (JSON) from a WAMP client of role user, {timed} timed loads each after 3 "
        "warm-up loads; load average {load} on {cpus} CPUs, Python {python}.".format(
            s=seed["seconds"], sps=seed["states_per_s"], mb=seed["database_mb"],
            n="{:,}".format(results["sample"]),
            w=rates["with rollups"], wo=rates["without rollups"], c=results["hour_rows_count_sum"],
            timed=month["n"], load=" / ".join(str(x) for x in results["machine"]["load_average"]),
            cpus=results["machine"]["cpus"], python=results["machine"]["python"], **results), "",
        "| what | calls | rows | JSON bytes | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, run in results["loads"].items():
        row = "| iot.history {} | {calls} | {rows:,} | {json_bytes:,} | {p50_ms} | {p99_ms} | {max_ms} |"
        lines.append(row.format(name, **run))
    lines.append("| raw equivalent of 30 days (extrapolated from {t} pages) | {pages:,} | {rows:,} | "
                 "~{mb} MB | "
                 "~{est:,} s in all ({pp} ms per page) | | |".format(
                     t=raw["pages_timed"], pages=raw["pages"], rows=results["raw_states"],
                     mb=raw["estimated_mb"],
                     est=raw["estimated_s"], pp=raw["page_p50_ms"]))
    browser = results["browser"]
    lines.append("| Chromium dashboard: pick 30 days -> chart drawn from 1h rows | 1 | {rows} | | {p50_ms} | "
                 "{p99_ms} | {max_ms} |".format(**browser))
    report.save("iot_rollups", "\n".join(lines) + "\n", results)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--rate", type=float, default=1)
    parser.add_argument("--batch", type=int, default=20000)
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--raw-pages", type=int, default=30)
    parser.add_argument("--sample", type=int, default=100000)
    return parser.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1:] == ["--rewrite"]:   # the .md again from the committed .json (after a wording change)
        with open(os.path.join(report.RESULTS, "iot_rollups.json")) as handle:
            save(json.load(handle))
    else:
        task.react(main, [parse(sys.argv[1:])])
