"""
RPC round trip and pub/sub delivery through the hub's node versus a bare
Crossbar router (anonymous, no authenticator, no components), in one run.

Both nodes run side by side; the same Python clients do the same work on
each, in alternating rounds, so machine noise hits both alike. In the hub's
node, the clients are authenticated users (JWT ticket, dynamic
authenticator, per-URI permissions) and the hub's components run; a
benchmark-only permission lets users use ``bench.*``.

    python bench/rpc_pubsub.py [--calls 2000] [--rounds 5]

Prints a table and writes bench/results/rpc_pubsub.{json,md}.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.client.hub_client import HubClient  # noqa: E402
from tests.support.clients import token  # noqa: E402
from tests.support.node import RouterNode, router_worker  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


def hub_config(config):
    """The hub's own config plus one permission: users may use bench.* (so both nodes run the same clients)."""
    realm = router_worker(config)["realms"][0]
    for role in realm["roles"]:
        if role["name"] == "user":
            role["permissions"].append({"uri": "bench.", "match": "prefix", "allow": ALL,
                                        "disclose": {"caller": False, "publisher": False}, "cache": True})
    return config


def bare_config(config):
    """A bare router: one realm, anonymous with every permission, no authenticator, no components."""
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "id": "router",
            "type": "router",
            "realms": [{"name": "reactive", "roles": [{"name": "anonymous", "permissions": [
                {"uri": "", "match": "prefix", "allow": ALL,
                 "disclose": {"caller": False, "publisher": False}, "cache": True}]}]}],
            "transports": [{"type": "web", "endpoint": {"type": "tcp", "port": "$PORT"},
                            "paths": {"ws": {"type": "websocket", "serializers": ["cbor", "msgpack", "json"]},
                                      "health": {"type": "json", "value": {"status": "ok"}}}}],
        }],
    }


@defer.inlineCallbacks
def connect(node, authenticated, sub):
    source = (lambda: token(sub, "user", ttl=3600)) if authenticated else None
    client = HubClient(node.url, source)
    session = yield client.connect()
    return client, session


@defer.inlineCallbacks
def rpc_round(caller, calls, payload):
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        yield caller.call("bench.echo", payload)
        samples.append(time.perf_counter() - started)
    return samples


@defer.inlineCallbacks
def pubsub_round(publisher, inbox, calls, payload):
    """Publish one event, wait for it at the subscriber, repeat: delivery latency per event."""
    samples = []
    for index in range(calls):
        waiter = defer.Deferred()
        inbox["waiter"] = waiter
        started = time.perf_counter()
        publisher.publish("bench.event", index, payload)
        yield waiter
        samples.append(time.perf_counter() - started)
    return samples


@defer.inlineCallbacks
def rpc_burst(caller, calls, payload):
    """``calls`` calls in flight at once: calls per second."""
    started = time.perf_counter()
    yield defer.gatherResults([caller.call("bench.echo", payload) for _ in range(calls)])
    return calls / (time.perf_counter() - started)


@defer.inlineCallbacks
def setup(node, authenticated):
    callee_client, callee = yield connect(node, authenticated, "bench-callee")
    caller_client, caller = yield connect(node, authenticated, "bench-caller")
    yield callee.register(lambda payload: payload, "bench.echo")
    inbox = {"waiter": None}

    def on_event(index, payload):
        waiter, inbox["waiter"] = inbox["waiter"], None
        if waiter is not None:
            waiter.callback(index)
    yield callee.subscribe(on_event, "bench.event")
    return {"clients": [callee_client, caller_client], "caller": caller, "inbox": inbox}


def summary(samples):
    ordered = sorted(samples)
    return {"median_us": statistics.median(ordered) * 1e6,
            "p99_us": ordered[int(len(ordered) * 0.99) - 1] * 1e6,
            "mean_us": statistics.fmean(ordered) * 1e6}


@defer.inlineCallbacks
def main(reactor, options):
    payload = {"value": "12:34:56", "seq": 1_800_000_000_000, "ts": 1_800_000_000_000}
    nodes = {"bare": RouterNode(name="bench-bare", transform=bare_config),
             "hub": RouterNode(name="bench-hub", transform=hub_config)}
    try:
        for node in nodes.values():
            yield node.start()
        rigs = {"bare": (yield setup(nodes["bare"], False)), "hub": (yield setup(nodes["hub"], True))}
        samples = {name: {"rpc": [], "pubsub": [], "burst": []} for name in nodes}
        for name, rig in rigs.items():  # warm up
            yield rpc_round(rig["caller"], 200, payload)
            yield pubsub_round(rig["caller"], rig["inbox"], 200, payload)
        for round_number in range(options.rounds):
            order = ["bare", "hub"] if round_number % 2 == 0 else ["hub", "bare"]
            for name in order:
                rig = rigs[name]
                samples[name]["rpc"] += (yield rpc_round(rig["caller"], options.calls, payload))
                samples[name]["pubsub"] += (yield pubsub_round(rig["caller"], rig["inbox"], options.calls, payload))
                for _ in range(5):
                    samples[name]["burst"].append((yield rpc_burst(rig["caller"], options.calls // 2, payload)))
            print("round {}/{} done".format(round_number + 1, options.rounds), file=sys.stderr)
        results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                   "calls_per_round": options.calls, "rounds": options.rounds, "nodes": {}}
        for name in nodes:
            results["nodes"][name] = {
                "rpc": summary(samples[name]["rpc"]),
                "pubsub": summary(samples[name]["pubsub"]),
                "rpc_burst_calls_per_s": statistics.median(samples[name]["burst"]),
            }
        bare, hub = results["nodes"]["bare"], results["nodes"]["hub"]
        results["overhead"] = {
            "rpc_median": hub["rpc"]["median_us"] / bare["rpc"]["median_us"] - 1,
            "pubsub_median": hub["pubsub"]["median_us"] / bare["pubsub"]["median_us"] - 1,
            "rpc_burst_throughput": 1 - hub["rpc_burst_calls_per_s"] / bare["rpc_burst_calls_per_s"],
        }
        for rig in rigs.values():
            for client in rig["clients"]:
                yield client.close()
    finally:
        for node in nodes.values():
            yield node.stop()
            node.cleanup()
    write(results)


def write(results):
    os.makedirs(RESULTS, exist_ok=True)
    bare, hub, overhead = results["nodes"]["bare"], results["nodes"]["hub"], results["overhead"]
    lines = [
        "# RPC and pub/sub: hub node vs bare router",
        "",
        "{} rounds x {} sequential operations per node, alternating; Python {}, {} CPUs.".format(
            results["rounds"], results["calls_per_round"], results["machine"]["python"], results["machine"]["cpus"]),
        "",
        "| measure | bare router | hub node | hub overhead |",
        "| --- | --- | --- | --- |",
        "| RPC round trip, median | {:.0f} µs | {:.0f} µs | {:+.1%} |".format(
            bare["rpc"]["median_us"], hub["rpc"]["median_us"], overhead["rpc_median"]),
        "| RPC round trip, p99 | {:.0f} µs | {:.0f} µs | |".format(bare["rpc"]["p99_us"], hub["rpc"]["p99_us"]),
        "| publish -> event, median | {:.0f} µs | {:.0f} µs | {:+.1%} |".format(
            bare["pubsub"]["median_us"], hub["pubsub"]["median_us"], overhead["pubsub_median"]),
        "| publish -> event, p99 | {:.0f} µs | {:.0f} µs | |".format(
            bare["pubsub"]["p99_us"], hub["pubsub"]["p99_us"]),
        "| RPC burst throughput | {:.0f} calls/s | {:.0f} calls/s | {:+.1%} |".format(
            bare["rpc_burst_calls_per_s"], hub["rpc_burst_calls_per_s"], -overhead["rpc_burst_throughput"]),
        "",
        "Target: the hub adds under 10% per call once connected.",
    ]
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(RESULTS, "rpc_pubsub.md"), "w") as handle:
        handle.write(table + "\n")
    with open(os.path.join(RESULTS, "rpc_pubsub.json"), "w") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    opts = parser.parse_args()
    task.react(main, [opts])
