"""
Convergence of a new client: how long a client added to a running master
with ``--users`` users (10,000 by default) takes, by itself, to hold all of
them: it hears the master's beacon, finds every number missing, asks for a
snapshot on the request queue, and applies the snapshot the master queues.

One run on this machine against a moto server: a master node (PostgreSQL,
users inserted before it first starts, its initial snapshot relayed to a
throwaway queue that is then removed), then a new client node (SQLite).
Measured from the client node's start to the last user in its table, with
the split: start -> snapshot requested (the master's log) -> converged; and
the relay's rate for the snapshot's events.

    python bench/usersync_snapshot.py [--users 10000]

Prints a table and writes bench/results/usersync_snapshot.{json,md}.
``bench/usersync.py --snapshot-users N`` runs it after its own phases.
"""

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import uuid

import psycopg2
import psycopg2.extras
from twisted.internet import defer, task, threads

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.auth import keygen  # noqa: E402
from components.usersync import provision  # noqa: E402
from tests.support.databases import postgres_url  # noqa: E402
from tests.support.emulator import ENV, MotoServer  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402
from tests.support.split import without  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SCHEMA = ("CREATE TABLE auth_user (id SERIAL PRIMARY KEY, password VARCHAR(128) NOT NULL, last_login TIMESTAMPTZ NULL,"
          " is_superuser BOOLEAN NOT NULL, username VARCHAR(150) UNIQUE NOT NULL, first_name VARCHAR(150) NOT NULL,"
          " last_name VARCHAR(150) NOT NULL, email VARCHAR(254) NOT NULL, is_staff BOOLEAN NOT NULL,"
          " is_active BOOLEAN NOT NULL, date_joined TIMESTAMPTZ NOT NULL)")


def progress(text):
    print("[{}] {}".format(time.strftime("%H:%M:%S"), text), flush=True)


def existing_users(url, count):
    """A Django-shaped user table with ``count`` users, before the hub ever ran on the database."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(SCHEMA)
        psycopg2.extras.execute_values(
            cursor, "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined) VALUES %s",
            [("!", False, "snap{:05d}".format(index), "First {}".format(index), "", "", False, True, "2026-01-01")
             for index in range(count)], page_size=1000)
    connection.close()


def scalar(url, sql):
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        connection.close()


def client_count(path):
    import sqlite3
    try:
        connection = sqlite3.connect(path, timeout=10)
        try:
            return connection.execute("SELECT COUNT(*) FROM auth_user").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error:
        return 0


@defer.inlineCallbacks
def wait_for(reactor, check, what, timeout, interval=0.5):
    deadline = time.time() + timeout
    while True:
        value = yield threads.deferToThread(check)
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("{} not after {} s".format(what, timeout))
        yield task.deferLater(reactor, interval, lambda: None)


@defer.inlineCallbacks
def run(reactor, users):
    """The measurement; fires with the results dict."""
    from components.usersync.aws import make_client
    moto = yield MotoServer().start()
    sns, sqs = (make_client(service, moto.url, "us-east-1", read_timeout=120, pool=8, attempts=5)
                for service in ("sns", "sqs"))
    topic = "snapbench-" + uuid.uuid4().hex[:8]
    keys = tempfile.mkdtemp(prefix="bench-snapshot-keys-")
    signing_key, verify_key = keygen.usersync_keys(keys)
    master_url = postgres_url(None)
    client_dir = tempfile.mkdtemp(prefix="bench-snapshot-")
    client_path = os.path.join(client_dir, "client.db")
    env = dict(ENV, AWS_ENDPOINT_URL=moto.url, USERSYNC_PROVISION="on", USERSYNC_TOPIC_NAME=topic,
               USERSYNC_BEACON="1", USERSYNC_GAP_GRACE="1", USERSYNC_WAIT="1", USERSYNC_RELAY_BATCH="500")
    master = RouterNode(name="bench-snap-master", env=dict(env, MASTER_DATABASE_URL=master_url,
                                                           USERSYNC_SIGNING_KEY_FILE=signing_key),
                        transform=without("usersync_client"))
    client = RouterNode(name="bench-snap-client", env=dict(env, DATABASE_URL="sqlite:///" + client_path,
                                                           USERSYNC_CLIENT_NAME="new", USERSYNC_VERIFY_KEY_FILES=verify_key),
                        transform=without("usersync_master"))
    try:
        progress("{} users in the master's table".format(users))
        yield threads.deferToThread(existing_users, master_url, users)
        # a throwaway subscriber takes the initial snapshot, as an earlier client would have
        sink = yield threads.deferToThread(provision.provision, sns, sqs, provision.Plan(topic, ["sink"]))
        yield master.start()
        progress("master started; relaying its initial snapshot to a throwaway queue")
        yield wait_for(reactor, lambda: scalar(master_url, "SELECT COUNT(*) = 0 FROM usersync_outbox WHERE sent_ms IS NULL")
                       and scalar(master_url, "SELECT COUNT(*) FROM usersync_outbox") > users,
                       "initial snapshot sent", timeout=3600, interval=2)
        subscription = sink["clients"]["sink"]["subscription_arn"]
        yield threads.deferToThread(sns.unsubscribe, SubscriptionArn=subscription)
        yield threads.deferToThread(sqs.delete_queue, QueueUrl=sink["clients"]["sink"]["queue_url"])
        high = yield threads.deferToThread(scalar, master_url, "SELECT high FROM usersync_relay_state")
        progress("initial snapshot sent ({} events); starting a new client".format(high))
        started = time.time()
        yield client.start()
        node_up = time.time() - started
        requested = yield wait_for(reactor, lambda: "snapshot requested by new" in master.log_text() and time.time(),
                                   "snapshot request", timeout=600, interval=0.2)
        requested -= started
        progress("snapshot requested after {:.1f} s".format(requested))
        done = yield wait_for(reactor, lambda: client_count(client_path) >= users and time.time(),
                              "client converged", timeout=7200, interval=1)
        converged = done - started
        line = next((line for line in master.log_text().splitlines() if "snapshot requested by new" in line), "")
        found = re.search(r"queued (\d+) users, (\d+) deletes, (\d+) credential", line)
        events = sum(int(value) for value in found.groups()) + 1 if found else None
        progress("converged after {:.1f} s".format(converged))
        return {
            "users": users, "snapshot_events": events, "client_node_start_s": node_up,
            "start_to_request_s": requested, "start_to_converged_s": converged,
            "request_to_converged_s": converged - requested,
            "snapshot_events_per_s": (events / (converged - requested)) if events else None,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "load_before": os.getloadavg()[0]},
        }
    finally:
        for node in (client, master):
            yield node.stop()
            node.cleanup()
        moto.stop()
        shutil.rmtree(keys, True)
        shutil.rmtree(client_dir, True)


def write(results):
    os.makedirs(RESULTS, exist_ok=True)
    lines = [
        "# User sync: a new client converges on a master's {:,} users".format(results["users"]),
        "",
        "One master node (PostgreSQL) and a new client node (SQLite) on one machine, moto server on loopback;"
        " Python {}, {} CPUs (load {:.1f} at start, shared machine).".format(
            results["machine"]["python"], results["machine"]["cpus"], results["machine"]["load_before"]),
        "",
        "| measure | value |",
        "| --- | --- |",
        "| client node start (crossbar start until the router is ready) | {:.1f} s |".format(
            results["client_node_start_s"]),
        "| client start -> snapshot requested (beacon heard, grace 1 s) | {:.1f} s |".format(
            results["start_to_request_s"]),
        "| snapshot requested -> last user in the client's table | {:.1f} s |".format(
            results["request_to_converged_s"]),
        "| client start -> converged, {:,} users | {:.1f} s |".format(results["users"],
                                                                      results["start_to_converged_s"]),
        "| snapshot events (users, deletes, credential versions, end marker) | {} |".format(
            results["snapshot_events"]),
        "| snapshot events relayed and applied | {:.0f} /s |".format(results["snapshot_events_per_s"] or 0),
    ]
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(RESULTS, "usersync_snapshot.md"), "w") as handle:
        handle.write(table + "\n")
    with open(os.path.join(RESULTS, "usersync_snapshot.json"), "w") as handle:
        json.dump(results, handle, indent=1)


@defer.inlineCallbacks
def main(reactor, opts):
    results = yield run(reactor, opts.users)
    write(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10000)
    task.react(main, [parser.parse_args()])
