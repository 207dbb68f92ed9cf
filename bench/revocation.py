"""
Revocation latency across a production deployment: a master node
(master.json, PostgreSQL user table, relay to SNS) and two linked client
nodes (client.json, one PostgreSQL client database, one SQS queue) on the
local SNS/SQS emulator, as tests/node/test_linked_revocation.py starts them.

``--users`` users each join BOTH client nodes with a token carrying their
credential version; then, one user at a time (after a random 0-0.6 s pause,
so the commits fall at any phase of the watches' polls), the user is deactivated by a
plain SQL commit on the master, and the time from the commit to the end of
the user's session on each client node (``reactive.error.auth.revoked``) is
recorded. The path: trigger -> outbox -> relay -> SNS -> SQS -> one node's
bridge -> the shared client database -> each node's revocation watch
(REVOCATION_POLL, 0.5 s) -> ``wamp.session.kill``.

    python bench/revocation.py [--users 100]

Prints a table and writes bench/results/revocation.{json,md}. ``measure``
is what bench/identity.py calls for its deactivation figure.
"""

import argparse
import os
import platform
import random
import statistics
import sys
import time
import uuid

import psycopg2
from twisted.internet import defer, task, threads

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from bench.report import percentile  # noqa: E402
from components.usersync import provision  # noqa: E402
from tests.node.test_production import NODE_DIR, LinkedClientNodes, _Direct  # noqa: E402
from tests.support.clients import connect  # noqa: E402
from tests.support.databases import postgres_execute as _sql, postgres_url  # noqa: E402
from tests.support.emulator import ENV, MotoServer  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402

USER_ROW = ("INSERT INTO auth_user (password, last_login, is_superuser, username, last_name, email, is_staff,"
            " is_active, date_joined, first_name) VALUES ('!', NULL, FALSE, %s, '', '', FALSE, TRUE, now(), 'B')")


class Cleanups:
    """What LinkedClientNodes and postgres_url want of a test case (bench/identity.py uses it too)."""

    def __init__(self):
        self.cleanups = []

    def addCleanup(self, function, *args):
        self.cleanups.append((function, args))

    @defer.inlineCallbacks
    def run(self):
        for function, args in reversed(self.cleanups):
            try:
                yield defer.maybeDeferred(function, *args)
            except Exception as exc:  # a cleanup that fails must not hide the figures
                progress("cleanup failed: {}".format(exc))
        self.cleanups = []


def progress(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@defer.inlineCallbacks
def measure(reactor, users=100):
    """The deployment, ``users`` deactivations; fire with the figures (ms per node)."""
    cleanups = Cleanups()
    moto = MotoServer()
    yield moto.start()
    cleanups.addCleanup(moto.stop)
    try:
        plan = provision.Plan("users-" + uuid.uuid4().hex[:8], ["hub"], max_receives=5)
        aws = yield threads.deferToThread(provision.provision, moto.client("sns"), moto.client("sqs"), plan)
        sync = dict(ENV, AWS_ENDPOINT_URL=moto.url, USERSYNC_WAIT="1", E2E_ENCRYPTION="off")
        pair = LinkedClientNodes(cleanups, env=dict(sync, SQS_QUEUE_URL=aws["clients"]["hub"]["queue_url"]))
        cleanups.addCleanup(pair.cleanup)
        private, public = pair.key_files
        master_url = postgres_url(cleanups)
        master = RouterNode(name="bench-master", config_path=os.path.join(NODE_DIR, "master.json"), env=dict(
            sync, JWT_SECRET="", JWT_PUBLIC_KEY_FILE=public, JWT_PRIVATE_KEY_FILE=private,
            MASTER_DATABASE_URL=master_url, DATABASE_URL=pair.database_url, SNS_TOPIC_ARN=aws["topic_arn"]))
        cleanups.addCleanup(master.cleanup)
        progress("starting the master and two linked client nodes ...")
        yield defer.gatherResults([master.start(), pair.start()])
        for _ in range(300):
            if all(pair.linked(node) for node in pair.nodes):
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        prefix = "bench_" + uuid.uuid4().hex[:6]
        names = ["{}_{}".format(prefix, index) for index in range(users)]
        for _ in range(300):  # the master component migrates the user table on start
            try:
                yield _sql(master_url, "SELECT 1 FROM auth_user LIMIT 1")
                break
            except psycopg2.Error:
                yield task.deferLater(reactor, 0.1, lambda: None)
        for username in names:
            yield _sql(master_url, USER_ROW, (username,))
        progress("joining {} users on both client nodes ...".format(users))
        ended = {}
        for username in names:
            ticket = pair.issuer.issue(username, "user", extra_claims={"cv": 0})
            for index, node in enumerate(pair.nodes):
                client = yield connect(cleanups, _Direct(node.url), ticket=ticket, reconnect=False)
                client.on_leave(lambda details, key=(username, index): ended.setdefault(
                    key, (time.monotonic(), details.reason)))
        latencies = {0: [], 1: []}
        reasons = set()
        missed = 0
        jitter = random.Random(7)
        for number, username in enumerate(names, 1):
            # a random phase against the watches' poll: right after a kill every node has just polled
            yield task.deferLater(reactor, jitter.uniform(0, 0.6), lambda: None)
            started = time.monotonic()
            yield _sql(master_url, "UPDATE auth_user SET is_active = FALSE WHERE username = %s", (username,))
            while not all((username, index) in ended for index in (0, 1)) and time.monotonic() - started < 10:
                yield task.deferLater(reactor, 0.005, lambda: None)
            for index in (0, 1):
                if (username, index) in ended:
                    at, reason = ended[(username, index)]
                    latencies[index].append((at - started) * 1000)
                    reasons.add(reason)
                else:
                    missed += 1
            if number % 20 == 0:
                progress("{} / {} deactivated".format(number, users))
        figures = {"users": users, "missed": missed, "reasons": sorted(reasons)}
        for index in (0, 1):
            values = latencies[index]
            figures["node{}".format(index + 1)] = {
                "p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": max(values),
                "mean": statistics.mean(values), "samples": values} if values else None
        return figures
    finally:
        yield cleanups.run()


def write(results):
    lines = ["# Revocation: master commit -> sessions ended on both linked client nodes", "",
             "{} users, each deactivated by plain SQL on the master, one at a time; moto server on loopback; "
             "Python {}, {} CPUs (shared machine).".format(results["users"], platform.python_version(),
                                                         os.cpu_count()), "",
             "| node | p50 | p99 | max |", "| --- | --- | --- | --- |"]
    for name in ("node1", "node2"):
        figure = results[name]
        if figure:
            lines.append("| client {} | {:.0f} ms | {:.0f} ms | {:.0f} ms |".format(
                name[-1], figure["p50"], figure["p99"], figure["max"]))
    lines.append("")
    lines.append("Sessions not ended within 10 s: {}; close reasons: {}.".format(
        results["missed"], ", ".join(results["reasons"])))
    report.save("revocation", "\n".join(lines) + "\n", results)


@defer.inlineCallbacks
def main(reactor, opts):
    results = yield measure(reactor, opts.users)
    write(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    task.react(main, [parser.parse_args()])
