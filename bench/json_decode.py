"""
What the ``json_decode`` patch (components/node/patches/json_decode.py)
saves on every WAMP JSON message a worker decodes.

autobahn's ``JsonObjectSerializer.unserialize`` as shipped (a decoder with a
binary-string hook, hence Python's pure Python scanner) against the patched
one (the C scanner for a payload without ``\\u0000``), on the same payloads
in one process: a small CALL as a page sends it, an app event with a
structured 1 KB payload, a 64 KiB history-sized event of mixed values, the
attacker's frame of the wire review (1 MiB of ``0,``: 520,000 numbers in one
CALL), and an event holding a binary value (which the patch hands back to
autobahn: the cost of its check). Rounds alternate between the two decoders
after one uncounted warm-up round each; the figure is the median of the
rounds in CPU time of the process (``time.process_time_ns``).

    python bench/json_decode.py [--rounds 5] [--budget 0.3]

Prints a table and writes bench/results/json_decode.{md,json}.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import txaio  # noqa: E402

txaio.use_twisted()

from autobahn.wamp.serializer import JsonObjectSerializer  # noqa: E402

from bench.report import save  # noqa: E402
from components.node.patches import json_decode  # noqa: E402


def payloads():
    """``{name: bytes}``: the messages timed."""
    plain = JsonObjectSerializer()
    order = {"id": 4711, "customer": {"name": "Ada Lovelace", "city": "London"}, "paid": True,
             "lines": [{"sku": "A-{}".format(index), "qty": index, "price": 9.5 + index} for index in range(12)]}
    mixed = [{"seq": index, "ts": 1765000000000 + index, "value": index * 0.25, "label": "reading {}".format(index),
              "ok": index % 2 == 0} for index in range(800)]
    return {
        "CALL time.get (small)": plain.serialize([48, 17, {}, "time.get", [], {}]),
        "app event, 1 KB order": plain.serialize([16, 21, {}, "app.shop.orders", [order], {}]),
        "64 KiB event, 800 readings": plain.serialize([16, 22, {}, "app.shop.readings", mixed, {}]),
        "1 MiB of numbers (attack)": b'[48,1,{},"time.get",[' + b"0," * 524286 + b"0]]",
        "1 KB with a binary value": plain.serialize([16, 23, {}, "app.shop.blob", [b"\x00" * 600], {}]),
    }


def decoders():
    class Patched(JsonObjectSerializer):
        pass
    Patched.unserialize = JsonObjectSerializer.unserialize
    json_decode.install(Patched)
    return {"autobahn": JsonObjectSerializer(), "patched": Patched()}


def one_round(serializer, payload, budget):
    """CPU microseconds per decode, decoding ``payload`` repeatedly for about ``budget`` CPU seconds."""
    calls, started = 0, time.process_time_ns()
    while True:
        serializer.unserialize(payload)
        calls += 1
        spent = time.process_time_ns() - started
        if spent >= budget * 1e9:
            return spent / calls / 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.3, help="CPU seconds per round and decoder")
    args = parser.parse_args(argv)
    timed, chosen = payloads(), decoders()
    for name, payload in timed.items():
        assert chosen["patched"].unserialize(payload) == chosen["autobahn"].unserialize(payload), name
    rounds = {(name, decoder): [] for name in timed for decoder in chosen}
    for name, payload in timed.items():
        for decoder, serializer in chosen.items():
            one_round(serializer, payload, args.budget / 5)  # warm-up
    for _ in range(args.rounds):
        for name, payload in timed.items():
            for decoder, serializer in chosen.items():
                rounds[(name, decoder)].append(one_round(serializer, payload, args.budget))
    lines = ["# WAMP JSON decoding: autobahn's decoder and the json_decode patch", "",
             "`bench/json_decode.py`: `JsonObjectSerializer.unserialize` as autobahn ships it (pure Python "
             "scanner, forced by its binary-string hook) and with the `json_decode` patch (the C scanner when the "
             "payload has no `\\u0000`), on the same payloads in one process; {} rounds alternating after a "
             "warm-up, each about {} CPU s per decoder; median of the rounds in the process's CPU time.".format(
                 args.rounds, args.budget), "",
             "| payload | bytes | autobahn µs | patched µs | patched / autobahn |",
             "| --- | ---: | ---: | ---: | ---: |"]
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "rounds": args.rounds, "budget_s": args.budget, "payloads": {}}
    for name, payload in timed.items():
        slow = statistics.median(rounds[(name, "autobahn")])
        fast = statistics.median(rounds[(name, "patched")])
        lines.append("| {} | {:,} | {:,.1f} | {:,.1f} | {:.3f} |".format(name, len(payload), slow, fast, fast / slow))
        results["payloads"][name] = {"bytes": len(payload), "autobahn_us": round(slow, 2),
                                     "patched_us": round(fast, 2), "ratio": round(fast / slow, 4),
                                     "rounds_us": {decoder: [round(value, 2) for value in rounds[(name, decoder)]]
                                                   for decoder in chosen}}
    lines += ["", "Machine: {} CPUs, Python {} (shared with other runs).".format(
        os.cpu_count(), platform.python_version()), ""]
    save("json_decode", "\n".join(lines), results)
    return json.dumps(results)


if __name__ == "__main__":
    main()
