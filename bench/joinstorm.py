"""
Join storm: many authenticated sessions joining at once, then all of them
dropped and rejoining at once (what a node sees when a network blip or a
proxy restart sends every browser back together), against a node with the
wire protections on: the authentication deadline and per-address cap
(components/node/patches/auth_deadline.py) and the session bounds
(session_bounds, authcache_bound, send_bound).

For each target node (``hub``: the dev node; ``proxies``: the production
client node with proxy workers) and each wave (``join``, then ``rejoin``
right after the first wave's connections are killed): every session
connects with no pacing, authenticates with its own JWT and subscribes
time.tic. Prints and writes per wave: how many subscribed, how many were
refused (WAMP ABORT, failed upgrade or closed before subscribing) and why,
the time until all were subscribed, the router/proxy memory and the
node log lines of the bounds and deadlines (there must be none). The load
clients are bench/fanout.py's native epoll clients (``--setup`` there
builds them), 1,000 connections per process.

    python bench/joinstorm.py [--count 4000] [--targets hub,proxies] [--output joinstorm]

Writes bench/results/<output>.{md,json}.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

import fanout  # noqa: E402
import report  # noqa: E402

# no pacing: every connection of a client process is opened at once
STORM_RATE = 1000000
WAVES = ("join", "rejoin")
# node log lines that mean a protection acted on a session of the storm
PROTECTION_LINES = ("send queue bound", "not authenticated within", "pending connections from", "session_limit",
                    "refuses to start")
HEADER = ["| target | wave | subscribed | refused | refusal reasons | all subscribed after s | "
          "server RSS MB after | protection log lines |",
          "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |"]


def wave(server, url, count, token_file, timeout):
    """One storm of ``count`` sessions: subscribed, refused and why, seconds until all subscribed, RSS."""
    log_offset = len(server.node.log_text())
    started = time.monotonic()
    clients = fanout.Clients(url, count, token_file, "native")
    all_ready = clients.wait_ready(timeout)
    seconds = round(time.monotonic() - started, 1)
    subscribed = clients.subscribed()
    progress = clients._latest("progress")
    progress.update(clients._latest("ready"))
    failed = sum(message.get("failed", 0) for message in progress.values())
    # every close during a storm is a session lost (no client here leaves on its own); failed ones count too
    closed = sum(message.get("closed", 0) for message in progress.values())
    with clients.lock:
        reasons = sorted({str(message.get("reason")) for _, message in clients.lines if message["type"] == "abort"})
    if closed > failed:
        reasons.append("closed by the server")
    rss = fanout._rss(server.processes())
    lines = [line for line in server.node.log_text()[log_offset:].splitlines()
             if any(marker in line for marker in PROTECTION_LINES)]
    return clients, {"target": server.name, "count": count, "subscribed": subscribed,
                     "refused": max(failed, closed), "failed": failed, "closed": closed,
                     "reasons": reasons, "all_subscribed": all_ready, "seconds": seconds if all_ready else None,
                     "server_rss_mb": round(rss / 1048576.0), "protection_lines": len(lines),
                     "protection_samples": lines[:5], "load_avg": [round(value, 2) for value in fanout.load()]}


def row(result, wave_name):
    return "| {target} | {wave} | {subscribed}/{count} | {refused} | {why} | {seconds} | {server_rss_mb} | " \
           "{protection_lines} |".format(wave=wave_name, why=", ".join(result["reasons"]) or "-",
                                         **{key: value for key, value in result.items() if key != "wave"})


def run_target(name, count, token_file, timeout):
    server = fanout.Server(name)
    results = []
    previous = None
    try:
        url = server.start(2)
        for wave_name in WAVES:
            if previous is not None:
                previous.stop()  # SIGKILL: every connection of the last wave drops at once
            previous, result = wave(server, url, count, token_file, timeout)
            result["wave"] = wave_name
            results.append(result)
            print(row(result, wave_name), flush=True)
    finally:
        if previous is not None:
            previous.stop()
        server.stop()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--targets", default="hub,proxies")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a wave may take to subscribe all")
    parser.add_argument("--output", default="joinstorm")
    args = parser.parse_args(argv)
    if fanout.needs_build():
        fanout.setup(ws=False, build=True)
    fanout.raise_open_files()
    fanout.CONNECT_RATE = STORM_RATE  # read by fanout.Clients for each client process
    scratch = os.path.join(report.RESULTS, "joinstorm.tmp")
    os.makedirs(scratch, exist_ok=True)
    token_file = fanout._tokens(args.count, scratch)
    started_load = fanout.load()
    print("\n".join(HEADER), flush=True)
    results = []
    try:
        for name in args.targets.split(","):
            results.extend(run_target(name, args.count, token_file, args.timeout))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    commits = subprocess.run(["git", "-C", fanout.REPO, "log", "--oneline", "-1"], capture_output=True,
                             text=True).stdout.strip()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": platform.platform(), "cpus": os.cpu_count(),
            "count": args.count, "commit": commits, "load_avg_start": started_load, "load_avg_end": fanout.load()}
    text = "\n".join([
        "# Join storm ({})".format(meta["date"]), "",
        "{} sessions (JWT ticket, subscribe time.tic) connecting with no pacing, then killed and rejoining "
        "at once; {} CPUs, {}; at {}. Load average at start {}, at end {} (the machine is shared).".format(
            args.count, meta["cpus"], meta["machine"], commits, ", ".join("{:.2f}".format(v) for v in started_load),
            ", ".join("{:.2f}".format(v) for v in meta["load_avg_end"])), "",
        "Protections on (defaults unless the environment sets them: WAMP_AUTH_DEADLINE={}): WAMP_AUTH_DEADLINE, WAMP_PENDING_PER_ADDRESS (loopback is exempt, and every "
        "client here is on 127.0.0.1), SESSION_MAX_SUBSCRIPTIONS, SESSION_MAX_REGISTRATIONS, "
        "SESSION_MAX_URI_LENGTH, SESSION_SEND_QUEUE_LIMIT, AUTHORIZATION_CACHE_SIZE. \"refused\": WAMP ABORT, "
        "failed upgrade, or closed before subscribing. \"protection log lines\": node log lines of those "
        "protections during the wave (their log is rate-limited: fewer lines than closes).".format(
            os.environ.get("WAMP_AUTH_DEADLINE", "default")), ""] + HEADER + [row(result, result["wave"]) for result in results]) + "\n"
    report.save(args.output, text, {"meta": meta, "results": results})
    return 0 if all(result["all_subscribed"] and not result["refused"] for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
