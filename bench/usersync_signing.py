"""
What signing costs the user sync: the same pipeline (a SQLite master's
outbox -> relay -> SNS -> SQS -> bridge -> a SQLite client table, on the
local emulator, a moto server process) with signing on and off in one run,
alternating rounds so both see the same machine:

- throughput: ``--burst`` users inserted in one master transaction; from the
  commit until the client has applied all of them (messages/s);
- latency: ``--paced`` inserts, one commit each at ``--rate`` per second,
  the relay woken at each commit (as PostgreSQL's NOTIFY does); from the
  commit until the bridge's transaction that applied it committed;
- cost: Ed25519 signing and verification of one typical message (µs), and
  the share of one core they take at the measured rate.

"Off" is a pass-through signer/verifier defined here only (the hub has no
switch for it). Part of ``bench/usersync.py`` (alone: ``--only signing``), or:

    python bench/usersync_signing.py [--burst 600] [--paced 150] [--rate 20] [--rounds 2]

Prints a table and writes bench/results/usersync_signing.{json,md}.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from bench.report import percentile  # noqa: E402
from components.db.database import Database  # noqa: E402
from components.db.migrations import migrate_all  # noqa: E402
from components.usersync import client_side, master, messages, outbox, provision, message_signing  # noqa: E402
from components.usersync.aws import BlockingPool, make_client  # noqa: E402
from components.usersync.queue_consumer import Bridge  # noqa: E402
from components.usersync.outbox_relay import Relay  # noqa: E402
from components.usersync.sns import SnsPublisher  # noqa: E402
from tests.support.emulator import MotoServer  # noqa: E402

INSERT = ("INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active,"
          " date_joined, first_name) VALUES ('!', 0, ?, 'Bench', ?, 0, 1, '2026-01-01', ?)")
SAMPLE = {"type": "user.changed", "action": "update", "version": 42, "ts": 1767225600000, "seq": 4242,
          "epoch": "0123456789abcdef", "user": {"username": "bench_user_0042", "first_name": "Firstname",
                                                "last_name": "Lastname", "email": "bench_user_0042@example.com",
                                                "is_active": True}}


class PassThrough:
    """Signing off, for this comparison only: ``sign`` and ``verify`` hand the message back as it is."""

    kid = "unsigned"

    def sign(self, message):
        return dict(message)

    def verify(self, message):
        return message


def micro(count=3000):
    """µs per sign and per verify (and per full parse with and without the check) of SAMPLE."""
    key = Ed25519PrivateKey.generate()
    signer, verifier = message_signing.Signer(key), message_signing.Verifier([key.public_key()])
    signed = [signer.sign(dict(SAMPLE, version=index + 1)) for index in range(50)]
    bodies = [json.dumps(message, sort_keys=True, separators=(",", ":")) for message in signed]

    def each(fn, items):
        started = time.perf_counter()
        for index in range(count):
            fn(items[index % len(items)])
        return (time.perf_counter() - started) / count * 1e6
    return {
        "sign_us": each(signer.sign, [dict(SAMPLE, version=index + 1) for index in range(50)]),
        "verify_us": each(verifier.verify, signed),
        "parse_signed_us": each(lambda text: messages.parse(text, verifier), bodies),
        "parse_unchecked_us": each(lambda text: messages.parse(text, PassThrough()), bodies),
        "body_bytes": len(bodies[0]),
        "unsigned_body_bytes": len(json.dumps(SAMPLE, sort_keys=True, separators=(",", ":"))),
    }


class Pipeline:
    """One relay and one bridge between the shared master and client databases, with a signer/verifier pair."""

    def __init__(self, reactor, pool, sns, sqs, aws, master_db, client_db, signer, verifier):
        self.reactor = reactor
        self.master_db = master_db
        self.applied_at = {}
        self.relay = Relay(master_db, SnsPublisher(sns, aws["topic_arn"], signer), pool.run, reactor, batch=100,
                           poll_interval=0.05)
        self.bridge = Bridge(sqs, aws["clients"]["a"]["queue_url"], client_db, pool.run, reactor, self.applied,
                             pollers=2, wait=1, visibility=30, verifier=verifier,
                             dead_letter_url=aws["clients"]["a"]["dead_letter_queue_url"])

    def applied(self, changes):
        now = time.time()
        for change in changes:
            self.applied_at.setdefault(change.username, now)

    def start(self):
        self.relay.start()
        self.bridge.start()

    def stop(self):
        self.relay.stop()
        self.bridge.stop()

    @defer.inlineCallbacks
    def until_applied(self, names, timeout):
        deadline = time.time() + timeout
        while not all(name in self.applied_at for name in names):
            if time.time() > deadline:
                raise RuntimeError("{} of {} not applied after {} s".format(
                    sum(name not in self.applied_at for name in names), len(names), timeout))
            yield task.deferLater(self.reactor, 0.02, lambda: None)

    @defer.inlineCallbacks
    def burst(self, prefix, count):
        """Messages/s from one commit of ``count`` inserts until the client applied all of them."""
        names = ["{}_{}".format(prefix, index) for index in range(count)]

        def insert_all(cursor):
            for name in names:
                cursor.execute(INSERT, (name, name + "@example.com", "Burst"))
        yield self.master_db.run(insert_all)
        committed = time.time()
        self.relay.wake()
        yield self.until_applied(names, timeout=max(120, count))
        return count / (max(self.applied_at[name] for name in names) - committed)

    @defer.inlineCallbacks
    def paced(self, prefix, count, rate):
        """Commit-to-applied latencies (ms) of ``count`` single inserts at ``rate``/s."""
        commits = {}
        started = time.time()
        for index in range(count):
            name = "{}_{}".format(prefix, index)
            yield self.master_db.execute(INSERT, (name, name + "@example.com", "Paced"))
            commits[name] = time.time()
            self.relay.wake()
            delay = started + (index + 1) / rate - time.time()
            if delay > 0:
                yield task.deferLater(self.reactor, delay, lambda: None)
        yield self.until_applied(list(commits), timeout=60)
        return [(self.applied_at[name] - committed) * 1000 for name, committed in commits.items()]


@defer.inlineCallbacks
def run(reactor, burst=600, paced=150, rate=20.0, rounds=2, moto=None):
    """Both modes, ``rounds`` alternating rounds each; fire with the results dict."""
    own_moto = moto is None
    if own_moto:
        moto = yield MotoServer().start()
    pool = BlockingPool(reactor, 8, "bench-signing")
    directory = tempfile.mkdtemp(prefix="bench-signing-")
    master_db = Database("sqlite:///" + os.path.join(directory, "master.db"))
    client_db = Database("sqlite:///" + os.path.join(directory, "client.db"))
    try:
        sns, sqs = (make_client(service, moto.url, "us-east-1", read_timeout=60, pool=16, attempts=5)
                    for service in ("sns", "sqs"))
        plan = provision.Plan("bench-signing-" + uuid.uuid4().hex[:8], ["a"])
        aws = yield pool.run(provision.provision, sns, sqs, plan)
        yield migrate_all(master_db, master.SCHEMAS)
        yield master_db.run(outbox.install)
        yield migrate_all(client_db, client_side.SCHEMAS)
        key = Ed25519PrivateKey.generate()
        modes = {"on": (message_signing.Signer(key), message_signing.Verifier([key.public_key()])),
                 "off": (PassThrough(), PassThrough())}
        figures = {mode: {"burst_per_s": [], "latencies_ms": []} for mode in modes}
        for round_index in range(rounds):
            for mode in (("on", "off") if round_index % 2 == 0 else ("off", "on")):
                pipeline = Pipeline(reactor, pool, sns, sqs, aws, master_db, client_db, *modes[mode])
                pipeline.start()
                try:
                    prefix = "r{}_{}".format(round_index, mode)
                    per_s = yield pipeline.burst(prefix + "_burst", burst)
                    latencies = yield pipeline.paced(prefix + "_paced", paced, rate)
                finally:
                    pipeline.stop()
                    yield task.deferLater(reactor, 1.5, lambda: None)  # the pollers' long polls end
                figures[mode]["burst_per_s"].append(per_s)
                figures[mode]["latencies_ms"].extend(latencies)
                print("round {} signing {:>3}: {:.0f} msg/s, latency p50 {:.1f} ms p99 {:.1f} ms".format(
                    round_index + 1, mode, per_s, percentile(latencies, 0.5), percentile(latencies, 0.99)),
                    flush=True)
        cost = micro()
    finally:
        pool.stop()
        master_db.close()
        client_db.close()
        if own_moto:
            moto.stop()
    summary = {}
    for mode, values in figures.items():
        latencies = values["latencies_ms"]
        summary[mode] = {"burst_per_s": statistics.median(values["burst_per_s"]),
                         "burst_rounds_per_s": values["burst_per_s"],
                         "latency_ms": {"p50": percentile(latencies, 0.5), "p90": percentile(latencies, 0.9),
                                        "p99": percentile(latencies, 0.99), "max": max(latencies),
                                        "mean": statistics.mean(latencies)}}
    per_message_us = cost["sign_us"] + cost["verify_us"]
    return {
        "burst": burst, "paced": paced, "rate": rate, "rounds": rounds,
        "modes": summary, "cost": cost,
        # each round runs both modes back to back: their ratio is the least disturbed by the machine's load
        "throughput_on_vs_off": statistics.median(
            on / off for on, off in zip(figures["on"]["burst_per_s"], figures["off"]["burst_per_s"])),
        "signing_core_share_at_measured_rate": per_message_us * 1e-6 * summary["on"]["burst_per_s"],
        "signing_ceiling_per_s": 1e6 / per_message_us,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()[0]},
    }


def write(results):
    """bench/results/usersync_signing.{md,json}."""
    on, off, cost = results["modes"]["on"], results["modes"]["off"], results["cost"]
    lines = [
        "# User sync: signing on vs off",
        "",
        "One run, {rounds} alternating rounds per mode, local moto server, SQLite master and client"
        " (`bench/usersync_signing.py`): a burst of {burst} inserts in one commit, then {paced} single"
        " commits at {rate:g}/s.".format(**results),
        "",
        "| | signing on | signing off |",
        "| --- | --- | --- |",
        "| burst, commit to all applied (msg/s, median of rounds) | {:.0f} | {:.0f} |".format(
            on["burst_per_s"], off["burst_per_s"]),
        "| commit to applied p50 (ms) | {:.1f} | {:.1f} |".format(on["latency_ms"]["p50"], off["latency_ms"]["p50"]),
        "| commit to applied p90 (ms) | {:.1f} | {:.1f} |".format(on["latency_ms"]["p90"], off["latency_ms"]["p90"]),
        "| commit to applied p99 (ms) | {:.1f} | {:.1f} |".format(on["latency_ms"]["p99"], off["latency_ms"]["p99"]),
        "| burst of each round (msg/s, in run order) | {} | {} |".format(
            ", ".join("{:.0f}".format(value) for value in on["burst_rounds_per_s"]),
            ", ".join("{:.0f}".format(value) for value in off["burst_rounds_per_s"])),
        "",
        "Ed25519 per message ({} B body, {} B unsigned): sign {:.1f} µs, verify {:.1f} µs; a client's parse"
        " {:.1f} µs with the check, {:.1f} µs without. Throughput on/off (median of the rounds' ratios): {:.2f}. At the measured rate"
        " signing and verifying take {:.2%} of one core; one core signs and verifies {:,.0f} messages/s, where"
        " the pipeline through the emulator carried {:.0f}/s.".format(
            cost["body_bytes"], cost["unsigned_body_bytes"], cost["sign_us"], cost["verify_us"],
            cost["parse_signed_us"], cost["parse_unchecked_us"], results["throughput_on_vs_off"],
            results["signing_core_share_at_measured_rate"], results["signing_ceiling_per_s"],
            on["burst_per_s"]),
        "",
        "Machine: Python {python}, {cpus} CPUs, load {load:.2f} at the end.".format(**results["machine"]),
        "",
    ]
    report.save("usersync_signing", "\n".join(lines), results)


def add_arguments(parser, prefix=""):
    """This phase's options (``--<prefix>burst`` ...), also for bench/usersync.py."""
    parser.add_argument("--{}burst".format(prefix), type=int, default=600,
                        help="inserts in the one-commit burst per round")
    parser.add_argument("--{}paced".format(prefix), type=int, default=150, help="single commits per round")
    parser.add_argument("--{}rate".format(prefix), type=float, default=20.0, help="single commits per second")
    parser.add_argument("--{}rounds".format(prefix), type=int, default=2, help="rounds per mode (alternating)")


@defer.inlineCallbacks
def phase(reactor, opts, prefix=""):
    """Run with the options of :func:`add_arguments` and write the results."""
    option = lambda name: getattr(opts, prefix.replace("-", "_") + name)  # noqa: E731
    results = yield run(reactor, option("burst"), option("paced"), option("rate"), option("rounds"))
    write(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    task.react(phase, [parser.parse_args()])
