"""
End-to-end encryption costs.

1. Envelopes per second in Python (AES-256-GCM via ``cryptography``): seal
   and open of 200-byte and 20 KB JSON values; and ``seal_state`` as a
   component calls it (the user's current key read from SQLite and
   unwrapped under the KEK, then the seal).
2. Added end-to-end latency: a profile state made by a Python publisher ->
   sealed -> published through ``users.relay`` on a real node -> the node's
   user relay -> ``users.changed`` to the user's session -> the browser's
   SharedWorker opens it with WebCrypto -> the profile panel's DOM, in a
   real headless Chromium; against the same with encryption off (plaintext
   states, a second node with E2E_ENCRYPTION=off), changes alternating
   between the two. The publisher is the test-only
   stand-in of ``tests/support/sealed.py``: the user-sync components do not
   seal yet (when they do, measure their path too).

Timestamps: ``time.time()`` before sealing; the tab records
``performance.timeOrigin + performance.now()`` in a MutationObserver.

    python bench/crypto.py [--seconds 1.0] [--changes 200]

Prints tables and writes bench/results/crypto.{json,md,png}.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.browser import PASSWORD, WATCH, _Quiet, add_user, seen_times  # noqa: E402
from bench.report import RESULTS, latency_rows, latency_summary, pyplot, save  # noqa: E402
from components.e2e import envelope  # noqa: E402
from components.e2e.keys import MIGRATIONS, UserKeys  # noqa: E402
from components.e2e.service import PrivatePayloads  # noqa: E402
from components.db.database import Database  # noqa: E402
from components.db.migrations import migrate  # noqa: E402
from tests.support.browser import BrowserThread, log_in  # noqa: E402
from tests.support.clients import connect  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402
from tests.support.sealed import (SEALED_NODE_ENV, SealedProfiles, allow_sealed_publisher,  # noqa: E402
                                  node_keys)

SIZES = {"200 B": 200, "20 KB": 20 * 1024}
TOPIC = "users.changed"


def value_of_size(size, index=0):
    """A profile-like JSON value whose compact JSON is ``size`` bytes."""
    value = {"username": "bench", "first_name": "Bench{}".format(index), "email": "bench@example.com",
             "bio": ""}
    value["bio"] = "x" * max(0, size - len(json.dumps(value, separators=(",", ":"))))
    return value


def rate(fn, seconds):
    """Calls per second of ``fn()``: the best of 5 rounds of ``seconds / 5`` each."""
    best = 0.0
    for _ in range(5):
        count, started = 0, time.perf_counter()
        deadline = started + seconds / 5
        while True:
            for _ in range(50):
                fn()
            count += 50
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - started))
    return best


@defer.inlineCallbacks
def python_rates(seconds):
    key = os.urandom(32)
    rows = {}
    directory = tempfile.mkdtemp(prefix="bench-crypto-")
    db = Database("sqlite:///" + os.path.join(directory, "client.db"))
    yield migrate(db, "e2e_keys", MIGRATIONS)
    payloads = PrivatePayloads(UserKeys(db, os.urandom(32)), enabled=True)
    try:
        for label, size in SIZES.items():
            value = value_of_size(size)
            sealed = envelope.seal(key, "k1", TOPIC, 7, value)
            rows[label] = {
                "seal_per_s": round(rate(lambda: envelope.seal(key, "k1", TOPIC, 7, value), seconds)),
                "open_per_s": round(rate(lambda: envelope.open_envelope(key, TOPIC, 7, sealed), seconds)),
                "envelope_bytes": len(json.dumps(sealed, separators=(",", ":"))),
            }
            # seal_state: key lookup in SQLite (thread pool) + unwrap + seal, one after another
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                yield payloads.seal_state("bench", TOPIC, {"value": value, "seq": count, "ts": 0})
                count += 1
            rows[label]["seal_state_per_s"] = round(count / (time.perf_counter() - started))
    finally:
        db.close()
    return rows


def open_dashboard(browser, base_url, username):
    context = browser.new_context()
    page = log_in(context.new_page(), base_url, username, PASSWORD)
    page.wait_for_selector("#profile[data-seq]")
    page.evaluate(WATCH, ["#profile"])
    return context, page


@defer.inlineCallbacks
def start_side(owner, encrypted):
    """A node with encryption on or off, its key store and the publisher; fire with (node, profiles)."""
    env = dict(SEALED_NODE_ENV, E2E_ENCRYPTION="on" if encrypted else "off")
    node = RouterNode(name="bench-crypto", env=env, transform=allow_sealed_publisher)
    owner.addCleanup(node.cleanup)
    owner.addCleanup(node.stop)
    yield node.start()
    db, keys = node_keys(node)
    owner.addCleanup(db.close)
    publisher = yield connect(owner, node, sub="sealer", role="device")
    profiles = yield SealedProfiles.attach(publisher, keys, encrypted=encrypted)
    return node, profiles


@defer.inlineCallbacks
def latency_runs(browser, sizes, changes):
    """
    Two nodes, encryption off and on, both up at once; for each size one tab
    per node, and the changes alternate between the two (off, on, on, off,
    ...) so that drift and warm-up hit both alike. Fire with
    {"<size>, encryption off|on": latencies in ms}.
    """
    owner = _Quiet()
    runs = {}
    try:
        sides = {}
        for encrypted in (False, True):
            sides[encrypted] = yield start_side(owner, encrypted)
        for label, size in sizes.items():
            username = "bench{}".format(size)
            pages = {}
            for encrypted, (node, _profiles) in sides.items():
                yield add_user(node, username)
                pages[encrypted] = yield browser.run(open_dashboard, node.http, username)
            latencies = {False: [], True: []}
            try:
                warm = min(20, changes)
                for index in range(warm + changes):
                    for encrypted in ((False, True) if index % 2 else (True, False)):
                        _node, profiles = sides[encrypted]
                        page = pages[encrypted][1]
                        value = value_of_size(size, index)
                        started = time.time() * 1000.0
                        yield profiles.change(username, value)
                        times = yield browser.run(seen_times, [page], "#profile",
                                                  "Bench{} · bench@example.com".format(index))
                        if index >= warm:
                            latencies[encrypted].append(times[0] - started)
                for encrypted, (_context, page) in pages.items():
                    info = yield browser.run(lambda _browser: page.evaluate("hub.info()"))
                    if (info["e2e"]["opened"] > 0) != encrypted or info["e2e"]["refused"]:
                        raise RuntimeError("unexpected browser e2e state: {}".format(info["e2e"]))
            finally:
                for context, _page in pages.values():
                    yield browser.run(lambda _browser: context.close())
            for encrypted, samples in latencies.items():
                runs["{}, encryption {}".format(label, "on" if encrypted else "off")] = dict(
                    latency_summary(samples), samples=[round(x, 3) for x in samples])
    finally:
        for fn, args in reversed(owner.cleanups):
            yield defer.maybeDeferred(fn, *args)
    return runs


@defer.inlineCallbacks
def main(reactor, options):
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform(), "load_at_start": round(os.getloadavg()[0], 2)},
               "changes": options.changes, "python": {}, "latency": {}, "notes": [
                   "End-to-end path: test-only sealed publisher (tests/support/sealed.py) -> users.relay -> "
                   "user relay -> users.changed -> SharedWorker (WebCrypto) -> DOM; the user-sync components "
                   "do not seal yet, so their own path is not measured here."]}
    results["python"] = yield python_rates(options.seconds)
    browser = BrowserThread()
    try:
        yield browser.start()
        results["latency"] = yield latency_runs(browser, SIZES, options.changes)
    finally:
        browser.stop()
    for label in SIZES:
        off = results["latency"]["{}, encryption off".format(label)]
        on = results["latency"]["{}, encryption on".format(label)]
        results.setdefault("added", {})[label] = {
            name: round(on[name] - off[name], 2) for name in ("p50_ms", "p99_ms", "mean_ms")}
    write(results)


def write(results):
    os.makedirs(RESULTS, exist_ok=True)
    machine = results["machine"]
    lines = ["# End-to-end encryption: throughput and added latency", "",
             "Python {}, {} CPUs, {}; 1-minute load average at the start: {} (a shared machine: other "
             "processes compete for the CPUs).".format(machine["python"], machine["cpus"], machine["platform"],
                                                       machine["load_at_start"]), "",
             "## Envelopes per second (Python, one core)", "",
             "| payload | envelope bytes | seal/s | open/s | seal_state/s (key from SQLite + seal) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for label, row in results["python"].items():
        lines.append("| {} | {} | {} | {} | {} |".format(label, row["envelope_bytes"], row["seal_per_s"],
                                                        row["open_per_s"], row["seal_state_per_s"]))
    lines += ["", "## Change -> DOM latency, encryption off vs on", "",
              "{} changes per run, one after another (each waits for the DOM), alternating between "
              "a node with encryption off and one with it on.".format(results["changes"]), ""]
    lines += latency_rows(results["latency"])
    lines += ["", "| payload | added p50 ms | added p99 ms | added mean ms |", "| --- | ---: | ---: | ---: |"]
    for label, added in results["added"].items():
        lines.append("| {} | {p50_ms} | {p99_ms} | {mean_ms} |".format(label, **added))
    lines += [""] + ["Note: " + note for note in results["notes"]]
    save("crypto", "\n".join(lines) + "\n", results)
    plot(results)


def plot(results):
    plt = pyplot()
    if plt is None:
        return
    figure, (rates, latency) = plt.subplots(1, 2, figsize=(11, 4))
    labels = list(results["python"])
    for offset, (column, legend) in enumerate((("seal_per_s", "seal"), ("open_per_s", "open"),
                                               ("seal_state_per_s", "seal_state (key from SQLite)"))):
        rates.bar([i + offset * 0.27 for i in range(len(labels))],
                  [results["python"][label][column] for label in labels], width=0.27, label=legend)
    rates.set_xticks([i + 0.27 for i in range(len(labels))], labels)
    rates.set_yscale("log")
    rates.set_ylabel("envelopes per second (Python)")
    rates.legend(fontsize="small")
    for name, run in results["latency"].items():
        ordered = sorted(run["samples"])
        latency.plot(ordered, [i / len(ordered) for i in range(1, len(ordered) + 1)], label=name,
                     linestyle="-" if name.endswith("on") else "--")
    latency.set_xlabel("profile change -> DOM (ms), log scale")
    latency.set_ylabel("fraction of changes")
    latency.set_xscale("log")
    latency.grid(True, alpha=0.3)
    latency.legend(fontsize="small")
    figure.suptitle("End-to-end encryption: Python throughput; latency off vs on in headless Chromium")
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, "crypto.png"), dpi=110)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per Python throughput measurement")
    parser.add_argument("--changes", type=int, default=200)
    return parser.parse_args(argv)


if __name__ == "__main__":
    task.react(main, [parse(sys.argv[1:])])
