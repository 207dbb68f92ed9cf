"""
Serial reader throughput and latency through a real router: a pty plays the
Arduino, the hub's serial reader reads it, a WAMP subscriber (user role, JSON
over WebSocket) counts the ``iot.serial.reader`` events.

- slow: one line every 10 ms; time from the line written to the pty until
  the event at the subscriber (both timestamps from this process's clock);
- paced: lines at the target rate (2,000/s) for a few seconds: are all of them
  delivered, and how late;
- flood: lines written as fast as the pty takes them: lines/s sustained end
  to end (first line written -> last event received).

Every line is a new, larger value (dead band 0). The reader conflates the
lines of one read into one event (the newest), so under load there are fewer
events than lines; a line counts as delivered when an event with its value or
a newer one has arrived, and its latency is the time until then.

History: each of ``--rounds`` rounds runs the set on a node with
``HISTORY=off`` and on one with ``HISTORY=on`` (alternating which goes
first); the medians of lines/s, p99 and the hub's CPU time per event, on vs
off, are the cost of history. Every published state is checked to be
stored; then ``iot.history`` round trips with ``--stored`` (10,000) states of
one source in the client database.
``--chart`` also runs ``bench/iot_chart.py``'s ``measure()`` (page load to a
drawn chart) when that module exists.

    python bench/iot.py [--latency 1000] [--rate 2000] [--seconds 5] [--flood 20000] [--repeat 3]
                        [--rounds 2] [--high-rate 8000] [--stored 10000] [--calls 300] [--chart]

Prints a table and writes bench/results/iot.{json,md,png}.
"""

import argparse
import json
import os
import platform
import sys
import time

from twisted.internet import defer, task, threads

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from tests.support.clients import connect  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402
from tests.support.polling import eventually  # noqa: E402
from tests.support.serialpty import FakeArduino  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TARGET = 2000


class _Owner:
    """Stands in for a TestCase where tests.support.clients.connect wants one."""

    def addCleanup(self, fn, *args):
        pass


class Receiver:
    """Arrival time of each event's value (values only grow)."""

    def __init__(self):
        self.arrived = {}
        self.newest = 0

    def __call__(self, state):
        self.arrived[state["value"]] = time.time()
        self.newest = max(self.newest, state["value"])

    def seen_at(self, values):
        """For each value: when the first event with it or a larger value arrived (None if none did)."""
        times = {}
        pending = sorted(values)
        arrivals = sorted(self.arrived.items())
        index = 0
        for value in pending:
            while index < len(arrivals) and arrivals[index][0] < value:
                index += 1
            times[value] = arrivals[index][1] if index < len(arrivals) else None
        # an event for a larger value may have arrived before one for a smaller value
        earliest = None
        for value in reversed(pending):
            if times[value] is not None:
                earliest = times[value] if earliest is None else min(earliest, times[value])
            times[value] = earliest
        return times

    def events_for(self, values):
        low, high = min(values), max(values)
        return sum(1 for value in self.arrived if low <= value <= high)


def write_paced(arduino, values, rate, written):
    """In a thread: write one line per value at ``rate`` lines/s (0: as fast as possible)."""
    start = time.perf_counter()
    for index, value in enumerate(values):
        if rate:
            due = start + index / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        written[value] = time.time()
        arduino.write(b"%d\r\n" % value)


def write_flood(arduino, values, written):
    """In a thread: write all lines in 4 KiB blocks as fast as the pty takes them."""
    written["first"] = time.time()
    block = []
    for value in values:
        block.append(b"%d\r\n" % value)
        if len(block) == 512:
            arduino.write(b"".join(block))
            block = []
    arduino.write(b"".join(block))
    written["last"] = time.time()


@defer.inlineCallbacks
def run(values, receiver, writer, *args, timeout=60):
    written = {}
    yield threads.deferToThread(writer, *args, written)
    yield eventually(lambda: receiver.newest >= values[-1], timeout=timeout,
                     message="last line not delivered")
    return written


class LagMonitor:
    """How late this process's reactor runs a 5 ms timer: stalls here inflate the measured latencies."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.worst = 0.0
        self.loop = task.LoopingCall(self.tick)
        self.loop.clock = reactor
        self.last = None

    def tick(self):
        now = time.monotonic()
        if self.last is not None:
            self.worst = max(self.worst, (now - self.last - 0.005) * 1000)
        self.last = now

    def start(self):
        self.loop.start(0.005)

    def take(self):
        worst, self.worst, self.last = self.worst, 0.0, None
        return round(worst, 1)


HISTORY_SOURCE = "iot.device.bench-history"
_TICK = os.sysconf("SC_CLK_TCK")


def node_cpu_seconds(node):
    """User + system CPU seconds of every process of ``node`` (its session: controller and workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/{}/stat".format(entry)) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state ppid pgrp session ... utime(12) stime(13)
        if int(fields[3]) == node.process.pid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


@defer.inlineCallbacks
def serial_runs(reactor, options, arduino, next_value, history):
    """
    The paced and flood runs on a fresh node with ``HISTORY`` on or off; fire with ``(runs, extra)``.
    ``next_value`` (a one-item list) carries the next line value across nodes: values only grow.
    """
    env = {"SERIAL_URL": arduino.path, "SERIAL_DEADBAND": "0", "HISTORY": "on" if history else "off",
           # keep every state of the run, to check that none was lost
           "HISTORY_MAX_STATES": "10000000"}
    node = RouterNode(name="bench-iot-history-{}".format("on" if history else "off"), env=env)
    client = None
    runs, extra = {}, {}
    try:
        yield node.start()
        yield eventually(lambda: "serial device open" in node.log_text(),
                         message="reader did not open the pty")
        client = yield connect(_Owner(), node, sub="bench", role="user")
        receiver = Receiver()
        yield client.session.subscribe(receiver, "iot.serial.reader")

        def take(count):
            values = list(range(next_value[0], next_value[0] + count))
            next_value[0] += count
            return values

        values = take(200)
        yield run(values, receiver, write_paced, arduino, values, 0)  # warm-up
        lag = LagMonitor(reactor)
        lag.start()
        load = []

        for name, count, rate in (("paced, 100 lines/s", options.latency, 100),
                                  ("paced, {} lines/s".format(options.rate), options.rate * options.seconds,
                                   options.rate),
                                  ("paced, {} lines/s".format(options.high_rate),
                                   options.high_rate * options.seconds, options.high_rate)):
            values = take(count)
            lag.take()
            cpu = node_cpu_seconds(node)
            written = yield run(values, receiver, write_paced, arduino, values, rate)
            cpu = node_cpu_seconds(node) - cpu
            load.append(os.getloadavg()[0])
            seen = receiver.seen_at(values)
            samples = [(seen[v] - written[v]) * 1000 for v in values if seen[v] is not None]
            span = max(seen[v] for v in values if seen[v] is not None) - written[values[0]]
            runs[name] = dict(report.latency_summary(samples, digits=3), delivered=len(samples), sent=len(values),
                              subscriber_max_lag_ms=lag.take(), load=round(load[-1], 2),
                              events=receiver.events_for(values),
                              lines_per_s=round(len(values) / span, 1), hub_cpu_s=round(cpu, 2),
                              samples=[round(s, 3) for s in samples])

        for name, writer in (("one line per write, unpaced", write_paced),
                             ("flood (as fast as the pty takes them)", write_flood)):
            floods = []
            for repeat in range(options.repeat):
                values = take(options.flood)
                args = (arduino, values, 0) if writer is write_paced else (arduino, values)
                cpu = node_cpu_seconds(node)
                written = yield run(values, receiver, writer, *args)
                cpu = node_cpu_seconds(node) - cpu
                first = written["first"] if "first" in written else written[values[0]]
                last = written["last"] if "last" in written else written[values[-1]]
                span = receiver.arrived[max(receiver.arrived)] - first
                floods.append({"sent": len(values), "delivered": len(values),
                               "events": receiver.events_for(values),
                               "lines_per_s": round(len(values) / span, 1),
                               "write_s": round(last - first, 3), "end_to_end_s": round(span, 3),
                               "hub_cpu_s": round(cpu, 2),
                               "subscriber_max_lag_ms": lag.take(), "load": round(os.getloadavg()[0], 2)})
            median = sorted(floods, key=lambda item: item["lines_per_s"])[len(floods) // 2]
            runs["{}, median of {}".format(name, len(floods))] = dict(
                median, all_lines_per_s=[item["lines_per_s"] for item in floods],
                all_events=[item["events"] for item in floods])
        lag.loop.stop()
        extra["events_published"] = len(receiver.arrived)
        if history:
            extra["stored"] = yield stored_count(client, len(receiver.arrived))
            extra["history_rpc"] = yield history_latency(client, node, options)
    finally:
        if client is not None:
            yield client.close()
        yield node.stop()
        node.cleanup()
    return runs, extra


@defer.inlineCallbacks
def stored_count(client, published, timeout=30):
    """Page through the serial source's history until it holds every published state (or ``timeout``)."""
    from twisted.internet import reactor
    deadline = reactor.seconds() + timeout
    while True:
        count, after = 0, None
        while True:
            page = yield client.session.call("iot.history", "iot.serial.reader", after_seq=after, limit=1000)
            count += len(page["states"])
            if not page["more"]:
                break
            after = page["states"][-1]["seq"]
        if count >= published or reactor.seconds() > deadline:
            return count
        yield task.deferLater(reactor, 0.2, lambda: None)


@defer.inlineCallbacks
def history_latency(client, node, options):
    """``iot.history`` round trips with 10,000 states of one source stored in the node's client database."""
    from components.db.database import Database
    from components.iot.history import HistoryStore
    db = Database("sqlite:///" + os.path.join(node.directory, "client.db"))
    try:
        store = HistoryStore(db)
        now = int(time.time() * 1000)
        states = [(HISTORY_SOURCE, {"value": index, "seq": now - options.stored + index,
                                    "ts": now - (options.stored - index) * 100, "device": "bench-history"})
                  for index in range(options.stored)]
        for start in range(0, len(states), 1000):
            yield store.insert(states[start:start + 1000])
    finally:
        db.close()
    seqs = [state["seq"] for _, state in states]
    shapes = {"limit=500 after a random seq":
              lambda i: {"after_seq": seqs[(i * 7919) % len(seqs)], "limit": 500},
              "limit=1000, minutes=10 (the chart's first page)": lambda i: {"minutes": 10, "limit": 1000},
              "limit=10 after the newest but 10 (a reconnect)":
              lambda i: {"after_seq": seqs[-11], "limit": 10}}
    result = {"stored_states": options.stored}
    for name, shape in shapes.items():
        samples = []
        for index in range(options.calls):
            started = time.perf_counter()
            page = yield client.session.call("iot.history", HISTORY_SOURCE, **shape(index))
            samples.append((time.perf_counter() - started) * 1000)
        result[name] = dict(report.latency_summary(samples, digits=3), states_in_last_answer=len(page["states"]))
    started = time.perf_counter()
    count, after = 0, None
    while True:
        page = yield client.session.call("iot.history", HISTORY_SOURCE, after_seq=after, limit=1000)
        count += len(page["states"])
        if not page["more"]:
            break
        after = page["states"][-1]["seq"]
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    result["all {} states in pages of 1000".format(count)] = {"ms": elapsed}
    return result


@defer.inlineCallbacks
def writer_cost(reactor, count):
    """
    CPU time (all threads of this process) per state of the history writer alone: ``count`` states of one
    source recorded and written to a fresh SQLite file, the way a hub worker does it. Compared with the
    hub's CPU per published event it is the share of the rate history can cost, free of the machine's noise.
    """
    import tempfile

    from components.db.database import Database
    from components.iot.history import HistoryStore
    from components.iot.history_writer import HistoryWriter
    directory = tempfile.mkdtemp(prefix="bench-history-")
    db = Database("sqlite:///" + os.path.join(directory, "client.db"))
    try:
        store = HistoryStore(db)
        yield store.insert([])  # the schema, outside the measurement
        writer = HistoryWriter(store, reactor)
        now = int(time.time() * 1000)
        states = [{"value": index, "seq": now + index, "ts": now + index, "stale": False}
                  for index in range(count)]
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, count, 100):
            for state in states[start:start + 100]:
                writer.record("iot.serial.reader", state)
            yield task.deferLater(reactor, 0, lambda: None)  # let the writer's timer and thread run
        yield writer.drain()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        stored = yield store.page("iot.serial.reader", None, 1, None)
    finally:
        db.close()
    return {"states": count, "written": writer.written, "dropped": writer.dropped,
            "cpu_us_per_state": round(cpu * 1e6 / count, 2), "wall_s": round(wall, 3),
            "first_stored_seq_ok": bool(stored["states"]) and stored["states"][0]["seq"] == now}


@defer.inlineCallbacks
def chart_figures(options):
    """The hook for ``bench/iot_chart.py`` (page load -> drawn chart): its ``measure()``, when it exists."""
    try:
        from bench import iot_chart
    except ImportError:
        return {"skipped": "bench/iot_chart.py not present"}
    figures = yield defer.maybeDeferred(iot_chart.measure)
    return figures


def ratio(on, off):
    return round(on / off, 3) if off else None


def _median(values):
    values = sorted(value for value in values if value is not None)
    return values[len(values) // 2] if values else None


def _cpu_per_event(run_):
    return round(run_["hub_cpu_s"] * 1e6 / max(run_["events"], 1), 1) if "hub_cpu_s" in run_ else None


def history_cost(rounds):
    """Per run kind, the medians over ``rounds`` (``[(on_runs, off_runs)]``) with history on and off."""
    cost = {}
    for name in rounds[0][0]:
        entry = {}
        for side, index in (("on", 0), ("off", 1)):
            runs = [round_[index][name] for round_ in rounds]
            entry[side] = {"lines_per_s": _median(run_["lines_per_s"] for run_ in runs),
                           "events": _median(run_["events"] for run_ in runs),
                           "p99_ms": _median(run_.get("p99_ms") for run_ in runs),
                           "hub_cpu_us_per_event": _median(_cpu_per_event(run_) for run_ in runs)}
        entry["lines_per_s_on_over_off"] = ratio(entry["on"]["lines_per_s"], entry["off"]["lines_per_s"])
        entry["cpu_per_event_on_over_off"] = ratio(entry["on"]["hub_cpu_us_per_event"],
                                                   entry["off"]["hub_cpu_us_per_event"])
        cost[name] = entry
    return cost


@defer.inlineCallbacks
def main(reactor, options):
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()}, "target_lines_per_s": TARGET, "runs": {},
               "rounds": options.rounds}
    arduino = FakeArduino()
    next_value = [1]
    rounds, published, stored = [], 0, 0
    try:
        for index in range(options.rounds):
            # alternate which goes first, so a machine that gets busier or quieter favours neither
            order = (False, True) if index % 2 == 0 else (True, False)
            outcome = {}
            for history in order:
                outcome[history] = yield serial_runs(reactor, options, arduino, next_value, history=history)
            (on_runs, on_extra), (off_runs, _) = outcome[True], outcome[False]
            rounds.append((on_runs, off_runs))
            published += on_extra["events_published"]
            stored += on_extra["stored"]
            results["history_rpc"] = on_extra["history_rpc"]
            for name, run_ in on_runs.items():
                results["runs"]["round {}: {}, history on".format(index + 1, name)] = run_
            for name, run_ in off_runs.items():
                results["runs"]["round {}: {}, history off".format(index + 1, name)] = run_
    finally:
        arduino.close()
    results["history_cost"] = history_cost(rounds)
    results["writer_cost"] = yield writer_cost(reactor, options.writer_states)
    results["history_states"] = {"published_with_history_on": published, "stored": stored}
    if options.chart:
        results["chart"] = yield chart_figures(options)
    write(results)


def write(results):
    os.makedirs(RESULTS, exist_ok=True)
    lines = ["# IoT: serial lines -> WAMP subscriber, with and without history", "",
             "A pty plays the Arduino; the hub's serial reader (reader thread) publishes the newest line of "
             "each read (dead band 0) through the router to one subscriber. Target {} lines/s. "
             "Python {}, {} CPUs. Each round runs the set on a fresh node with HISTORY=off and on one with "
             "HISTORY=on (every published state written to the client database, SQLite); hub CPU: user + "
             "system CPU of the node's processes during the run.".format(
                 results["target_lines_per_s"], results["machine"]["python"], results["machine"]["cpus"]),
             "Subscriber stall: the worst delay of a 5 ms timer in the measuring process during the run; "
             "load avg: the machine's 1-minute load average after it (the machine is shared).", "",
             "| run | lines sent | lines delivered | events | lines/s end to end | p50 ms | p99 ms | max ms "
             "| subscriber stall ms | load avg |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, run_ in results["runs"].items():
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            name, run_["sent"], run_["delivered"], run_["events"], run_["lines_per_s"],
            run_.get("p50_ms", "-"), run_.get("p99_ms", "-"), run_.get("max_ms", "-"),
            run_["subscriber_max_lag_ms"], run_["load"]))
    cost = results.get("history_cost")
    if cost:
        lines += ["", "## History on vs off (medians over {} rounds, each on fresh nodes)".format(
                      results["rounds"]), "",
                  "| run | lines/s on | lines/s off | on/off | events on | events off | p99 ms on "
                  "| p99 ms off | hub CPU us/event on | off | on/off |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, entry in cost.items():
            on, off = entry["on"], entry["off"]
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                name, on["lines_per_s"], off["lines_per_s"], entry["lines_per_s_on_over_off"], on["events"],
                off["events"], on["p99_ms"] if on["p99_ms"] is not None else "-",
                off["p99_ms"] if off["p99_ms"] is not None else "-", on["hub_cpu_us_per_event"],
                off["hub_cpu_us_per_event"], entry["cpu_per_event_on_over_off"]))
        writer = results["writer_cost"]
        per_event = [entry["off"]["hub_cpu_us_per_event"] for name, entry in cost.items()
                     if name.startswith("paced") and entry["off"]["hub_cpu_us_per_event"]]
        lines += ["", "The writer alone (in this process, {states} states recorded and written to SQLite): "
                  "**{cpu_us_per_state} us CPU per state**, {wall_s} s, {written} written, "
                  "{dropped} dropped; "
                  "against the hub's {hub} us CPU per event with history off (paced runs, median) that is "
                  "**{share}** of the rate.".format(
                      hub=_median(per_event), share="{:.1%}".format(
                          writer["cpu_us_per_state"] / _median(per_event)) if per_event else "-", **writer)]
        states = results["history_states"]
        lines += ["", "{} states published with history on, {} of them found in iot.history.".format(
            states["published_with_history_on"], states["stored"])]
    rpc = results.get("history_rpc")
    if rpc:
        lines += ["", "## iot.history with {} states stored for one source".format(rpc["stored_states"]), "",
                  "| call | calls | states per answer | p50 ms | p99 ms | mean ms | max ms |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, item in rpc.items():
            if isinstance(item, dict) and "p50_ms" in item:
                lines.append("| {} | {n} | {states_in_last_answer} | {p50_ms} | {p99_ms} | {mean_ms} "
                             "| {max_ms} |".format(name, **item))
        for name, item in rpc.items():
            if isinstance(item, dict) and "ms" in item:
                lines.append("")
                lines.append("Reading {}: {} ms.".format(name, item["ms"]))
    if "chart" in results:
        lines += ["", "Chart (bench/iot_chart.py): {}".format(json.dumps(results["chart"]))]
    report.save("iot", "\n".join(lines) + "\n", results)
    plot(results)


def plot(results):
    report.latency_plot(results["runs"], "line written -> event at subscriber (ms)", "fraction of lines",
                        "Serial reader latency through the router", "iot.png")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--latency", type=int, default=1000, help="lines in the 100 lines/s run")
    parser.add_argument("--rate", type=int, default=TARGET, help="lines/s of the paced run")
    parser.add_argument("--seconds", type=int, default=5, help="length of the paced runs")
    parser.add_argument("--high-rate", type=int, default=8000, help="lines/s of the second paced run")
    parser.add_argument("--flood", type=int, default=20000, help="lines in each flood run")
    parser.add_argument("--repeat", type=int, default=3, help="flood runs per node (the median counts)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of one node with history off and one with history on")
    parser.add_argument("--stored", type=int, default=10000, help="states stored for the iot.history timing")
    parser.add_argument("--calls", type=int, default=300, help="iot.history calls per shape")
    parser.add_argument("--writer-states", type=int, default=50000,
                        help="states for the writer's CPU cost alone")
    parser.add_argument("--chart", action="store_true",
                        help="also run bench/iot_chart.py's measure() (page load -> drawn chart), if present")
    return parser.parse_args(argv)


if __name__ == "__main__":
    task.react(main, [parse(sys.argv[1:])])
