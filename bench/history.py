"""
The stored event history (components/event_history, issue 22 item 4) on a
real dev node (.crossbar/config.json: one router worker with every
component, started as bench/fanout.py starts its ``hub`` target):

1. **on vs off.** Two nodes side by side, one with the history
   (``HISTORY_TOPICS`` default: every ``app.`` topic) and one without
   (``HISTORY_TOPICS=,``: no topic), measured in turn (``--rounds``, the
   order alternating). In each run the application ``bench`` (registry +
   WAMP-CRA, role ``app``) publishes ``--rate`` events/s to
   ``app.bench.events`` for ``--seconds`` s, each ``{"seq", "ts"}`` with
   ``ts`` the epoch ms just before the publish; ``--count`` subscribers of
   distinct users: with the history on they subscribe ``hub.feed.<topic>``
   (what hub.js does), with it off the topic itself. ``--probes`` of them
   are Python sessions (components.client.hub_client) in this process,
   which measure publish -> receipt from the publisher's ``ts`` (for a feed
   message the one in its ``args``); the others are the epoll clients of
   bench/fanout (client.cc, ``FANOUT_CLIENT_TOPIC``), which count the
   deliveries and read the first argument's top-level ``ts``: the
   publisher's with the history off, the recorder's stamp (the router
   received the event) with it on. Router worker CPU over the window, per
   event published and per delivery; the ratio on/off per round.
   ``--databases sqlite,postgresql``: the client database of both nodes
   (PostgreSQL: a fresh database each on the local server, pool as
   configured, ``DATABASE_POOL_MAX`` default 3).
2. **recovery.** One node with the history on (SQLite). ``--recover``
   sessions in ``--workers`` Python processes (this script with
   ``--worker``: HubClient sessions, WAMP-ticket with their own user's JWT)
   subscribe the feed and see 5 events; all of them disconnect; the
   application publishes ``--missed`` events; the node is stopped and
   started again on the same directory and database; once it answers
   ``/health/ready`` every session connects at once, subscribes the feed
   and reads ``hub.history(topic, after_publication=<its last>,
   limit=--page)`` page by page until ``more`` is false (retrying while the
   procedure is not registered yet). Time from ready until every session
   has its pages, per session p50/p99, and a check that every session got
   exactly the missed positions, in order, once.

    .venv/bin/python bench/history.py [--count 1000] [--rate 20] [--seconds 30] [--rounds 2]
        [--databases sqlite,postgresql] [--recover 1000] [--missed 100] [--page 100] [--workers 4]
        [--parts onoff,recovery] [--output history]

Prints the tables; writes bench/results/<output>.{md,json}.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time

import psutil

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, REPO)

from bench import report  # noqa: E402
from bench.apps_publish import add_app, merged_histogram  # noqa: E402
from bench.fanout import GRACE_MS, Clients, _cpu, _label, _tokens, needs_build, start_quiet  # noqa: E402
from bench.fanout import raise_open_files, setup  # noqa: E402
from components.event_history import HISTORY, feed_topic  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402

TOPIC = "app.bench.events"
FEED = feed_topic(TOPIC)
HISTORY_OFF = ","  # a list with no topic (an empty value reads as the default list)
WARMUP_EVENTS = 5
IDLE_SECONDS = 3.0
RECOVERY_TIMEOUT = 300.0


# ----- pure helpers (tests/bench/test_history.py) -----------------------------------------------------

def publish_times(t0_ms, rate, seconds):
    """Epoch ms at which to publish the events of the window ``[t0_ms, t0_ms + seconds * 1000]``: one per
    ``1000 / rate`` ms, each in the middle of its interval (never near the window's edges)."""
    step = 1000.0 / rate
    return [t0_ms + (index + 0.5) * step for index in range(int(round(rate * seconds)))]


def event_stamp(message):
    """``ts`` of an event's first argument: the publisher's ``{"seq", "ts"}``, inside ``args`` for a feed
    message ``{"publication", "ts", "args", "kwargs"}``; None without one."""
    if isinstance(message, dict) and "publication" in message and isinstance(message.get("args"), list):
        message = message["args"][0] if message["args"] else None
    if isinstance(message, dict) and isinstance(message.get("ts"), (int, float)):
        return message["ts"]
    return None


def recovery_check(expected, sessions):
    """
    How the positions each session read (``sessions``: lists, in the order
    read) compare with ``expected`` (the missed positions, in order):
    ``{"sessions", "complete", "missing", "duplicated", "unexpected",
    "out_of_order"}``: complete = sessions with exactly ``expected``;
    missing/duplicated/unexpected count positions over all sessions;
    out_of_order counts sessions whose positions are not ascending.
    """
    wanted = set(expected)
    check = {"sessions": len(sessions), "complete": 0, "missing": 0, "duplicated": 0, "unexpected": 0,
             "out_of_order": 0}
    for got in sessions:
        seen = set(got)
        check["complete"] += list(got) == list(expected)
        check["missing"] += len(wanted - seen)
        check["duplicated"] += len(got) - len(seen)
        check["unexpected"] += len(seen - wanted)
        check["out_of_order"] += any(later <= earlier for earlier, later in zip(got, got[1:]))
    return check


def ratio(on, off, digits=3):
    """``on / off`` rounded, None when ``off`` is 0 or either is None."""
    if on is None or not off:
        return None
    return round(on / off, digits)


def split(total, parts):
    """``total`` items in ``parts`` slices as even as can be: ``[(first, size)]`` (no empty slice)."""
    parts = max(1, min(parts, total))
    sizes = [total // parts + (1 if index < total % parts else 0) for index in range(parts)]
    return [(sum(sizes[:index]), size) for index, size in enumerate(sizes)]


# ----- the reactor (a thread of this process) ---------------------------------------------------------

_reactor_thread = None


def in_reactor(function, *args, **kwargs):
    """Run ``function`` in the reactor thread (started once); its result, waiting for a Deferred."""
    global _reactor_thread
    from twisted.internet import reactor, threads
    if _reactor_thread is None:
        _reactor_thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                                           daemon=True)
        _reactor_thread.start()
    return threads.blockingCallFromThread(reactor, function, *args, **kwargs)


def user_client(url, ticket, reconnect=False):
    """A HubClient of one user (``ticket``: its JWT), no handshake timers."""
    from components.client.hub_client import HubClient
    return HubClient(url, lambda: ticket, reconnect=reconnect,
                     protocol_options={"openHandshakeTimeout": 0, "closeHandshakeTimeout": 0})


def app_session(url, port, key, secret):
    """Join as the application (WAMP-CRA); a Deferred of ``(session, protocol)``."""
    from autobahn.twisted.websocket import WampWebSocketClientFactory
    from autobahn.wamp import types
    from twisted.internet import endpoints, reactor

    from tests.applications.test_wamp_gate import AppSession
    session = AppSession(types.ComponentConfig(realm="reactive"), key, secret)
    factory = WampWebSocketClientFactory(lambda: session, url=url)
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
    d = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=30).connect(factory)
    d.addCallback(lambda protocol: session.joined.addCallback(lambda _: (session, protocol)))
    return d


# ----- the node ---------------------------------------------------------------------------------------

class Node:
    """A dev node with the history on or off, on SQLite (its own file) or ``database_url``, and the
    application ``bench``; ``stop()`` keeps its directory (and SQLite database) for ``start()``."""

    def __init__(self, name, history, database_url=None, env=None):
        self.history = history
        self.database = "postgresql" if database_url else "sqlite"
        extra = dict(env or {})
        if not history:
            extra["HISTORY_TOPICS"] = HISTORY_OFF
        if database_url:
            extra["DATABASE_URL"] = database_url
        self.node = RouterNode(name=name, env=extra)
        self.process = None
        self.key = self.secret = None

    def start(self):
        """Start the node; seconds until ``/health/ready``."""
        started = time.monotonic()
        self.process = start_quiet(self.node)
        return time.monotonic() - started

    def add_app(self):
        self.key, self.secret = add_app(self.node)

    def processes(self):
        root = psutil.Process(self.process.pid)
        found = {}
        for proc in [root] + root.children(recursive=True):
            label = _label(proc, "hub")
            found[label if label not in found else "{} {}".format(label, proc.pid)] = proc
        return found

    def join_app(self):
        """The application's session and protocol (joined in the reactor thread)."""
        return in_reactor(app_session, self.node.url, self.node.port, self.key, self.secret)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.node.directory, ignore_errors=True)


def router_seconds(times):
    """CPU seconds of the router worker(s) in ``times`` ({label: seconds})."""
    return sum(value for label, value in times.items() if "router" in label.lower())


# ----- part 1: on vs off ------------------------------------------------------------------------------

class Probes:
    """Python subscriber sessions measuring publish -> receipt (ms) from the publisher's ``ts``, and for a
    feed the recorder's stamp minus the publisher's."""

    def __init__(self, url, tickets, topic):
        self.url, self.tickets, self.topic = url, tickets, topic
        self.samples, self.hop = [], []
        self.window = None
        self.clients = []

    def start(self):
        from twisted.internet import defer

        @defer.inlineCallbacks
        def connect():
            for ticket in self.tickets:
                client = user_client(self.url, ticket)
                session = yield client.connect()
                yield session.subscribe(self.on_event, self.topic)
                self.clients.append(client)
        return in_reactor(connect)

    def on_event(self, message, *args, **kwargs):
        now = time.time() * 1000.0
        ts = event_stamp(message)
        if ts is None or self.window is None or not self.window[0] <= ts <= self.window[1]:
            return
        self.samples.append(now - ts)
        if "publication" in message and isinstance(message.get("ts"), (int, float)):
            self.hop.append(message["ts"] - ts)

    def stop(self):
        from twisted.internet import defer
        return in_reactor(lambda: defer.gatherResults([client.close() for client in self.clients]))


def publish_window(session, t0_ms, rate, seconds, sent):
    """Schedule the window's events on the application ``session``; each ``ts`` is appended to ``sent``."""
    from twisted.internet import reactor

    def publish(seq):
        ts = time.time() * 1000.0
        sent.append(ts)
        session.publish(TOPIC, {"seq": seq, "ts": ts})
    for seq, at in enumerate(publish_times(t0_ms, rate, seconds)):
        reactor.callLater(max(0.0, at / 1000.0 - time.time()), publish, seq)


def measure(node, args, token_file, tickets, round_index):
    """One run on ``node``: its subscribers, a window of ``args.seconds`` s at ``args.rate``/s."""
    topic = FEED if node.history else TOPIC
    natives = args.count - len(tickets)
    os.environ["FANOUT_CLIENT_TOPIC"] = topic
    started = time.monotonic()
    clients = Clients(node.node.url, natives, token_file, "native")
    ready = clients.wait_ready(60 + natives / 50)
    connect_s = round(time.monotonic() - started, 1)
    probes = Probes(node.node.url, tickets, topic)
    probes.start()
    session, protocol = node.join_app()
    time.sleep(2)  # the connection storm settles
    processes = node.processes()
    # the router's own background (clock, counter, ...) with every subscriber connected and no event
    idle0, idle_wall0 = router_seconds(_cpu(processes)), time.monotonic()
    time.sleep(IDLE_SECONDS)
    idle_rate = (router_seconds(_cpu(processes)) - idle0) / (time.monotonic() - idle_wall0)
    t0 = int(time.time() * 1000) + 1000
    t1 = t0 + args.seconds * 1000
    probes.window = (t0, t1)
    clients.start_window(t0, t1)
    sent = []
    in_reactor(publish_window, session, t0, args.rate, args.seconds, sent)
    time.sleep(max(0.0, t0 / 1000.0 - time.time()))
    cpu0, wall0 = _cpu(processes), time.monotonic()
    time.sleep(max(0.0, t1 / 1000.0 - time.time()))
    cpu1, wall1 = _cpu(processes), time.monotonic()
    results = clients.results(GRACE_MS / 1000.0 + 30)
    # the router's work for the window's events, late deliveries included (the clients report at t1 + grace)
    cpu2, wall2 = _cpu(processes), time.monotonic()
    clients.stop()
    probes.stop()
    in_reactor(lambda: protocol.transport.loseConnection())
    wall = wall1 - wall0
    published = sum(1 for ts in sent if t0 <= ts <= t1)
    hist = merged_histogram(results)
    router_s = router_seconds(cpu1) - router_seconds(cpu0)
    router_all_s = router_seconds(cpu2) - router_seconds(cpu0)
    router_net_s = max(0.0, router_all_s - idle_rate * (wall2 - wall0))
    delivered = sum(result["in_window"] for result in results)
    late = sum(result["late"] for result in results)
    made = delivered + late + len(probes.samples)
    expected = published * natives
    probe_expected = published * len(tickets)
    return {
        "database": node.database, "history": "on" if node.history else "off", "round": round_index,
        "topic": topic, "subscribers": args.count, "native": natives, "probes": len(tickets),
        "all_connected": ready, "connect_s": connect_s, "rate": args.rate, "seconds": args.seconds,
        "published": published, "delivered": delivered, "expected": expected,
        "late": late,
        "probe_delivered": len(probes.samples), "probe_expected": probe_expected,
        "native_p50_ms": report.histogram_percentile(hist, 0.1, 0.50),
        "native_p99_ms": report.histogram_percentile(hist, 0.1, 0.99),
        "p50_ms": report.percentile(probes.samples, 0.5, 1),
        "p99_ms": report.percentile(probes.samples, 0.99, 1),
        "max_ms": round(max(probes.samples), 1) if probes.samples else None,
        "stamp_hop_p50_ms": report.percentile(probes.hop, 0.5, 2),
        "router_cpu_pct": round(100.0 * router_s / wall, 1),
        "node_cpu_pct": round(100.0 * sum(cpu1[label] - cpu0.get(label, 0.0) for label in cpu1) / wall, 1),
        "router_cpu_s_to_end": round(router_all_s, 2), "seconds_to_end": round(wall2 - wall0, 1),
        "router_idle_pct": round(100.0 * idle_rate, 1),
        "router_ms_per_event": round(1000.0 * router_net_s / published, 2) if published else None,
        "router_us_per_delivery": round(1e6 * router_net_s / made, 2) if made else None,
        "load_avg": [round(value, 2) for value in os.getloadavg()],
    }


def on_off(args, token_file, tickets):
    """Part 1 for every database of ``args.databases``: the runs, in the order measured."""
    runs = []
    for database in args.databases.split(","):
        nodes = []
        try:
            for history in (True, False):
                url = None
                if database == "postgresql":
                    from tests.support.databases import postgres_url
                    url = postgres_url(None)
                node = Node("history-" + ("on" if history else "off"), history, url)
                nodes.append(node)
                node.start()
                node.add_app()
            for round_index in range(1, args.rounds + 1):
                order = nodes if round_index % 2 else list(reversed(nodes))
                for node in order:
                    run = measure(node, args, token_file, tickets, round_index)
                    runs.append(run)
                    print(onoff_row(run), flush=True)
        finally:
            for node in nodes:
                node.remove()
    return runs


ONOFF_HEADER = ["| database | round | history | subscribers (native + probes) | events | delivered/expected "
                "(native) | probes delivered | native late | p50 ms | p99 ms | max ms | native p50/p99 ms | "
                "router CPU % (idle) | router ms/event | router µs/delivery | node CPU % | load |",
                "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: "
                "| ---: | ---: | ---: | ---: |"]


def onoff_row(run):
    return ("| {database} | {round} | {history} | {native} + {probes} | {published} | "
            "{delivered}/{expected} | {probe_delivered}/{probe_expected} | {late} | {p50_ms} | {p99_ms} | "
            "{max_ms} | "
            "{native_p50_ms}/{native_p99_ms} | {router_cpu_pct} ({router_idle_pct}) | "
            "{router_ms_per_event} | "
            "{router_us_per_delivery} | {node_cpu_pct} | {load} |").format(load=run["load_avg"][0], **run)


def _compared(database, round_index, on, off):
    """The on/off figures of ``on`` and ``off`` (run dicts, or their means over rounds)."""
    return {"database": database, "round": round_index,
            "router_cpu_ratio": ratio(on["router_cpu_pct"], off["router_cpu_pct"]),
            "per_delivery_ratio": ratio(on["router_us_per_delivery"], off["router_us_per_delivery"]),
            "extra_ms_per_event": round(on["router_ms_per_event"] - off["router_ms_per_event"], 2),
            "on_ms_per_event": on["router_ms_per_event"], "off_ms_per_event": off["router_ms_per_event"]}


def on_off_summary(runs):
    """Per database and round with both runs: router CPU on/off and the extra router ms per event; then
    per database (round ``"mean"``) the same of the means over those rounds, when there are several."""
    summary = []
    keys = sorted({(run["database"], run["round"]) for run in runs})
    pairs = {}
    for database, round_index in keys:
        pair = {run["history"]: run for run in runs
                if (run["database"], run["round"]) == (database, round_index)}
        if set(pair) != {"on", "off"}:
            continue
        summary.append(_compared(database, round_index, pair["on"], pair["off"]))
        pairs.setdefault(database, []).append(pair)
    figures = ("router_cpu_pct", "router_us_per_delivery", "router_ms_per_event")
    for database, paired in sorted(pairs.items()):
        if len(paired) < 2:
            continue
        means = {side: {figure: round(sum(pair[side][figure] for pair in paired) / len(paired), 2)
                        for figure in figures} for side in ("on", "off")}
        summary.append(_compared(database, "mean", means["on"], means["off"]))
    return summary


# ----- part 2: recovery -------------------------------------------------------------------------------

class Workers:
    """The recovery worker processes (this script with ``--worker``): JSON commands on stdin, JSON lines
    on stdout."""

    def __init__(self, url, token_file, count, workers, page):
        self.processes, self.lines, self.lock = [], [], threading.Lock()
        for first, size in split(count, workers):
            command = [sys.executable, os.path.abspath(__file__), "--worker", url, token_file, str(first),
                       str(size), str(page)]
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       cwd=REPO, start_new_session=True)
            self.processes.append(process)
            threading.Thread(target=self._read, args=(len(self.processes) - 1, process), daemon=True).start()

    def _read(self, index, process):
        for line in process.stdout:
            message = json.loads(line)
            if message["type"] == "progress":
                print("  recovery worker {}: {}".format(index, message), file=sys.stderr, flush=True)
            with self.lock:
                self.lines.append((index, message))

    def ask(self, command, answer, timeout, node=None):
        """Send ``command`` (a dict) to every worker; their ``answer`` messages, in worker order (a
        RuntimeError when a worker exits, ``node`` stops or ``timeout`` passes first)."""
        with self.lock:
            self.lines = [(index, message) for index, message in self.lines if message["type"] != answer]
        for process in self.processes:
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = {index: message for index, message in self.lines if message["type"] == answer}
            if len(found) == len(self.processes):
                return [found[index] for index in range(len(self.processes))]
            dead = [process.returncode for process in self.processes if process.poll() is not None]
            if node is not None and node.process.poll() is not None:
                raise RuntimeError("the node exited ({}) while waiting for {}:\n{}".format(
                    node.process.returncode, answer, node.node.log_tail()))
            if dead or time.monotonic() > deadline:
                raise RuntimeError("workers: no {} answer ({} of {}; exited: {})".format(
                    answer, len(found), len(self.processes), dead))
            time.sleep(0.05)

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def publish_all(session, count, rate):
    """Publish ``count`` events at ``rate``/s on the application ``session``; fire when all are sent."""
    from twisted.internet import defer, reactor, task
    done = []
    for seq in range(count):
        done.append(task.deferLater(reactor, seq / rate, session.publish, TOPIC,
                                    {"seq": seq, "ts": time.time() * 1000.0}))
    return defer.gatherResults(done)


def stored_after(url, ticket, after, wanted, timeout=60.0):
    """The positions of the stored events after ``after`` (read with hub.history once ``wanted`` are)."""
    from twisted.internet import defer, task, reactor

    @defer.inlineCallbacks
    def read():
        client = user_client(url, ticket)
        session = yield client.connect()
        deadline = time.monotonic() + timeout
        try:
            while True:
                page = yield session.call(HISTORY, TOPIC, after_publication=after, limit=1000)
                positions = [event["publication"] for event in page["events"]]
                if len(positions) >= wanted or time.monotonic() > deadline:
                    return positions
                yield task.deferLater(reactor, 0.1, lambda: None)
        finally:
            yield client.close()
    return in_reactor(read)


def recovery(args, token_file, checker_ticket):
    """Part 2: the figures of one restart with ``args.recover`` sessions each missing ``args.missed``."""
    node = Node("history-recovery", True)
    workers = None
    try:
        node.start()
        node.add_app()
        session, protocol = node.join_app()
        workers = Workers(node.node.url, token_file, args.recover, args.workers, args.page)
        started = time.monotonic()
        joined = workers.ask({"cmd": "join"}, "joined", 300, node)
        join_s = round(time.monotonic() - started, 1)
        failed = sum(answer["failed"] for answer in joined)
        if failed:
            raise RuntimeError("{} sessions did not join: {}".format(failed, joined))
        in_reactor(publish_all, session, WARMUP_EVENTS, 50.0)
        deadline = time.monotonic() + 60
        while True:
            seen = workers.ask({"cmd": "positions"}, "positions", 60)
            counts = [count for answer in seen for count in answer["seen"]]
            if min(counts) >= WARMUP_EVENTS or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        lasts = [last for answer in seen for last in answer["last"]]
        workers.ask({"cmd": "leave"}, "left", 120)
        in_reactor(publish_all, session, args.missed, 100.0)
        after = max(lasts)
        expected = stored_after(node.node.url, checker_ticket, after, args.missed)
        in_reactor(lambda: protocol.transport.loseConnection())
        stop_started = time.monotonic()
        node.stop()
        stop_s = time.monotonic() - stop_started
        start_s = node.start()
        ready_ms = time.time() * 1000.0
        processes = node.processes()
        clients = {str(process.pid): psutil.Process(process.pid) for process in workers.processes}
        cpu0, clients0 = _cpu(processes), _cpu(clients)
        answers = workers.ask({"cmd": "recover", "t0": ready_ms}, "recovered", RECOVERY_TIMEOUT, node)
        cpu1, clients1 = _cpu(processes), _cpu(clients)
        sessions = [entry for answer in answers for entry in answer["sessions"]]
        done_ms = [entry["done_ms"] - ready_ms for entry in sessions if entry["done_ms"] is not None]
        joined_ms = [entry["joined_ms"] - ready_ms for entry in sessions if entry["joined_ms"] is not None]
        check = recovery_check(expected, [entry["positions"] for entry in sessions])
        errors = [entry["error"] for entry in sessions if entry["error"]]
        wall_s = max(done_ms) / 1000.0 if done_ms else None
        return {
            "sessions": args.recover, "workers": args.workers, "missed": args.missed, "page": args.page,
            "expected_positions": len(expected), "same_last_before": len(set(lasts)) == 1,
            "join_s": join_s, "node_stop_s": round(stop_s, 2), "node_start_s": round(start_s, 2),
            "all_recovered_s": round(wall_s, 2) if wall_s is not None else None,
            "recovered_p50_s": round(report.percentile(done_ms, 0.5) / 1000.0, 2) if done_ms else None,
            "recovered_p99_s": round(report.percentile(done_ms, 0.99) / 1000.0, 2) if done_ms else None,
            "all_joined_s": round(max(joined_ms) / 1000.0, 2) if joined_ms else None,
            "history_calls": sum(entry["calls"] for entry in sessions),
            "retries": sum(entry["retries"] for entry in sessions),
            "live_events": sum(entry["live"] for entry in sessions),
            "router_cpu_s": round(router_seconds(cpu1) - router_seconds(cpu0), 2),
            "clients_cpu_s": round(sum(clients1.values()) - sum(clients0.values()), 2),
            "errors": len(errors), "first_errors": errors[:3], "check": check,
            "load_avg": [round(value, 2) for value in os.getloadavg()],
        }
    finally:
        if workers is not None:
            workers.stop()
        node.remove()


RECOVERY_HEADER = ["| sessions (workers) | missed each | page limit | node restart s (stop + start) | "
                   "all recovered s after ready | p50 / p99 s | all joined s | complete | missing | "
                   "duplicated | out of order | router CPU s | clients CPU s | load |",
                   "| ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
                   "| ---: | ---: |"]


def recovery_row(run):
    check = run["check"]
    return ("| {sessions} ({workers}) | {missed} | {page} | {node_stop_s} + {node_start_s} | "
            "{all_recovered_s} | {recovered_p50_s} / {recovered_p99_s} | {all_joined_s} | "
            "{complete}/{total} | {missing} | {duplicated} | {out_of_order} | {router_cpu_s} | "
            "{clients_cpu_s} | {load} |").format(
                complete=check["complete"], total=check["sessions"], missing=check["missing"],
                duplicated=check["duplicated"], out_of_order=check["out_of_order"], load=run["load_avg"][0],
                **run)


# ----- the recovery worker (``--worker``) --------------------------------------------------------------

def worker(url, token_file, first, size, page):
    """Hold sessions ``first .. first + size`` of the token file; answer commands on stdin (one JSON
    line each) with JSON lines on stdout (see :class:`Workers`)."""
    from autobahn.wamp.exception import ApplicationError
    from twisted.internet import defer, reactor, stdio, task
    from twisted.protocols.basic import LineReceiver

    with open(token_file) as handle:
        tickets = handle.read().split()[first:first + size]
    state = {"clients": [None] * size, "last": [0] * size, "seen": [0] * size}

    def say(message):
        # through the stdio transport: it owns the (non-blocking) stdout and buffers what the pipe refuses
        commands.transport.write(json.dumps(message).encode("utf-8") + b"\n")

    def follower(index):
        def on_event(message, *args, **kwargs):
            state["seen"][index] += 1
            state["last"][index] = max(state["last"][index], message["publication"] or 0)
        return on_event

    @defer.inlineCallbacks
    def join_one(index):
        client = user_client(url, tickets[index])
        state["clients"][index] = client
        session = yield client.connect()
        yield session.subscribe(follower(index), FEED)

    @defer.inlineCallbacks
    def join():
        results = yield defer.DeferredList([join_one(index) for index in range(size)], consumeErrors=True)
        errors = [str(result.value) for ok, result in results if not ok]
        say({"type": "joined", "failed": len(errors), "errors": errors[:3]})

    @defer.inlineCallbacks
    def leave():
        yield defer.gatherResults([client.close() for client in state["clients"] if client is not None])
        say({"type": "left"})

    @defer.inlineCallbacks
    def recover_one(index, entry):
        """hub.js's resume: subscribe the feed, then read the history after the last position page by
        page; live events arriving meanwhile are kept apart (none are published during the recovery)."""
        try:
            client = user_client(url, tickets[index], reconnect=True)
            state["clients"][index] = client
            session = yield client.connect()
            entry["joined_ms"] = time.time() * 1000.0

            def live(message, *args, **kwargs):
                entry["live"] += 1
            yield session.subscribe(live, FEED)
            after = state["last"][index]
            while True:
                try:
                    answer = yield session.call(HISTORY, TOPIC, after_publication=after, limit=page)
                except ApplicationError as error:
                    if error.error != "wamp.error.no_such_procedure" or entry["retries"] >= 200:
                        raise
                    entry["retries"] += 1
                    yield task.deferLater(reactor, 0.05, lambda: None)
                    continue
                entry["calls"] += 1
                entry["positions"].extend(event["publication"] for event in answer["events"])
                if answer["events"]:
                    after = answer["events"][-1]["publication"]
                if not answer["more"]:
                    break
            entry["done_ms"] = time.time() * 1000.0
        except Exception as error:
            entry["error"] = "{}: {}".format(type(error).__name__, error)

    @defer.inlineCallbacks
    def recover():
        entries = [{"positions": [], "done_ms": None, "joined_ms": None, "calls": 0, "retries": 0, "live": 0,
                    "error": None} for _ in range(size)]
        progress = task.LoopingCall(lambda: say({
            "type": "progress", "joined": sum(entry["joined_ms"] is not None for entry in entries),
            "done": sum(entry["done_ms"] is not None for entry in entries),
            "errors": sum(entry["error"] is not None for entry in entries)}))
        progress.start(2.0, now=False)
        all_done = defer.DeferredList([recover_one(index, entry) for index, entry in enumerate(entries)])
        # a session still connecting or reading at the deadline is reported as not done
        all_done.addTimeout(RECOVERY_TIMEOUT - 30, reactor, onTimeoutCancel=lambda *_: None)
        yield all_done
        progress.stop()
        say({"type": "recovered", "sessions": entries})

    def positions():
        say({"type": "positions", "last": state["last"], "seen": state["seen"]})

    class Commands(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line):
            command = json.loads(line)["cmd"]
            if command == "join":
                join()
            elif command == "positions":
                positions()
            elif command == "leave":
                leave()
            elif command == "recover":
                recover()

        def connectionLost(self, reason):
            if reactor.running:
                reactor.stop()

    commands = Commands()
    stdio.StandardIO(commands)
    reactor.run()


# ----- the report -------------------------------------------------------------------------------------

def write_report(meta, runs, summary, recovered, output):
    lines = ["# Stored event history: on vs off, recovery after a restart ({})".format(meta["date"]), "",
             "{cpus} CPUs, {machine}, Python {python}; load average at start {start}, at end {end} (the "
             "machine is shared with other engineers' runs). One dev node (one router worker, every "
             "component).".format(
                 start=", ".join("{:.2f}".format(v) for v in meta["load_avg_start"]),
                 end=", ".join("{:.2f}".format(v) for v in meta["load_avg_end"]), **meta), ""]
    if runs:
        lines += [
            "## History on vs off", "",
            "The application publishes {rate:g} events/s over WAMP to `{topic}` for {seconds} s per run; the "
            "two nodes (history on: `HISTORY_TOPICS` default; off: `HISTORY_TOPICS=,`) run side by side and "
            "are measured in turn, the order alternating per round. With the history on the subscribers take "
            "`{feed}` (as hub.js does), off the topic itself. `p50/p99/max ms`: publish -> receipt from the "
            "publisher's `ts` at the {probes} probe sessions (Python, this process). Native clients "
            "(bench/fanout/client.cc): deliveries, and latency from the first argument's top-level `ts`: the "
            "publisher's with the history off, the recorder's stamp with it on (stamp - publish p50 at the "
            "probes: {hop}). `router CPU %`: the router worker process over the window; `router ms/event` "
            "and `µs/delivery`: its CPU from the window's start until the clients report ({grace} s after "
            "its end, so late deliveries count too), less its idle rate (measured for {idle:g} s before the "
            "window with every subscriber connected: the clock, counter and other components), per event "
            "published in the window and per delivery made (native in time + native late + probes).".format(
                idle=IDLE_SECONDS, grace=GRACE_MS / 1000.0,
                topic=TOPIC, feed=FEED, hop=", ".join("{} ms".format(run["stamp_hop_p50_ms"]) for run in runs
                                                      if run["history"] == "on"), **meta), "",
        ] + ONOFF_HEADER + [onoff_row(run) for run in runs]
        lines += ["", "| database | round | router CPU % on/off (window) | router µs per delivery on/off | "
                  "router ms/event on | off | extra ms/event |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += ["| {database} | {round} | {router_cpu_ratio} | {per_delivery_ratio} | {on_ms_per_event} | "
                  "{off_ms_per_event} | {extra_ms_per_event} |".format(**item) for item in summary]
        lines.append("")
    if recovered:
        lines += [
            "## Recovery after a router restart", "",
            "{sessions} sessions (Python HubClient sessions of distinct users in {workers} worker processes, "
            "WAMP-ticket JWT) follow `{feed}` and see {warmup} events, then disconnect; the application "
            "publishes {missed} events (stored); the node is stopped (SIGTERM) and started on the same "
            "directory and SQLite database. From `/health/ready` every session connects at once, "
            "subscribes the feed and reads "
            "`hub.history(topic, after_publication=<last seen>, limit={page})` until `more` is false "
            "(`wamp.error.no_such_procedure` retried every 50 ms while the component is not registered: "
            "{retries} retries). Times from ready; `complete`: sessions whose positions are exactly the "
            "{missed} missed, in order, once; {errors} session errors.".format(
                feed=FEED, warmup=WARMUP_EVENTS, **recovered), "",
        ] + RECOVERY_HEADER + [recovery_row(recovered)]
        if recovered["first_errors"]:
            lines += ["", "First errors: " + "; ".join(recovered["first_errors"])]
        lines.append("")
    report.save(output, "\n".join(lines), {"meta": meta, "runs": runs, "summary": summary,
                                           "recovery": recovered})


def parser():
    command = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    command.add_argument("--parts", default="onoff,recovery")
    command.add_argument("--count", type=int, default=1000,
                         help="subscribers per on/off run (natives + probes)")
    command.add_argument("--probes", type=int, default=10)
    command.add_argument("--rate", type=float, default=20.0)
    command.add_argument("--seconds", type=int, default=30)
    command.add_argument("--rounds", type=int, default=2)
    command.add_argument("--databases", default="sqlite")
    command.add_argument("--recover", type=int, default=1000, help="sessions of the recovery")
    command.add_argument("--missed", type=int, default=100)
    command.add_argument("--page", type=int, default=100)
    command.add_argument("--workers", type=int, default=4)
    command.add_argument("--output", default="history")
    command.add_argument("--render", action="store_true", help="only rewrite <output>.md from <output>.json")
    command.add_argument("--worker", nargs=5, metavar=("URL", "TOKENS", "FIRST", "SIZE", "PAGE"),
                         help=argparse.SUPPRESS)
    return command


def main(argv=None):
    args = parser().parse_args(argv)
    if args.worker:
        url, token_file, first, size, page = args.worker
        raise_open_files()
        worker(url, token_file, int(first), int(size), int(page))
        return 0
    if args.render:
        with open(os.path.join(report.RESULTS, args.output + ".json")) as handle:
            saved = json.load(handle)
        write_report(saved["meta"], saved["runs"], on_off_summary(saved["runs"]), saved["recovery"],
                     args.output)
        return 0
    if needs_build():
        setup(ws=False, build=True)
    raise_open_files()
    parts = args.parts.split(",")
    scratch = os.path.join(report.RESULTS, "history.tmp")
    os.makedirs(scratch, exist_ok=True)
    users = max(args.count, args.recover) + 1
    token_file = _tokens(users, scratch)
    with open(token_file) as handle:
        tickets = handle.read().split()
    started_load = os.getloadavg()
    runs, summary, recovered = [], [], None
    try:
        if "onoff" in parts:
            print("\n".join(ONOFF_HEADER), flush=True)
            natives = args.count - args.probes
            native_file = os.path.join(scratch, "natives.txt")
            with open(native_file, "w") as handle:
                handle.write("\n".join(tickets[:natives]) + "\n")
            runs = on_off(args, native_file, tickets[natives:args.count])
            summary = on_off_summary(runs)
            for item in summary:
                print(item, flush=True)
        if "recovery" in parts:
            recovery_file = os.path.join(scratch, "recovery.txt")
            with open(recovery_file, "w") as handle:
                handle.write("\n".join(tickets[:args.recover]) + "\n")
            recovered = recovery(args, recovery_file, tickets[-1])
            print("\n".join(RECOVERY_HEADER + [recovery_row(recovered)]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_start": started_load,
            "load_avg_end": os.getloadavg(), "rate": args.rate, "seconds": args.seconds,
            "probes": args.probes,
            "count": args.count, "rounds": args.rounds, "databases": args.databases}
    write_report(meta, runs, summary, recovered, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
