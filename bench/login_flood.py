"""
How long a correct login waits while others flood ``/auth/login`` with wrong
passwords, on one dev node reached "through a proxy" (this script, from
127.0.0.1 with ``X-Forwarded-For``, ``TRUSTED_PROXIES=127.0.0.1``), users
at the default PBKDF2 cost:

- ``accounts``: ``--attackers`` wrong logins at once for one account, each
  from its own address; ``--after`` seconds later (0.3) the account's owner
  logs in from another address, following ``Retry-After`` on 429;
- ``quiet``: the same login with nobody else trying (the baseline);
- ``burst``: ``--burst`` wrong logins at once from one address (unknown
  names, each still one derivation); ``--after`` seconds later another client logs in to its own
  account (one attempt).

- ``stream``: a wrong login for one account every 0.25 s, each from a new
  address, for ``--stream`` seconds; 2 s in, the owner logs in from its own
  address, following ``Retry-After`` on 429.

Each scenario runs ``--runs`` times on fresh accounts and addresses.

    python bench/login_flood.py [--attackers 40] [--burst 10] [--runs 3]

Prints the victim's seconds (first attempt to 200) and its answers.
"""

import argparse
import os
import statistics
import sys
import time

from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.auth.test_login_limits import add_full_cost_user, flood_and_log_in, login_through_proxy  # noqa: E402
from tests.support.node import RouterNode  # noqa: E402
from tests.support.users import add_users  # noqa: E402

PASSWORD = "right-password-1"


@defer.inlineCallbacks
def stream_and_log_in(reactor, url, owner, run, duration):
    """The ``stream`` scenario: the owner's answers, seconds to its last one, the attackers' answers."""
    sent = []

    def attack():
        number = len(sent)
        sent.append(login_through_proxy(url, owner, "wrong", "100.{}.{}.{}".format(run + 64, number // 200,
                                                                                 number % 200 + 1)))
    loop = task.LoopingCall(attack)
    loop.start(0.25)
    yield task.deferLater(reactor, 2.0, lambda: None)
    started, codes = time.monotonic(), []
    while len(codes) < 20:
        code, retry = yield login_through_proxy(url, owner, PASSWORD, "203.0.{}.99".format(run + 1))
        codes.append(code)
        if code != 429:
            break
        yield task.deferLater(reactor, max(retry, 1), lambda: None)
    took = time.monotonic() - started
    yield task.deferLater(reactor, max(0.0, duration - 2.0 - took), lambda: None)
    loop.stop()
    answers = yield defer.gatherResults(sent)
    return codes, took, [code for code, _ in answers]


@defer.inlineCallbacks
def main(reactor, options):
    node = RouterNode(name="login-flood", env={"TRUSTED_PROXIES": "127.0.0.1", "LOGIN_BURST": str(options.burst + 5)})
    try:
        yield node.start()
        yield add_users(node, [("seed", "Seed", False)], PASSWORD)   # the tables
        for scenario in options.scenarios.split(","):
            seconds = []
            for run in range(options.runs):
                owner = "{}{}".format(scenario, run)
                yield add_full_cost_user(node, owner, PASSWORD)
                if scenario == "quiet":
                    attacks = []
                elif scenario == "accounts":
                    attacks = [(owner, "198.{}.{}.{}".format(run + 1, number // 200, number % 200 + 1))
                               for number in range(options.attackers)]
                else:
                    attacks = [("nobody{}-{}".format(run, number), "198.51.{}.7".format(run + 1))
                               for number in range(options.burst)]
                if scenario == "stream":
                    victim, took, attackers = yield stream_and_log_in(reactor, node.http, owner, run, options.stream)
                    seconds.append(took)
                    print("stream run {}: victim {} after {:.2f} s; attackers {}".format(
                        run, victim, took, {code: attackers.count(code) for code in set(attackers)}))
                    continue
                attackers, victim, took = yield flood_and_log_in(
                    node.http, attacks, owner, PASSWORD, "203.0.{}.9".format(run + 1),
                    tries=10 if scenario == "accounts" else 1, after=options.after)
                seconds.append(took)
                print("{} run {}: victim {} after {:.2f} s; attackers {}".format(
                    scenario, run, victim, took, {code: attackers.count(code) for code in set(attackers)}))
            print("{}: victim median {:.2f} s, max {:.2f} s".format(scenario, statistics.median(seconds), max(seconds)))
    finally:
        yield node.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attackers", type=int, default=40)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenarios", default="quiet,accounts,burst,stream")
    parser.add_argument("--stream", type=float, default=20.0, help="seconds of the stream scenario")
    parser.add_argument("--after", type=float, default=0.3, help="seconds from the flood to the victim's login")
    task.react(main, [parser.parse_args()])
