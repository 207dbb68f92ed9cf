"""
``POST /apps/publish`` on one dev node (.crossbar/config.json: one router
worker, every component running, SQLite; ``APPS_RATE``/``APPS_BURST``
lifted so the application's rate limit does not cap the figures):

1. throughput: C concurrent keep-alive HTTP/1.1 clients (asyncio in this
   process, one TCP connection each) post small public events, each the next
   request as soon as the answer is read, for S seconds after a warm-up:
   requests/s, p50/p99 request latency (write -> whole answer read), CPU of
   the router worker, of the whole node and of this client. No subscribers
   (what a publication costs to fan out is bench/fanout.py's subject); one
   more row posts with ``to_users`` (one user).
2. publish -> subscriber latency: N subscriber sessions of N distinct users
   subscribed to ``app.bench.events``; one keep-alive client posts R events/s,
   each carrying ``{"seq", "ts"}`` with ``ts`` the epoch ms taken just before
   the request is written; latency = receive time - ``ts`` at every
   subscriber (same machine, same clock). Runs: a public publish (every
   subscriber gets it), ``to_users`` naming one user (a different one each
   time: one delivery per event) and ``to_users`` naming all N users.
   Subscribers (``--subscribers``):
   ``browser``: real WebSockets in headless Chromium pages (autobahn.js, the
   library the web UI loads, WAMP-ticket with a user JWT), ``--per-page``
   sessions per page; receive time ``performance.timeOrigin + performance.now()``
   in the event handler. Not through hub.js: its SharedWorker makes every tab
   of a profile one WAMP session, and a renderer per subscriber does not fit
   two shared cores. ``native``: the epoll WAMP client of bench/fanout
   (bench/fanout/client.cc, ``FANOUT_CLIENT_TOPIC``) in a separate process,
   0.1 ms histogram.

    .venv/bin/python bench/apps_publish.py [--concurrency 1,8,32] [--seconds 10]
        [--subscribers browser,native] [--count 300] [--events 300] [--rate 20] [--chunk-size N]

Prints the tables; writes bench/results/apps_publish.{md,json} (raw
samples in the git-ignored .samples.json.gz) and, with matplotlib, .png.
"""

import argparse
import asyncio
import base64
import json
import math
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time

import psutil

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)

from bench import report  # noqa: E402
from bench.fanout import Clients, Server, _cpu, needs_build, raise_open_files, setup, start_quiet  # noqa: E402
from components.auth import tokens  # noqa: E402
from tests.support.node import TEST_SECRET, RouterNode  # noqa: E402

APP = "bench"
TOPIC = "app.bench.events"
LOAD_TOPIC = "app.bench.load"
GRACE_S = 5.0
USER = "bench{:05d}"

SUBSCRIBE = """async ([url, topic, tokens]) => {
    const autobahn = (await import("/js/autobahn.js")).default;
    window.__received = [];
    window.__closed = [];
    const open = (token) => new Promise((resolve, reject) => {
        const connection = new autobahn.Connection({url, realm: "reactive", authmethods: ["ticket"],
                                                    onchallenge: () => token, max_retries: 0});
        let joined = false;
        connection.onopen = (session) => {
            session.subscribe(topic, (args) => {
                const at = performance.timeOrigin + performance.now();
                const event = args[0];
                if (event && typeof event.ts === "number") window.__received.push([event.seq, at - event.ts]);
            }).then(() => { joined = true; resolve(); }, reject);
        };
        connection.onclose = (reason, details) => {
            if (!joined) reject(new Error("closed: " + reason));
            else window.__closed.push(reason + " " + JSON.stringify(details));
            return true;
        };
        connection.open();
    });
    await Promise.all(tokens.map(open));
    return tokens.length;
}"""
TAKE = "() => { const taken = window.__received; window.__received = []; return taken; }"
COUNT = "() => window.__received.length"
CLOSED = "() => window.__closed.length"


# ----- pure helpers (tests/bench/test_apps_publish.py) -----------------------------------------------

def basic_header(key, secret):
    """The ``Authorization`` value of HTTP Basic ``key:secret``."""
    return "Basic " + base64.b64encode("{}:{}".format(key, secret).encode("utf-8")).decode("ascii")


def post_request(host, authorization, body):
    """The bytes of one keep-alive ``POST /apps/publish`` with JSON ``body`` (a dict)."""
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    head = "POST /apps/publish HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n".format(host, authorization)
    head += "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n".format(len(payload))
    return head.encode("ascii") + payload


def response_head(head):
    """``(status, content length)`` of an HTTP/1.1 response head (bytes through the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, length


def event_body(kind, seq, ts, users):
    """The ``/apps/publish`` body of latency event ``seq`` stamped ``ts`` (epoch ms) for run ``kind``:
    ``public``; ``one user`` (``users[seq % len(users)]``); ``all users`` (``to_users`` = ``users``)."""
    body = {"topic": TOPIC, "args": [{"seq": seq, "ts": ts}]}
    if kind == "one user":
        body["to_users"] = [users[seq % len(users)]]
    elif kind == "all users":
        body["to_users"] = list(users)
    elif kind != "public":
        raise ValueError(kind)
    return body


def expected_deliveries(kind, events, subscribers):
    """Deliveries a run of ``events`` events must make to ``subscribers`` sessions of distinct users."""
    return events if kind == "one user" else events * subscribers


def merged_histogram(results):
    """One ``{bucket: count}`` of the native clients' ``hist`` (string bucket keys) in ``results``."""
    merged = {}
    for result in results:
        for bucket, count in result["hist"].items():
            merged[int(bucket)] = merged.get(int(bucket), 0) + count
    return merged


def pages_of(count, per_page):
    """Sizes of the browser pages holding ``count`` sessions, at most ``per_page`` each, as even as can be."""
    pages = max(1, math.ceil(count / per_page))
    return [count // pages + (1 if index < count % pages else 0) for index in range(pages)]


# ----- the node ---------------------------------------------------------------------------------------

def with_chunk_size(chunk_size):
    """A RouterNode transform setting the realm option ``event_dispatching_chunk_size`` (Crossbar's default:
    100 receivers per reactor turn)."""
    def transform(config):
        for worker in config["workers"]:
            for realm in worker.get("realms", []):
                realm.setdefault("options", {})["event_dispatching_chunk_size"] = chunk_size
        return config
    return transform


def add_app(node):
    """Register the application ``bench`` on ``node`` with the command line: its ``(key, secret)``."""
    command = [sys.executable, "-m", "components.applications", "--cbdir", node.directory,
               "app", "add", APP, "--json"]
    added = subprocess.run(command, env=node.env, cwd=REPO, capture_output=True, text=True, check=True)
    app = json.loads(added.stdout)
    return app["key"], app["secret"]


class Node(Server):
    """The dev node, started as bench/fanout.py starts its ``hub`` target (whose process labels and stop
    it shares), with the application ``bench``; ``chunk_size`` sets the realm's
    ``event_dispatching_chunk_size``."""

    def __init__(self, chunk_size=None):
        Server.__init__(self, "hub")
        self.chunk_size = chunk_size
        self.node = RouterNode(name="bench-apps", env={"APPS_RATE": "100000", "APPS_BURST": "100000"},
                               transform=with_chunk_size(chunk_size) if chunk_size else None)
        self.key = self.secret = None

    def start(self):
        self.process = start_quiet(self.node)
        self.key, self.secret = add_app(self.node)
        return self

    @property
    def authorization(self):
        return basic_header(self.key, self.secret)


class CpuMeter:
    """CPU of the node's processes, of this process (the HTTP clients) and of its child processes (the
    subscribers: Chromium and Playwright's driver, or the native clients) between ``start()`` and ``stop()``,
    in % of one core."""

    def __init__(self, node):
        self.node = node

    def start(self):
        self.processes = self.node.processes()
        node_pids = {proc.pid for proc in self.processes.values()}
        self.children = {str(proc.pid): proc for proc in psutil.Process().children(recursive=True)
                         if proc.pid not in node_pids}
        self.before, self.children_before = _cpu(self.processes), _cpu(self.children)
        self.own, self.wall = time.process_time(), time.monotonic()

    def stop(self):
        after, children, own = _cpu(self.processes), _cpu(self.children), time.process_time()
        wall = time.monotonic() - self.wall
        per = {label: 100.0 * (after[label] - self.before.get(label, 0.0)) / wall for label in after}
        router = sum(value for label, value in per.items() if "router" in label.lower())
        subscribers = sum(children[pid] - self.children_before.get(pid, 0.0) for pid in children)
        return {"router_cpu_pct": round(router, 1), "node_cpu_pct": round(sum(per.values()), 1),
                "client_cpu_pct": round(100.0 * (own - self.own) / wall, 1),
                "subscribers_cpu_pct": round(100.0 * subscribers / wall, 1)}


# ----- HTTP clients -----------------------------------------------------------------------------------

class Connection:
    """One keep-alive HTTP/1.1 connection to the node (asyncio streams, TCP_NODELAY)."""

    async def open(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def post(self, request):
        """Send ``request``; ``(status, body bytes)`` of the answer."""
        self.writer.write(request)
        status, length = response_head(await self.reader.readuntil(b"\r\n\r\n"))
        return status, await self.reader.readexactly(length)

    def close(self):
        self.writer.close()


def in_thread(coroutine_function, *args):
    """Run ``coroutine_function(*args)`` in a fresh asyncio loop on its own thread (Playwright's sync API owns
    this thread's loop); its result."""
    box = {}

    def run():
        try:
            box["result"] = asyncio.run(coroutine_function(*args))
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


async def load(port, host, authorization, concurrency, seconds, to_users, meter):
    """``concurrency`` clients posting back to back: a 2 s warm-up, then ``seconds`` measured."""
    body = {"topic": LOAD_TOPIC, "args": [{"n": 1}]}
    if to_users:
        body["to_users"] = [USER.format(0)]
    request = post_request(host, authorization, body)
    connections = [await Connection().open(port) for _ in range(concurrency)]
    latencies, errors = [], []
    phase = {"measure": False, "stop": False}

    async def client(connection):
        while not phase["stop"]:
            started = time.perf_counter()
            status, answer = await connection.post(request)
            if phase["measure"]:
                if status == 200:
                    latencies.append((time.perf_counter() - started) * 1000.0)
                else:
                    errors.append((status, answer[:200].decode("utf-8", "replace")))
    tasks = [asyncio.ensure_future(client(connection)) for connection in connections]
    await asyncio.sleep(2.0)
    phase["measure"] = True
    meter.start()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    phase["measure"] = False
    elapsed = time.monotonic() - started
    cpu = meter.stop()
    phase["stop"] = True
    await asyncio.gather(*tasks)
    for connection in connections:
        connection.close()
    return dict(report.latency_summary(latencies, 3), concurrency=concurrency, to_users=to_users,
                requests_per_s=round(len(latencies) / elapsed, 1), errors=len(errors),
                first_errors=errors[:3], seconds=round(elapsed, 2), **cpu)


async def publish_events(port, host, authorization, kind, seqs, rate, users):
    """Post one event per seq at ``rate``/s on one keep-alive connection; the request latencies (ms)."""
    connection = await Connection().open(port)
    latencies = []
    started = time.monotonic()
    for index, seq in enumerate(seqs):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        ts = time.time() * 1000.0
        began = time.perf_counter()
        request = post_request(host, authorization, event_body(kind, seq, ts, users))
        status, answer = await connection.post(request)
        if status != 200:
            raise RuntimeError("publish answered {}: {}".format(status, answer[:300]))
        latencies.append((time.perf_counter() - began) * 1000.0)
    connection.close()
    return latencies


# ----- subscribers ------------------------------------------------------------------------------------

def user_tokens(count):
    issuer = tokens.TokenIssuer(tokens.Keys("HS256", TEST_SECRET, TEST_SECRET), ttl=3600)
    return [issuer.issue(USER.format(index), "user") for index in range(count)]


class BrowserSubscribers:
    """``count`` autobahn.js sessions in headless Chromium pages (one browser context per page)."""

    kind = "browser"

    def __init__(self, node, count, per_page):
        from playwright.sync_api import sync_playwright
        from tests.support.browser import ARGS, CHROMIUM
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        origin = node.node.http
        all_tokens = user_tokens(count)
        self.pages = []
        first = 0
        for size in pages_of(count, per_page):
            page = self.browser.new_context().new_page()
            # a page of the node's origin (the router accepts a WebSocket Origin of its own host only,
            # Chromium a local WebSocket from a local page only); autobahn.js is the module the web UI imports
            page.goto(origin + "/health")
            page.evaluate(SUBSCRIBE, [node.node.url, TOPIC, all_tokens[first:first + size]])
            first += size
            self.pages.append(page)

    def processes(self):
        return {}

    def run(self, publish, expected):
        """Run ``publish()`` (it posts the events), wait for ``expected`` deliveries or the grace; the
        latencies."""
        for page in self.pages:
            page.evaluate(TAKE)
        http = publish()
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and sum(page.evaluate(COUNT) for page in self.pages) < expected:
            self.pages[0].wait_for_timeout(20)
        samples = [latency for page in self.pages for _, latency in page.evaluate(TAKE)]
        closed = sum(page.evaluate(CLOSED) for page in self.pages)
        return http, {"delivered": len(samples), **report.latency_summary(samples or [0.0], 2),
                      "closed": closed, "samples": [round(value, 3) for value in samples]}

    def close(self):
        self.browser.close()
        self.playwright.stop()


class NativeSubscribers:
    """``count`` sessions of bench/fanout/client.cc in separate processes, one run each (a window per run)."""

    kind = "native"

    def __init__(self, node, count, directory):
        if needs_build():
            setup(ws=False, build=True)
        self.node, self.count = node, count
        self.token_file = os.path.join(directory, "tokens.txt")
        with open(self.token_file, "w") as handle:
            handle.write("\n".join(user_tokens(count)) + "\n")

    def run(self, publish, expected):
        os.environ["FANOUT_CLIENT_TOPIC"] = TOPIC
        clients = Clients(self.node.node.url, self.count, self.token_file, "native")
        try:
            if not clients.wait_ready(60 + self.count / 50):
                raise RuntimeError("{} of {} subscribed".format(clients.subscribed(), self.count))
            t0 = time.time() * 1000.0
            clients.start_window(t0, t0 + 3600 * 1000.0)   # every event from now on; the window ends below
            http = publish()
            # the clients report at t1 + grace: end the window now (a second line overrides the first)
            t1 = time.time() * 1000.0
            for process in clients.processes:
                process.stdin.write(json.dumps({"t0": t0, "t1": t1, "grace": GRACE_S * 1000}) + "\n")
                process.stdin.flush()
            results = clients.results(GRACE_S + 30)
        finally:
            clients.stop()
            os.environ.pop("FANOUT_CLIENT_TOPIC", None)
        hist = merged_histogram(results)
        return http, {"delivered": sum(result["in_window"] for result in results),
                      "p50_ms": report.histogram_percentile(hist, 0.1, 0.5),
                      "p99_ms": report.histogram_percentile(hist, 0.1, 0.99),
                      "max_ms": round(max([result["max_ms"] for result in results] or [0]), 1),
                      "closed": sum(result["closed"] for result in results)}

    def close(self):
        pass


def latency_runs(node, subscribers, count, events, rate, first_seq):
    """The three latency runs (public, one user, all users) with ``subscribers``: ``{name: row}``."""
    users = [USER.format(index) for index in range(count)]
    rows = {}
    meter = CpuMeter(node)
    for number, kind in enumerate(("public", "one user", "all users")):
        seqs = list(range(first_seq + number * events, first_seq + (number + 1) * events))
        expected = expected_deliveries(kind, events, count)

        def publish():
            meter.start()
            latencies = in_thread(publish_events, node.node.port, "127.0.0.1:{}".format(node.node.port),
                                  node.authorization, kind, seqs, rate, users)
            return latencies, meter.stop()
        (http, cpu), delivered = subscribers.run(publish, expected)
        row = dict(subscribers=subscribers.kind, sessions=count, run=kind, events=events, rate=rate,
                   chunk_size=node.chunk_size or "100 (default)",
                   expected=expected, http=report.latency_summary(http, 2), **delivered, **cpu)
        rows["{}, chunk {}, {}".format(subscribers.kind, row["chunk_size"], kind)] = row
        print(latency_row(row), flush=True)
    return rows


# ----- report -----------------------------------------------------------------------------------------

LOAD_HEADER = ["| concurrent clients | to_users | requests/s | p50 ms | p99 ms | max ms | errors | "
               "router CPU % | node CPU % | client CPU % |",
               "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
LATENCY_HEADER = ["| subscribers | chunk size | run | delivered/expected | sessions closed | p50 ms | p99 ms "
                  "| max ms | HTTP p50/p99 ms | router CPU % | subscribers CPU % |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]


def load_row(run):
    return "| {concurrency} | {users} | {requests_per_s} | {p50_ms} | {p99_ms} | {max_ms} | {errors} | " \
           "{router_cpu_pct} | {node_cpu_pct} | {client_cpu_pct} |".format(
               users="1 user" if run["to_users"] else "-", **run)


def latency_row(run):
    return "| {subscribers}, {sessions} sessions | {chunk_size} | {run} | {delivered}/{expected} | " \
           "{closed} | {p50_ms} | {p99_ms} | {max_ms} | {h50}/{h99} | {router_cpu_pct} | {cpu} |".format(
               h50=run["http"]["p50_ms"], h99=run["http"]["p99_ms"],
               cpu=run.get("subscribers_cpu_pct", "-"), **run)


PATCHED_NOTE = (
    "Every browser session past the first 100 gets every event since the `chunk_binding` patch "
    "([patches](patches.md)); before it, Crossbar sent the receivers past its first chunk of 100 the EVENT "
    "of the event history's `app.` subscription, and the first event closed 200 of the 300 browser "
    "sessions.")
CHUNKING = (
    "**Sessions closed.** Crossbar sends an event to 100 receivers per "
    "reactor turn (the realm option `event_dispatching_chunk_size`) and continues with a closure defined "
    "in its loop over the subscriptions that match the topic (crossbar/router/broker.py, `_notify_some`): "
    "the next chunks send the EVENT of the *last* matching subscription. `app.` topics have two, the "
    "subscribers' own and the event history's `app.` prefix, so subscribers past the first 100 get an "
    "EVENT with a subscription id they never subscribed; autobahn.js closes such a session (close 3002, "
    "protocol violation), and the router logs `AlreadyCalledError` for the second resolution of the last "
    "subscription's Deferred. The native client does not check the subscription id, so it counts those "
    "events. With the chunk size above the audience (one turn) every browser session gets every event.")


def markdown(results):
    meta = results["meta"]
    lines = ["# Applications: POST /apps/publish", "",
             "One dev node (one router worker, all components, SQLite), {cpus} CPUs, Python {python}; load "
             "average at start {start}, at end {end} (the machine is shared with other engineers' runs). "
             "`APPS_RATE`/`APPS_BURST` lifted to 100,000.".format(
                 start=", ".join("{:.2f}".format(v) for v in meta["load_avg_start"]),
                 end=", ".join("{:.2f}".format(v) for v in meta["load_avg_end"]), **meta), ""]
    if results["load"]:
        lines += ["Throughput: keep-alive HTTP/1.1 clients in one asyncio process posting a small public "
                  "event (or one for one user) back to back for {} s after a 2 s warm-up; no subscribers. "
                  "Latency: request written -> answer read.".format(meta["seconds"]), ""]
        lines += LOAD_HEADER + [load_row(run) for run in results["load"]] + [""]
    if results["latency"]:
        lines += ["Publish -> subscriber: {events} events per run at {rate}/s from one keep-alive client; "
                  "latency = receipt at the subscriber - `ts` taken just before the request was written. "
                  "`public`: every session gets every event; `one user`: `to_users` names one user (a "
                  "different one per event); `all users`: `to_users` names every subscriber's user. "
                  "Subscribers are sessions of distinct users: `browser` = autobahn.js WebSockets in "
                  "headless Chromium pages ({per_page} per page, each page its own browser context), "
                  "`native` = the epoll WAMP client of bench/fanout in a separate process (0.1 ms "
                  "histogram). Router CPU during the run; subscribers CPU: Chromium's processes and "
                  "Playwright's driver, or the native clients (on two shared cores the browser rows are "
                  "bound by Chromium's share).".format(**meta), ""]
        lines += LATENCY_HEADER + [latency_row(run) for run in results["latency"].values()] + [""]
        closed = any(run["closed"] for run in results["latency"].values())
        lines += [CHUNKING if closed else PATCHED_NOTE, ""]
    return "\n".join(lines)


def plot(results):
    plt = report.pyplot()
    if plt is None or not results["load"]:
        return
    public = [run for run in results["load"] if not run["to_users"]]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot([run["concurrency"] for run in public], [run["requests_per_s"] for run in public], "o-")
    axes[0].set_xlabel("concurrent HTTP clients")
    axes[0].set_ylabel("requests/s")
    axes[0].set_xscale("log", base=2)
    for key in ("p50_ms", "p99_ms"):
        axes[1].plot([run["concurrency"] for run in public], [run[key] for run in public], "o-",
                     label=key[:3])
    axes[1].set_xlabel("concurrent HTTP clients")
    axes[1].set_ylabel("request latency (ms)")
    axes[1].set_xscale("log", base=2)
    axes[1].legend()
    figure.suptitle("POST /apps/publish on one dev node")
    figure.tight_layout()
    figure.savefig(os.path.join(report.RESULTS, "apps_publish.png"), dpi=110)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts ('' skips)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--subscribers", default="browser,native", help="browser and/or native ('' skips)")
    parser.add_argument("--count", type=int, default=300, help="subscriber sessions")
    parser.add_argument("--per-page", type=int, default=50, help="browser sessions per page")
    parser.add_argument("--events", type=int, default=300, help="events per latency run")
    parser.add_argument("--rate", type=float, default=20.0, help="events/s of the latency runs")
    parser.add_argument("--chunk-size", type=int, default=0,
                        help="also run the browser subscribers on a node whose realm sets "
                             "event_dispatching_chunk_size to this (0: not)")
    parser.add_argument("--output", default="apps_publish")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md (and .png) from the "
                        ".json")
    return parser.parse_args(argv)


def main(argv=None):
    options = parse(argv)
    if options.render:
        with open(os.path.join(report.RESULTS, options.output + ".json")) as handle:
            results = json.load(handle)
        report.save(options.output, markdown(results), results)
        plot(results)
        return
    raise_open_files()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_avg_start": list(os.getloadavg()), "seconds": options.seconds, "events": options.events,
            "rate": options.rate, "per_page": options.per_page, "sessions": options.count}
    results = {"meta": meta, "load": [], "latency": {}}
    kinds = [value for value in options.subscribers.split(",") if value]
    unknown = set(kinds) - {"browser", "native"}
    if unknown:
        raise SystemExit("--subscribers takes browser and/or native, not " + ",".join(sorted(unknown)))
    measure(options, results, Node().start(), options.concurrency, kinds)
    if options.chunk_size and "browser" in kinds:
        measure(options, results, Node(options.chunk_size).start(), "", ["browser"])
    meta["load_avg_end"] = list(os.getloadavg())
    meta["open_files_limit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    text = markdown(results)
    report.save(options.output, text, results)
    plot(results)


def measure(options, results, node, concurrency_list, kinds):
    """The throughput runs (``concurrency_list``) and the latency runs of ``kinds`` on ``node``; stops it."""
    host = "127.0.0.1:{}".format(node.node.port)
    try:
        for concurrency in [int(value) for value in concurrency_list.split(",") if value]:
            run = in_thread(load, node.node.port, host, node.authorization, concurrency, options.seconds,
                            False, CpuMeter(node))
            results["load"].append(run)
            print(load_row(run), flush=True)
        if concurrency_list:
            run = in_thread(load, node.node.port, host, node.authorization, 8, options.seconds, True,
                            CpuMeter(node))
            results["load"].append(run)
            print(load_row(run), flush=True)
        for number, kind in enumerate(kinds):
            if kind == "browser":
                subscribers = BrowserSubscribers(node, options.count, options.per_page)
            else:
                subscribers = NativeSubscribers(node, options.count, node.node.directory)
            try:
                results["latency"].update(latency_runs(node, subscribers, options.count, options.events,
                                                       options.rate, first_seq=number * 10 ** 6))
            finally:
                subscribers.close()
    finally:
        node.stop()


if __name__ == "__main__":
    main()
