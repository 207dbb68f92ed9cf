"""
User sync throughput and latency, master -> SNS -> SQS -> two clients ->
the user's WAMP session, on one machine against the local emulator (a moto
server process), in one run:

1. Burst: ``--changes`` user updates are committed on the master
   (PostgreSQL) as fast as one connection can; the master node's relay sends
   them to SNS, which fills four queues: client a, client b and two bare
   queues. A bare boto3 loop (receive 10 + batch delete, as many loops per
   queue as the bridge has pollers) drains the two bare queues; then a
   client node starts whose two bridges (client a on SQLite, client b on
   PostgreSQL) drain theirs. Rates are measured the same way for both: the
   queue depth, looked at every 2 s (each look costs moto a full scan),
   between 10% and 90% drained; the bridge must reach 80% of the bare rate.
   The relay gets a reference too: the same number of messages sent with
   bare boto3 PublishBatch calls to a topic with the same four queues.
2. Paced: ``--paced`` more changes at ``--rate`` per second (below the
   emulator's capacity, so no backlog builds) while the users' sessions are
   subscribed to ``users.changed`` on the client node: latency from the
   master's commit to the event at the session. The bare queues are
   unsubscribed first.

3. Signing on vs off (``bench/usersync_signing.py``): the same pipeline in
   process with the master's signatures on and off in alternating rounds:
   burst messages/s, commit-to-client latency, Ed25519 cost per message.
4. A new client converging (``bench/usersync_snapshot.py``): how long a
   client added to a master with ``--snapshot-users`` users takes to hold
   them all by itself (beacon, request, snapshot).

    python bench/usersync.py [--changes 2000] [--users 50] [--paced 600] [--rate 10]
        [--snapshot-users 10000] [--only signing|snapshot]

Prints a table and writes bench/results/usersync.{json,md,png},
bench/results/usersync_signing.{json,md} and bench/results/usersync_snapshot.{json,md}.
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

import psycopg2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import defer, task, threads

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.client.hub_client import HubClient  # noqa: E402
from components.auth import keygen  # noqa: E402
from components.usersync import messages, provision, message_signing  # noqa: E402
from tests.support.clients import token  # noqa: E402
from tests.support.databases import postgres_url  # noqa: E402
from tests.support.emulator import ENV, MotoServer  # noqa: E402
from tests.support.node import RouterNode, component, router_worker  # noqa: E402

from bench import usersync_signing, usersync_snapshot  # noqa: E402
from bench import report  # noqa: E402

POLLERS = 2
WATCH_INTERVAL = 2.0


class Master:
    """Direct SQL on the master table, one commit per change (blocking; run in a thread)."""

    def __init__(self, url):
        self.connection = psycopg2.connect(url)

    def add_users(self, names):
        with self.connection, self.connection.cursor() as cursor:
            for username in names:
                cursor.execute(
                    "INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, is_active,"
                    " date_joined, first_name) VALUES ('!', false, %s, '', '', false, true, now(), 'start')",
                    (username,))

    def change(self, username, first_name):
        """Commit one update; return ``(version, commit time)``."""
        with self.connection, self.connection.cursor() as cursor:
            cursor.execute("UPDATE auth_user SET first_name = %s WHERE username = %s", (first_name, username))
            cursor.execute("SELECT version FROM usersync_version WHERE username = %s", (username,))
            version = cursor.fetchone()[0]
        return version, time.time()

    def pending(self):
        with self.connection, self.connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM usersync_outbox WHERE sent_ms IS NULL")
            return cursor.fetchone()[0]


def in_queue(sqs, url):
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(value) for value in attributes["Attributes"].values())


def bare_publish(sns, sqs, count):
    """
    The relay's reference: ``count`` user-change messages sent with
    PublishBatch (10 per call, one call at a time, as the relay sends) to a
    fresh topic with the same fan-out (four subscribed queues), straight from
    boto3. Fire with messages/s; the topic and queues are removed after.
    """
    plan = provision.Plan("bare-" + uuid.uuid4().hex[:8], ["p1", "p2", "p3", "p4"])
    aws = provision.provision(sns, sqs, plan)
    signer = message_signing.Signer(Ed25519PrivateKey.generate())  # signed like the relay's, read by no bridge
    body = messages.encode("update", 1, {"username": "bare_publisher", "first_name": "x" * 12}, 0, signer)
    started = time.time()
    for start in range(0, count, 10):
        sns.publish_batch(TopicArn=aws["topic_arn"], PublishBatchRequestEntries=[
            {"Id": str(index), "Message": body,
             "MessageAttributes": messages.attributes("update", start + index + 1, "bare_publisher")}
            for index in range(min(10, count - start))])
    rate = count / (time.time() - started)
    for settings in aws["clients"].values():
        sns.unsubscribe(SubscriptionArn=settings["subscription_arn"])
        for url in (settings["queue_url"], settings["dead_letter_queue_url"]):
            sqs.delete_queue(QueueUrl=url)
    sns.delete_topic(TopicArn=aws["topic_arn"])
    return rate


def progress(text):
    print("[{}] {}".format(time.strftime("%H:%M:%S"), text), flush=True)


def drain_rate(marks, total):
    """Messages per second between 10% and 90% drained, from ``[(time, drained)]``."""
    low = next(t for t, drained in marks if drained >= 0.1 * total)
    high = next(t for t, drained in marks if drained >= 0.9 * total)
    return (0.8 * total) / max(high - low, 1e-6)


def bare_drain(sqs, url, total, loops):
    """receive_message(10) + delete_message_batch in ``loops`` threads until ``total`` are gone."""
    import threading
    done = [0]
    lock = threading.Lock()

    def loop():
        # stop on an empty queue, not on a count: under load moto redelivers messages whose
        # visibility ran out, so counting receives can reach ``total`` with messages left
        while True:
            with lock:
                if done[0] >= total and in_queue(sqs, url) == 0:
                    return
            try:
                response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                messages = response.get("Messages", [])
                if messages:
                    sqs.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                        for index, message in enumerate(messages)])
            except Exception as exc:  # the emulator under load: count nothing, go on
                print("bare drain: {}".format(exc))
                continue
            with lock:
                done[0] += len(messages)
    workers = [threading.Thread(target=loop) for _ in range(loops)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


@defer.inlineCallbacks
def watch_drain(reactor, sqs, urls, total):
    """Poll the queues until all are empty; fire with ``{url: [(time, drained)]}``."""
    marks = {url: [] for url in urls}
    while True:
        try:
            counts = yield threads.deferToThread(lambda: {url: in_queue(sqs, url) for url in urls})
        except Exception as exc:  # the emulator under load: look again
            print("watch: {}".format(exc))
            continue
        now = time.time()
        for url, count in counts.items():
            marks[url].append((now, total - count))
        if all(count == 0 for count in counts.values()):
            return marks
        # seldom: every look makes moto scan the whole queue, taking time from the drain it watches
        yield task.deferLater(reactor, WATCH_INTERVAL, lambda: None)


@defer.inlineCallbacks
def main(reactor, opts):
    from components.usersync.aws import make_client
    if opts.only == "signing":
        yield usersync_signing.phase(reactor, opts, prefix="signing-")
        return
    if opts.only == "snapshot":
        usersync_snapshot.write((yield usersync_snapshot.run(reactor, opts.snapshot_users)))
        return
    moto = yield MotoServer().start()
    # generous read timeouts: a deep queue in moto answers slowly (it scans every message per receive)
    sns, sqs = (make_client(service, moto.url, "us-east-1", read_timeout=120, pool=16, attempts=5)
                for service in ("sns", "sqs"))
    plan = provision.Plan("bench-" + uuid.uuid4().hex[:8], ["a", "b", "bare1", "bare2"])
    aws = yield threads.deferToThread(provision.provision, sns, sqs, plan)
    queues = {name: settings["queue_url"] for name, settings in aws["clients"].items()}
    master_url, client_b_url = postgres_url(None), postgres_url(None)
    client_a_url = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="bench-usersync-"), "client_a.db")
    env = dict(ENV, AWS_ENDPOINT_URL=moto.url, MASTER_DATABASE_URL=master_url, USERSYNC_POLLERS=str(POLLERS))
    # two node directories: the master signs with keygen's pair, the client node holds its public half
    signing_key, verify_key = keygen.usersync_keys(tempfile.mkdtemp(prefix="bench-usersync-keys-"))

    def clients_only(config):
        second = json.loads(json.dumps(component(config, "usersync_client")))
        second["id"] = "usersync_client_b"
        second["extra"].update(DATABASE_URL=client_b_url, SQS_QUEUE_URL=queues["b"], USERSYNC_PUSH="off")
        router_worker(config)["components"].append(second)
        return config

    master_node = RouterNode(name="bench-master", env=dict(env, SNS_TOPIC_ARN=aws["topic_arn"],
                                                           USERSYNC_SIGNING_KEY_FILE=signing_key))
    client_node = RouterNode(name="bench-clients", env=dict(env, SQS_QUEUE_URL=queues["a"], DATABASE_URL=client_a_url,
                                                            USERSYNC_VERIFY_KEY_FILES=verify_key),
                             transform=clients_only)
    sessions = []
    try:
        yield master_node.start()
        master = Master(master_url)
        users = ["bench_{}".format(index) for index in range(opts.users)]
        yield threads.deferToThread(master.add_users, users)

        # 1. burst
        progress("burst: committing {} changes on the master".format(opts.changes))

        def burst():
            started = time.time()
            for index in range(opts.changes):
                master.change(users[index % len(users)], "burst {}".format(index))
            return time.time() - started
        commit_seconds = yield threads.deferToThread(burst)
        relay_started = time.time() - commit_seconds
        while (yield threads.deferToThread(master.pending)):
            yield task.deferLater(reactor, 0.05, lambda: None)
        relay_seconds = time.time() - relay_started
        progress("relay: outbox empty after {:.0f} s ({:.0f} events/s)".format(
            relay_seconds, opts.changes / relay_seconds))
        total = opts.users + opts.changes
        while (yield threads.deferToThread(lambda: min(in_queue(sqs, queues[name]) for name in queues))) < total:
            yield task.deferLater(reactor, 0.05, lambda: None)
        bare_urls = [queues["bare1"], queues["bare2"]]
        progress("bare boto3 drain of two queues of {} messages".format(total))
        watching = watch_drain(reactor, sqs, bare_urls, total)
        for url in bare_urls:
            threads.deferToThread(bare_drain, sqs, url, total, POLLERS)
        bare_marks = yield watching
        bare = [drain_rate(bare_marks[url], total) for url in bare_urls]
        progress("bare drain: {:.1f} / {:.1f} msg/s; starting the client node's two bridges".format(*bare))
        watching = watch_drain(reactor, sqs, [queues["a"], queues["b"]], total)
        try:
            yield client_node.start()
        except Exception as exc:  # a node start can fail on a machine this busy: once more
            print("client node did not start ({}); starting it again".format(str(exc).splitlines()[0]))
            yield client_node.start()
        marks = yield watching
        bridge = {"a": drain_rate(marks[queues["a"]], total), "b": drain_rate(marks[queues["b"]], total)}
        progress("bridges: {a:.1f} / {b:.1f} changes/s; bare PublishBatch reference".format(**bridge))
        bare_publish_rate = yield threads.deferToThread(bare_publish, sns, sqs, opts.changes)
        progress("bare PublishBatch: {:.1f} msg/s; paced phase: {} changes at {:g}/s".format(
            bare_publish_rate, opts.paced, opts.rate))

        # 2. paced, with every user's session subscribed on the client node
        for name in ("bare1", "bare2"):
            yield threads.deferToThread(sns.unsubscribe, SubscriptionArn=aws["clients"][name]["subscription_arn"])
        events = {}
        for username in users:
            hub = HubClient(client_node.url, lambda username=username: token(username, "user"),
                            protocol_options={"openHandshakeTimeout": 0, "closeHandshakeTimeout": 0})
            session = yield hub.connect()
            sessions.append(hub)
            yield session.subscribe(
                lambda event, username=username: events.setdefault((username, event["seq"]), time.time()),
                "users.changed")
        commits = {}
        interval = 1.0 / opts.rate
        started = time.time()
        for index in range(opts.paced):
            username = users[index % len(users)]
            version, committed = yield threads.deferToThread(master.change, username, "paced {}".format(index))
            commits[(username, version)] = committed
            delay = started + (index + 1) * interval - time.time()
            if delay > 0:
                yield task.deferLater(reactor, delay, lambda: None)
        deadline = time.time() + 60
        while not set(commits) <= set(events) and time.time() < deadline:
            yield task.deferLater(reactor, 0.1, lambda: None)
        latencies = [(events[key] - committed) * 1000 for key, committed in commits.items() if key in events]
        results = {
            "changes": opts.changes, "users": opts.users, "pollers_per_client": POLLERS, "paced_rate": opts.rate, "paced_changes": opts.paced,
            "master_commits_per_s": opts.changes / commit_seconds,
            "relay_events_per_s": opts.changes / relay_seconds,
            "bare_publish_per_s": bare_publish_rate,
            "bare_drain_per_s": {"bare1": bare[0], "bare2": bare[1]},
            "bridge_applied_per_s": bridge,
            "bridge_vs_bare": min(bridge.values()) / (sum(bare) / len(bare)),
            "latency_ms": {"p50": report.percentile(latencies, 0.5), "p99": report.percentile(latencies, 0.99),
                           "max": max(latencies), "mean": statistics.mean(latencies)},
            "events_missing": len(set(commits) - set(events)),
            "samples": latencies,  # ms; report.save keeps them out of usersync.json
            "drain_marks": {name: [(t - marks[queues[name]][0][0], d) for t, d in marks[queues[name]]]
                            for name in ("a", "b")},
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "load_before": os.getloadavg()[0]},
        }
        master.connection.close()
    finally:
        for hub in sessions:
            yield hub.close()
        for node in (client_node, master_node):
            yield node.stop()
            node.cleanup()
        moto.stop()
    write(results)
    yield usersync_signing.phase(reactor, opts, prefix="signing-")
    usersync_snapshot.write((yield usersync_snapshot.run(reactor, opts.snapshot_users)))


def write(results):
    bare, bridge, latency = results["bare_drain_per_s"], results["bridge_applied_per_s"], results["latency_ms"]
    lines = [
        "# User sync: master commit -> SNS -> SQS -> client -> WAMP session",
        "",
        "{} changes over {} users, moto server on loopback, {} pollers per client; Python {}, {} CPUs "
        "(load {:.1f} at start, shared machine).".format(
            results["changes"], results["users"], results["pollers_per_client"], results["machine"]["python"],
            results["machine"]["cpus"], results["machine"]["load_before"]),
        "",
        "| measure | value |",
        "| --- | --- |",
        "| master commits (one per change, PostgreSQL) | {:.0f} /s |".format(results["master_commits_per_s"]),
        "| relay to SNS (PublishBatch), commit of the first change to the last one sent | {:.0f} events/s |".format(
            results["relay_events_per_s"]),
        "| bare boto3 PublishBatch to a topic with the same four queues | {:.0f} msg/s |".format(
            results["bare_publish_per_s"]),
        "| bare boto3 drain (receive 10 + batch delete), queue 1 / 2 | {:.0f} / {:.0f} msg/s |".format(
            bare["bare1"], bare["bare2"]),
        "| bridge applied, client a (SQLite) / client b (PostgreSQL) | {:.0f} / {:.0f} changes/s |".format(
            bridge["a"], bridge["b"]),
        "| bridge / bare (slower client vs mean bare) | {:.0%} (target >= 80%) |".format(results["bridge_vs_bare"]),
        "| commit -> event at the user's session, p50 / p99 ({} changes paced {:g}/s) | {:.0f} / {:.0f} ms |".format(
            results["paced_changes"], results["paced_rate"], latency["p50"], latency["p99"]),
        "| events missing | {} |".format(results["events_missing"]),
    ]
    report.save("usersync", "\n".join(lines) + "\n\n![usersync](usersync.png)\n", results)
    plt = report.pyplot()
    if plt is None:
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["bare 1", "bare 2", "client a", "client b"]
    left.bar(names, [bare["bare1"], bare["bare2"], bridge["a"], bridge["b"]],
             color=["#999999", "#999999", "#1f77b4", "#1f77b4"])
    left.axhline(0.8 * (bare["bare1"] + bare["bare2"]) / 2, color="red", linestyle="--", label="80% of bare")
    left.set_ylabel("messages / s")
    left.set_title("Drain rate of the same emulator")
    left.legend()
    ordered = sorted(results["samples"])
    right.plot(ordered, [index / len(ordered) for index in range(len(ordered))])
    right.set_xscale("log")
    right.set_xlabel("commit -> WAMP event (ms)")
    right.set_ylabel("fraction of changes")
    right.set_title("Latency (p50 {:.0f} ms, p99 {:.0f} ms)".format(latency["p50"], latency["p99"]))
    right.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(os.path.join(report.RESULTS, "usersync.png"), dpi=100)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=2000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--paced", type=int, default=600, help="changes in the latency phase")
    parser.add_argument("--rate", type=float, default=10.0, help="paced changes per second")
    parser.add_argument("--snapshot-users", type=int, default=10000, help="users of the new-client phase")
    parser.add_argument("--only", choices=["signing", "snapshot"], help="run one phase alone")
    usersync_signing.add_arguments(parser, prefix="signing-")
    opts = parser.parse_args()
    task.react(main, [opts])
