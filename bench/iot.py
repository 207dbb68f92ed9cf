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

    python bench/iot.py [--latency 1000] [--rate 2000] [--seconds 5] [--flood 20000]

Prints a table and writes bench/results/iot.{json,md,png}.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

from twisted.internet import defer, task, threads

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from tests.support.clients import connect, eventually  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402
from tests.support.serialpty import FakeArduino  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TARGET = 2000


class _Owner:
    """Stands in for a TestCase where tests.support.clients.connect wants one."""

    def addCleanup(self, fn, *args):
        pass


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))]


def latency_summary(samples):
    return {"n": len(samples), "p50_ms": round(percentile(samples, 0.5), 3),
            "p99_ms": round(percentile(samples, 0.99), 3), "mean_ms": round(statistics.mean(samples), 3),
            "max_ms": round(max(samples), 3)}


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


@defer.inlineCallbacks
def main(reactor, options):
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()}, "target_lines_per_s": TARGET, "runs": {}}
    arduino = FakeArduino()
    node = RouterNode(name="bench-iot", env={"SERIAL_URL": arduino.path, "SERIAL_DEADBAND": "0"})
    client = None
    try:
        yield node.start()
        yield eventually(lambda: "serial device open" in node.log_text(),
                         message="reader did not open the pty")
        client = yield connect(_Owner(), node, sub="bench", role="user")
        receiver = Receiver()
        yield client.session.subscribe(receiver, "iot.serial.reader")
        next_value = [1]

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
                                   options.rate)):
            values = take(count)
            lag.take()
            written = yield run(values, receiver, write_paced, arduino, values, rate)
            load.append(os.getloadavg()[0])
            seen = receiver.seen_at(values)
            samples = [(seen[v] - written[v]) * 1000 for v in values if seen[v] is not None]
            span = max(seen[v] for v in values if seen[v] is not None) - written[values[0]]
            results["runs"][name] = dict(latency_summary(samples), delivered=len(samples), sent=len(values),
                                         subscriber_max_lag_ms=lag.take(), load=round(load[-1], 2),
                                         events=receiver.events_for(values),
                                         lines_per_s=round(len(values) / span, 1),
                                         samples=[round(s, 3) for s in samples])

        values = take(options.flood)
        written = yield run(values, receiver, write_flood, arduino, values)
        span = receiver.arrived[max(receiver.arrived)] - written["first"]
        results["runs"]["flood (as fast as the pty takes them)"] = {
            "sent": len(values), "delivered": len(values), "events": receiver.events_for(values),
            "lines_per_s": round(len(values) / span, 1),
            "write_s": round(written["last"] - written["first"], 3), "end_to_end_s": round(span, 3),
            "subscriber_max_lag_ms": lag.take(), "load": round(os.getloadavg()[0], 2)}
        lag.loop.stop()
    finally:
        if client is not None:
            yield client.close()
        yield node.stop()
        node.cleanup()
        arduino.close()
    write(results)


def write(results):
    os.makedirs(RESULTS, exist_ok=True)
    lines = ["# IoT: serial lines -> WAMP subscriber", "",
             "A pty plays the Arduino; the hub's serial reader (reader thread) publishes the newest line of "
             "each read (dead band 0) through the router to one subscriber. Target {} lines/s. "
             "Python {}, {} CPUs.".format(
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
    report.save("iot", "\n".join(lines) + "\n", results)
    plot(results)


def plot(results):
    plt = report.pyplot()
    if plt is None:
        return
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, run_ in results["runs"].items():
        if "samples" in run_:
            ordered = sorted(run_["samples"])
            axis.plot(ordered, [i / len(ordered) for i in range(1, len(ordered) + 1)], label=name)
    axis.set_xscale("log")
    axis.set_xlabel("line written -> event at subscriber (ms)")
    axis.set_ylabel("fraction of lines")
    axis.set_title("Serial reader latency through the router")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, "iot.png"), dpi=110)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--latency", type=int, default=1000, help="lines in the 100 lines/s run")
    parser.add_argument("--rate", type=int, default=TARGET, help="lines/s of the paced run")
    parser.add_argument("--seconds", type=int, default=5, help="length of the paced run")
    parser.add_argument("--flood", type=int, default=20000, help="lines in the flood run")
    return parser.parse_args(argv)


if __name__ == "__main__":
    task.react(main, [parse(sys.argv[1:])])
