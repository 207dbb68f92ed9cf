"""
Identity follows the directory (issue 13), the figures of one run:

1. Joins: sessions joined per second through a real router (dev config,
   WebSocket, the ticket authenticator) with the join-time revocation check
   (``REVOCATION_DATABASE=master``: one look-up of the credential version and
   the revoked login per join, master on SQLite and on PostgreSQL) and with
   ``REVOCATION_DATABASE=off``, in the same run. ``--concurrency`` clients in
   this process each join, close and join again with a token carrying
   ``cv`` and ``sid``, ``--joins`` joins per setting in ``--rounds`` rounds
   that alternate between the three nodes (all running); the median round
   rate is reported. The clients share the
   machine's 2 CPUs with the node, so the figures are for comparing the
   settings, not the router's ceiling.
2. Login refusals: the time of ``Directory.authenticate`` (what
   ``POST /auth/login`` runs, without the HTTP and the rate limit) refusing a
   login, per reason: unknown user, unusable password (``!...``), wrong
   password (``pbkdf2_sha256`` at Django's 1,000,000 iterations) and a hash
   the hub cannot verify (``md5$...``). Reasons interleaved round-robin,
   ``--refusals`` samples each; medians and their spread (largest median over
   smallest).
3. ``master.users.save``: latency of an admin's save (an update of a
   profile, committed on the master with its outbox event) through the same
   nodes, ``--saves`` sequential calls, p50/p99, on SQLite and PostgreSQL.
4. The time from a committed deactivation to the user's sessions ended on
   both client nodes, over ``--deactivation-users`` users (a master and two
   linked client nodes on the SNS/SQS emulator: ``bench/revocation.py``'s
   ``measure``; 0 skips it).

    python bench/identity.py [--joins 800] [--rounds 8] [--concurrency 10] [--refusals 25] [--saves 300]
                             [--deactivation-users 100]

Prints a table and writes bench/results/identity.{json,md}.
"""

import argparse
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.auth import passwords  # noqa: E402
from components.auth.directory import Directory  # noqa: E402
from components.db.database import Database  # noqa: E402
from components.db.migrations import migrate_all  # noqa: E402
from components.node import schema_registry  # noqa: E402
from components.usersync import SAVE  # noqa: E402
from tests.support.clients import connect, issuer  # noqa: E402
from tests.support.databases import postgres_url  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402
from tests.support.users import add_users  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import latency_summary, percentile, save as save_report  # noqa: E402

REASONS = ("unknown user", "unusable password", "wrong password", "unverifiable hash")
ADMIN = "bench_admin"


def progress(text):
    print("  " + text, file=sys.stderr, flush=True)


from revocation import Cleanups as _Cleanups  # noqa: E402  (bench/revocation.py: one definition)


@defer.inlineCallbacks
def join_rate(reactor, node, joins, concurrency):
    """Joins per second: ``concurrency`` loops of join + close until ``joins`` joins are done."""
    mint = issuer()
    owner = _Cleanups()
    remaining = [joins]
    done = [0]

    @defer.inlineCallbacks
    def loop(index):
        while remaining[0] > 0:
            remaining[0] -= 1
            ticket = mint.issue("bench_joiner_{}".format(index), "user",
                                extra_claims={"cv": 0, "sid": secrets.token_hex(16)})
            client = yield connect(owner, node, ticket=ticket, reconnect=False)
            done[0] += 1
            yield client.close()
    # warm up (thread pools, first connections), not measured
    warm = _Cleanups()
    for index in range(concurrency):
        client = yield connect(warm, node, ticket=mint.issue("bench_warm_{}".format(index), "user",
                                                             extra_claims={"cv": 0, "sid": "warm"}),
                               reconnect=False)
        yield client.close()
    started = time.monotonic()
    yield defer.gatherResults([loop(index) for index in range(concurrency)], consumeErrors=True)
    elapsed = time.monotonic() - started
    yield owner.run()
    yield warm.run()
    return {"joins": done[0], "seconds": round(elapsed, 2), "per_second": round(done[0] / elapsed, 1)}


@defer.inlineCallbacks
def save_latency(reactor, node, master_url, saves):
    """An admin's ``master.users.save`` round trips, one after another: summary in ms."""
    yield add_users(node, [(ADMIN, "Admin", True)], "bench password", url=master_url)
    owner = _Cleanups()
    try:
        client = yield connect(owner, node, sub=ADMIN, role="admin", reconnect=False)
        names = ["bench_saved_{}".format(index) for index in range(20)]
        for name in names:  # create them first: the measured saves are updates
            yield client.session.call(SAVE, {"username": name, "first_name": "new"})
        latencies = []
        for index in range(saves):
            started = time.monotonic()
            profile = {"username": names[index % len(names)], "first_name": "n{}".format(index)}
            yield client.session.call(SAVE, profile)
            latencies.append((time.monotonic() - started) * 1000)
        return latency_summary(latencies)
    finally:
        yield owner.run()


@defer.inlineCallbacks
def refusal_times(samples):
    """Refusal times in ms per reason (medians, p90): Directory.authenticate at the hub's iterations."""
    path = os.path.join(tempfile.mkdtemp(prefix="bench-identity-"), "master.db")
    directory_db = Database("sqlite:///" + path)
    try:
        yield migrate_all(directory_db, schema_registry.master())
        directory = Directory(directory_db)   # passwords.DEFAULT_ITERATIONS, as the node runs it
        for name in ("bench_wrong", "bench_unusable", "bench_md5"):
            yield directory.create_user(name, "the right password")
        yield directory_db.execute("UPDATE auth_user SET password = ? WHERE username = ?",
                                   ("!" + secrets.token_urlsafe(30), "bench_unusable"))
        yield directory_db.execute("UPDATE auth_user SET password = ? WHERE username = ?",
                                   ("md5$salt$" + "0" * 32, "bench_md5"))
        usernames = {"unknown user": None, "unusable password": "bench_unusable",
                     "wrong password": "bench_wrong", "unverifiable hash": "bench_md5"}
        times = {reason: [] for reason in REASONS}
        for _ in range(samples + 1):          # the first round warms up and is dropped
            for reason in REASONS:
                username = usernames[reason] or "bench_nobody_" + uuid.uuid4().hex[:8]
                started = time.monotonic()
                user = yield directory.authenticate(username, "a wrong password")
                elapsed = (time.monotonic() - started) * 1000
                if user is not None:
                    raise AssertionError("a refusal was accepted: " + reason)
                times[reason].append(elapsed)
        times = {reason: values[1:] for reason, values in times.items()}
        medians = {reason: round(statistics.median(values), 1) for reason, values in times.items()}
        return {"samples": samples, "iterations": passwords.DEFAULT_ITERATIONS, "median_ms": medians,
                "spread": round(max(medians.values()) / min(medians.values()), 3),
                "p90_ms": {reason: round(percentile(values, 0.9), 1) for reason, values in times.items()}}
    finally:
        directory_db.close()


@defer.inlineCallbacks
def main(reactor, options):
    results = {"python": platform.python_version(), "cpus": os.cpu_count(), "joins": {}, "saves": {}}
    cleanups = _Cleanups()
    try:
        pg_url = postgres_url(cleanups)
        settings = [
            ("check, SQLite master", {"REVOCATION_DATABASE": "master"}, None),
            ("check, PostgreSQL master", {"REVOCATION_DATABASE": "master", "MASTER_DATABASE_URL": pg_url},
             pg_url),
            ("off (no check)", {"REVOCATION_DATABASE": "off"}, None),
        ]
        nodes = {}
        for name, env, master_url in settings:
            nodes[name] = RouterNode(name="bench-identity", env=dict(env, E2E_ENCRYPTION="off"))
            cleanups.addCleanup(nodes[name].cleanup)
        progress("starting {} nodes ...".format(len(nodes)))
        yield defer.gatherResults([node.start() for node in nodes.values()], consumeErrors=True)
        # rounds alternate between the settings, so a load change on the shared machine hits all of them
        rounds = {name: [] for name in nodes}
        per_round = max(1, options.joins // options.rounds)
        for number in range(options.rounds):
            order = list(nodes)[number % len(nodes):] + list(nodes)[:number % len(nodes)]
            for name in order:
                rounds[name].append((yield join_rate(reactor, nodes[name], per_round, options.concurrency)))
            progress("join round {} / {} done".format(number + 1, options.rounds))
        for name, figures in rounds.items():
            rates = [figure["per_second"] for figure in figures]
            results["joins"][name] = {"joins": sum(figure["joins"] for figure in figures),
                                      "rounds": len(figures), "per_second": statistics.median(rates),
                                      "min": min(rates), "max": max(rates)}
        for name, env, master_url in settings:
            if env["REVOCATION_DATABASE"] != "off":
                progress("{}: {} master.users.save calls ...".format(name, options.saves))
                url = master_url or "sqlite:///" + os.path.join(nodes[name].directory, "master.db")
                results["saves"][name.split(", ")[1]] = yield save_latency(reactor, nodes[name], url,
                                                                           options.saves)
        for node in nodes.values():
            yield node.stop()
        progress("login refusals: {} per reason ...".format(options.refusals))
        results["refusals"] = yield refusal_times(options.refusals)
        if options.deactivation_users:
            import revocation
            progress("deactivation -> sessions ended, {} users ...".format(options.deactivation_users))
            results["deactivation"] = yield revocation.measure(reactor, options.deactivation_users)
    finally:
        yield cleanups.run()
    write(results)


def write(results):
    lines = ["# Identity: join-time revocation check, login refusals, admin saves", "",
             "Python {python}, {cpus} CPUs (shared machine; the clients run in the benchmark process beside"
             " the node).".format(**results), "",
             "## Sessions joined per second", "",
             "| REVOCATION_DATABASE | joins | rounds | joins/s (median round) | slowest | fastest |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, figure in results["joins"].items():
        lines.append("| {} | {joins} | {rounds} | {per_second:.1f} | {min:.1f} | {max:.1f} |".format(name, **figure))
    off = results["joins"].get("off (no check)")
    if off:
        lines.append("")
        lines += ["- {}: {:.0%} of the rate without the check.".format(
            name, figure["per_second"] / off["per_second"])
            for name, figure in results["joins"].items() if figure is not off]
    refusals = results["refusals"]
    lines += ["", "## Login refusal time per reason", "",
              "Directory.authenticate, pbkdf2_sha256 at {} iterations, {} samples per reason.".format(
                  refusals["iterations"], refusals["samples"]), "",
              "| reason | median ms | p90 ms |", "| --- | ---: | ---: |"]
    for reason in REASONS:
        lines.append("| {} | {} | {} |".format(reason, refusals["median_ms"][reason],
                                               refusals["p90_ms"][reason]))
    lines += ["", "Spread of the medians (largest / smallest): {}.".format(refusals["spread"]),
              "", "## master.users.save latency", "",
              "| master | saves | p50 ms | p99 ms | mean ms | max ms |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, figure in results["saves"].items():
        lines.append("| {} | {n} | {p50_ms} | {p99_ms} | {mean_ms} | {max_ms} |".format(name, **figure))
    deactivation = results.get("deactivation")
    if deactivation:
        lines += ["", "## Deactivation -> sessions ended on both linked client nodes", "",
                  "| node | p50 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: |"]
        for name in ("node1", "node2"):
            figure = deactivation.get(name)
            if figure:
                lines.append("| client {} | {:.0f} | {:.0f} | {:.0f} |".format(
                    name[-1], figure["p50"], figure["p99"], figure["max"]))
    save_report("identity", "\n".join(lines) + "\n", results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--refusals", type=int, default=25)
    parser.add_argument("--saves", type=int, default=300)
    parser.add_argument("--deactivation-users", type=int, default=100)
    task.react(main, [parser.parse_args()])
