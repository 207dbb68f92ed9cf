"""
What the per-session publication bound (components/node/patches/session_bounds.py,
``bounded_publish``) adds to every PUBLISH a router worker handles.

A stub broker whose own ``processPublish`` does nothing, called through a
method lookup as Crossbar's router calls it, against the same handler
wrapped by ``bounded_publish``: for a client session (role ``app``) whose
bucket never runs dry (every publication taken), a client session past its
bucket (every publication dropped), and a ``backend`` session (not
metered). One publication message reused, no acknowledgement. Rounds
alternate between the variants in one process, after one uncounted
warm-up round each; the figure per variant is the median of its rounds,
in CPU time of the process (``time.process_time_ns``: the shared machine's
other work is not counted). The stub's time is the call alone: the added
nanoseconds are the bound's whole cost, the ratio is against an empty
handler (Crossbar's real ``processPublish`` authorizes, matches
subscriptions and sends, so the share there is far smaller).

    python bench/publish_bound.py [--calls 200000] [--rounds 5] [--before REV]

``--before REV`` adds the patch's ``bounded_publish`` as it was at git
revision REV (e.g. the commit before the rate bound: its URI check alone),
for a client session.

Prints a table and writes bench/results/publish_bound.{md,json}.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.report import save  # noqa: E402
from components.node.patches import session_bounds  # noqa: E402


class _Router:
    def send(self, session, msg):
        pass


class _Session:
    def __init__(self, authrole):
        self._authrole, self._authid, self._session_id, self._transport = authrole, "bench", 1, object()


def _handler(self, session, publish):
    return None


def _broker(handler):
    return type("Broker", (), {"processPublish": handler, "_router": _Router()})()


def variants():
    """``{variant: (broker, session)}``: the unwrapped handler, and the wrapped one for three kinds of session."""
    # taken: a rate no run reaches; dropped: one token, then a rate that gives no other in the run
    taken = _broker(session_bounds.bounded_publish(
        _handler, session_bounds.SessionBounds(publish_rate=1e12, publish_burst=10 ** 9)))
    dropped = _broker(session_bounds.bounded_publish(
        _handler, session_bounds.SessionBounds(publish_rate=1e-9, publish_burst=1)))
    return {"unwrapped": (_broker(_handler), _Session("app")),
            "client, taken": (taken, _Session("app")),
            "client, dropped": (dropped, _Session("app")),
            "backend (not metered)": (taken, _Session("backend"))}


def module_at(revision):
    """components/node/patches/session_bounds.py as it was at git ``revision``, loaded as a module of its own."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = subprocess.run(["git", "show", "{}:components/node/patches/session_bounds.py".format(revision)],
                            cwd=root, check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("session_bounds_at_{}".format(revision))
    exec(compile(source, module.__name__, "exec"), module.__dict__)
    return module


def one_round(broker, session, publish, calls):
    """CPU nanoseconds of this process per ``broker.processPublish(session, publish)`` over ``calls`` calls
    (process time: the time the shared machine runs other work is not counted)."""
    started = time.process_time_ns()
    for _ in range(calls):
        broker.processPublish(session, publish)
    return (time.process_time_ns() - started) / calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", help="git revision whose bounded_publish to time too (client session)")
    args = parser.parse_args(argv)
    from autobahn.wamp import message

    publish = message.Publish(1, "app.shop.orders", args=[1])
    variants_now = variants()
    if args.before:
        before = module_at(args.before)
        variants_now["client, patch at {}".format(args.before)] = (
            _broker(before.bounded_publish(_handler, before.SessionBounds())), _Session("app"))
    rounds = {name: [] for name in variants_now}
    for broker, session in variants_now.values():  # warm-up, not counted: a session's bucket is made here
        one_round(broker, session, publish, max(1, args.calls // 10))
    for _ in range(args.rounds):
        for name, (broker, session) in variants_now.items():
            rounds[name].append(one_round(broker, session, publish, args.calls))
    base = statistics.median(rounds["unwrapped"])
    lines = ["# Per-session publication bound: cost per PUBLISH", "",
             "`bench/publish_bound.py`: a stub broker's `processPublish` (an empty handler) called {:,} times per "
             "round, {} rounds alternating between the variants in one process after a warm-up; median of the rounds, "
             "in the process's CPU time (`time.process_time_ns`). The added "
             "time is the bound's whole cost per publication: for a client session one clock read "
             "(`time.monotonic`), the bucket's arithmetic and no allocation but the floats; for every session the "
             "URI length check the patch made before (one read of autobahn's `Publish.topic` property); Crossbar's real handler (authorization, subscription match, dispatch) "
             "is far slower than the empty one, so the ratio there is far closer to 1 (for scale: publish -> event "
             "through a dev node, bench/results/rpc_pubsub.md).".format(
                 args.calls, args.rounds), "",
             "| variant | ns per publish (median) | rounds (ns) | added ns | ratio to unwrapped |",
             "| --- | ---: | --- | ---: | ---: |"]
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "calls": args.calls, "rounds": args.rounds, "variants": {}}
    for name, samples in rounds.items():
        median = statistics.median(samples)
        lines.append("| {} | {:.0f} | {} | {:+.0f} | {:.2f} |".format(
            name, median, " / ".join("{:.0f}".format(value) for value in samples), median - base, median / base))
        results["variants"][name] = {"ns_per_publish": round(median, 1), "rounds_ns": [round(v, 1) for v in samples]}
    lines += ["", "Machine: {} CPUs, Python {} (shared with other runs).".format(
        os.cpu_count(), platform.python_version()), ""]
    save("publish_bound", "\n".join(lines), results)


if __name__ == "__main__":
    main()
