"""
Login limits that cannot be turned against users (issue 20, item 4): the
client address behind ``TRUSTED_PROXIES``, the per-account progressive
delay (on a test clock), and, over the wire against a real node, the limit
behind a proxy with and without ``TRUSTED_PROXIES`` and the per-account
delay that slows an attack from many addresses without locking the account.

Over the wire the test client plays the proxy: it connects from 127.0.0.1
and sends the ``X-Forwarded-For`` / ``Forwarded`` a proxy would send.
"""

import ipaddress
import os
import re
import time

import yaml
from twisted.internet import defer, task
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

from components.auth.directory import Directory
from components.auth.loginlimits import AccountDelay
from components.core import core_settings
from components.core.clientaddress import FORWARDED, X_FORWARDED_FOR, client_address, parse_networks, rate_key
from components.core.settings import Settings, SettingsError
from components.db.database import Database
from tests.support.clients import post_json
from tests.support.node import REPO, RouterNode
from tests.support.users import add_users

TRUSTED = parse_networks("10.0.0.0/8, 127.0.0.1, fd00::/8")


def request_from(peer, **headers):
    request = DummyRequest([b"auth", b"login"])
    request.client = peer
    for name, value in headers.items():
        request.requestHeaders.addRawHeader(name.replace("_", "-").encode(), value.encode())
    return request


class ClientAddressTests(unittest.SynchronousTestCase):
    """components.core.clientaddress: whose address a request is."""

    def test_headers_ignored_without_trusted_proxies(self):
        """Without TRUSTED_PROXIES (or from a peer not in it) the forwarding headers count for nothing."""
        request = request_from(IPv4Address("TCP", "10.1.2.3", 4000), X_Forwarded_For="198.51.100.1",
                               Forwarded="for=198.51.100.2")
        self.assertEqual(client_address(request, ()), "10.1.2.3")
        request = request_from(IPv4Address("TCP", "192.0.2.9", 4000), X_Forwarded_For="198.51.100.1")
        self.assertEqual(client_address(request, TRUSTED), "192.0.2.9")

    def test_right_most_untrusted_address(self):
        """Behind trusted proxies the client is the right-most forwarded address that is not a proxy."""
        chain = "6.6.6.6, 203.0.113.5, 10.0.0.7"   # the client wrote 6.6.6.6 itself
        request = request_from(IPv4Address("TCP", "10.0.0.2", 4000), X_Forwarded_For=chain)
        self.assertEqual(client_address(request, TRUSTED), "203.0.113.5")
        request = request_from(IPv4Address("TCP", "127.0.0.1", 4000), X_Forwarded_For="6.6.6.6",
                               x_forwarded_for="203.0.113.6:5555")   # two header lines, a port
        self.assertEqual(client_address(request, TRUSTED), "203.0.113.6")

    def test_forwarded_header(self):
        """
        With FORWARDED_HEADER=forwarded, RFC 7239 Forwarded is read and
        X-Forwarded-For ignored; quoted, bracketed IPv6 with a port is understood.
        """
        request = request_from(IPv4Address("TCP", "10.0.0.2", 4000), X_Forwarded_For="198.51.100.1",
                               Forwarded='for=192.0.2.60;proto=http, for="[2001:db8::1]:4711";by=10.0.0.2')
        self.assertEqual(client_address(request, TRUSTED, FORWARDED), "2001:db8::1")
        request = request_from(IPv4Address("TCP", "10.0.0.2", 4000), X_Forwarded_For="198.51.100.1")
        self.assertEqual(client_address(request, TRUSTED, FORWARDED), "10.0.0.2")

    def test_a_clients_own_forwarded_header_is_ignored(self):
        """
        By default only X-Forwarded-For (what nginx writes) is read: a
        Forwarded header the proxy passed on from the client names nobody.
        """
        spoofed = request_from(IPv4Address("TCP", "10.0.0.2", 4000), Forwarded="for=203.0.113.99",
                               X_Forwarded_For="198.51.100.1")
        self.assertEqual(client_address(spoofed, TRUSTED), "198.51.100.1")
        alone = request_from(IPv4Address("TCP", "10.0.0.2", 4000), Forwarded="for=203.0.113.99")
        self.assertEqual(client_address(alone, TRUSTED), "10.0.0.2")

    def test_repeated_header_lines_are_one_list(self):
        """
        Header lines are joined in order, as a proxy appending to the list:
        the right-most hop of the last line is the nearest.
        """
        for header in (X_FORWARDED_FOR, FORWARDED):
            request = DummyRequest([b"auth", b"login"])
            request.client = IPv4Address("TCP", "10.0.0.2", 4000)
            hop = (lambda address: "for=" + address) if header == FORWARDED else str
            request.requestHeaders.setRawHeaders(header.encode(), [
                hop("6.6.6.6").encode(), "{}, {}".format(hop("7.7.7.7"), hop("203.0.113.8")).encode(),
                hop("10.0.0.5").encode()])
            self.assertEqual(client_address(request, TRUSTED, header), "203.0.113.8", header)

    def test_garbage_hop_stops_at_the_nearest_proxy(self):
        """A hop that is no address ends the walk at the trusted proxy that reported it."""
        request = request_from(IPv4Address("TCP", "10.0.0.2", 4000),
                               X_Forwarded_For="1.2.3.4, unknown, 10.0.0.9")
        self.assertEqual(client_address(request, TRUSTED), "10.0.0.9")
        request = request_from(IPv4Address("TCP", "10.0.0.2", 4000))
        self.assertEqual(client_address(request, TRUSTED), "10.0.0.2")

    def test_peers_and_keys(self):
        """IPv4-mapped peers count as IPv4; IPv6 clients are keyed by their /64; a Unix peer is 'unix'."""
        request = request_from(IPv6Address("TCP", "::ffff:127.0.0.1", 4000),
                               X_Forwarded_For="2001:db8:1:2:3::9")
        self.assertEqual(client_address(request, TRUSTED), "2001:db8:1:2:3::9")
        self.assertEqual(rate_key("2001:db8:1:2:3::9"), rate_key("2001:db8:1:2:ffff::1"))
        self.assertEqual(rate_key("2001:db8:1:2:3::9"), "2001:db8:1:2::/64")
        self.assertEqual(rate_key("203.0.113.5"), "203.0.113.5")
        self.assertEqual(client_address(request_from(UNIXAddress(None)), TRUSTED), "unix")

    def test_setting(self):
        """TRUSTED_PROXIES takes addresses and CIDRs, FORWARDED_HEADER one of the two headers; else a settings error."""
        proxies, header = core_settings.TRUSTED_PROXIES, core_settings.FORWARDED_HEADER
        self.assertEqual(Settings({}, {}).get(proxies), ())
        trusted = Settings({}, {"TRUSTED_PROXIES": "10.0.0.0/8 ::1,127.0.0.1"}).get(proxies)
        self.assertEqual(len(trusted), 3)
        with self.assertRaises(SettingsError) as caught:
            Settings({}, {"TRUSTED_PROXIES": "nginx"}).get(proxies)
        self.assertIn("TRUSTED_PROXIES", str(caught.exception))
        self.assertEqual(Settings({}, {}).get(header), X_FORWARDED_FOR)
        self.assertEqual(Settings({}, {"FORWARDED_HEADER": " Forwarded "}).get(header), FORWARDED)
        with self.assertRaises(SettingsError) as caught:
            Settings({}, {"FORWARDED_HEADER": "x-real-ip"}).get(header)
        self.assertIn("FORWARDED_HEADER", str(caught.exception))


class WebSocketCapAddressTests(unittest.SynchronousTestCase):
    """The cap on unauthenticated WebSockets per address (auth_deadline) reads the same header as the login."""

    def forwarded_client(self, environ, **headers):
        from components.node.patches import auth_deadline

        class Factory:
            pass

        settings = auth_deadline.DeadlineSettings.from_environment([], dict(environ, TRUSTED_PROXIES="127.0.0.1"))
        render = auth_deadline.forwarding(lambda resource, request: resource._factory.__dict__.get(
            auth_deadline._FORWARDED), settings, (Factory,))
        resource = type("WebSocketResource", (), {"_factory": Factory()})()
        return render(resource, request_from(IPv4Address("TCP", "127.0.0.1", 4000), **headers))

    def test_a_clients_own_forwarded_header_is_ignored(self):
        """Upgrades through nginx are counted under X-Forwarded-For, not a Forwarded the client wrote."""
        self.assertEqual(self.forwarded_client({}, Forwarded="for=203.0.113.99", X_Forwarded_For="198.51.100.1"),
                         "198.51.100.1")
        self.assertIsNone(self.forwarded_client({}, Forwarded="for=203.0.113.99"))   # the proxy's own address
        self.assertEqual(self.forwarded_client({"FORWARDED_HEADER": "forwarded"}, Forwarded="for=203.0.113.99",
                                               X_Forwarded_For="198.51.100.1"), "203.0.113.99")


class AccountDelayTests(unittest.SynchronousTestCase):
    """components.auth.loginlimits.AccountDelay on a test clock."""

    def setUp(self):
        self.clock = task.Clock()
        self.delay = AccountDelay(maximum=2.0, base=0.25, free=3, half_life=60.0, clock=self.clock.seconds)

    def fail_times(self, name, count, delay=None):
        for _ in range(count):
            (delay or self.delay).failed(name)

    def test_progressive_and_capped(self):
        """Free for the first failures, then doubling from 0.25 s, never above the cap."""
        seen = []
        for _ in range(8):
            seen.append(self.delay.delay("alice"))
            self.delay.failed("alice")
        self.assertEqual(seen, [0, 0, 0, 0.25, 0.5, 1.0, 2.0, 2.0])
        self.fail_times("alice", 1000)
        self.assertEqual(self.delay.delay("alice"), 2.0)

    def test_per_account_and_decaying(self):
        """Another account is not slowed; the score halves every half-life; a success clears it."""
        self.fail_times("alice", 6)
        self.assertEqual((self.delay.score("alice"), self.delay.score("bob")), (6, 0))
        self.assertEqual(self.delay.delay("bob"), 0)
        self.assertEqual(self.delay.delay("alice"), 2.0)
        self.clock.advance(60)    # score 6 -> 3
        self.assertEqual(self.delay.delay("alice"), 0.25)
        self.clock.advance(60)    # 3 -> 1.5
        self.assertEqual(self.delay.delay("alice"), 0)
        self.fail_times("alice", 6)
        self.delay.succeeded("alice")
        self.assertEqual(self.delay.delay("alice"), 0)

    def test_off_and_bounded(self):
        """maximum 0 turns it off; memory stays bounded, the busiest account kept."""
        off = AccountDelay(maximum=0, clock=self.clock.seconds)
        self.fail_times("alice", 50, off)
        self.assertEqual(off.delay("alice"), 0)
        small = AccountDelay(clock=self.clock.seconds, max_accounts=10)
        self.fail_times("target", 20, small)
        for number in range(100):
            small.failed("spray-{}".format(number))
        self.assertLessEqual(len(small._scores), 10)
        self.assertEqual(small.delay("target"), 2.0)

PASSWORD = "right-password-1"


@defer.inlineCallbacks
def add_full_cost_user(node, username, password):
    """``username`` in the node's master.db with the default (full-cost) PBKDF2 iterations."""
    db = Database("sqlite:///" + os.path.join(node.directory, "master.db"))
    try:
        yield Directory(db).create_user(username, password)
    finally:
        db.close()


@defer.inlineCallbacks
def login_through_proxy(url, username, password, client):
    """POST /auth/login as a proxy forwarding ``client``: ``(code, Retry-After seconds or 0)``."""
    code, _, response = yield post_json(url + "/auth/login", {"username": username, "password": password},
                                        headers={"X-Forwarded-For": client})
    retry = response.headers.getRawHeaders(b"retry-after") or [b"0"]
    return code, int(retry[0])


@defer.inlineCallbacks
def flood_and_log_in(url, attacks, username, password, client, tries=10, after=None):
    """
    Sends every wrong login of ``attacks`` (``(username, client address)``)
    at once; when the first answer is back (or ``after`` seconds later: the
    benchmark's fixed offset), ``username`` logs in from
    ``client`` with ``password``, following ``Retry-After`` on 429 (up to
    ``tries`` attempts), as a patient user would. Fires with the attackers'
    codes, the victim's codes, and the victim's seconds from its first
    attempt to its last answer.
    """
    from twisted.internet import reactor
    first = defer.Deferred()

    def answered(result):
        if not first.called:
            first.callback(None)
        return result[0]

    flood = defer.gatherResults([login_through_proxy(url, name, "wrong", address).addCallback(answered)
                                 for name, address in attacks])
    if after is not None:
        yield task.deferLater(reactor, after, lambda: None)
    elif attacks:
        yield first
    started, codes = time.monotonic(), []
    while len(codes) < tries:
        code, retry = yield login_through_proxy(url, username, password, client)
        codes.append(code)
        if code != 429:
            break
        yield task.deferLater(reactor, max(retry, 1), lambda: None)
    seconds = time.monotonic() - started
    attackers = yield flood
    return attackers, codes, seconds


class BehindProxyTests(unittest.TestCase):
    """/auth/login of a real node reached through a proxy (this test, from 127.0.0.1)."""

    timeout = 120

    @defer.inlineCallbacks
    def node(self, **env):
        node = RouterNode(name="login-limits", env=dict({"LOGIN_BURST": "6", "LOGIN_RATE": "0.01"}, **env))
        self.addCleanup(node.cleanup)
        yield node.start()
        yield add_users(node, [("victim", "Vic", False), ("target", "Tim", False)], PASSWORD)
        return node

    @defer.inlineCallbacks
    def login(self, node, username, password, client):
        started = time.monotonic()
        code, body, _ = yield post_json(node.http + "/auth/login",
                                        {"username": username, "password": password},
                                        headers={"X-Forwarded-For": client})
        return code, time.monotonic() - started

    @defer.inlineCallbacks
    def attack_and_log_in(self, node):
        """An attacker's wrong logins, then each time one correct login of another user: their answers."""
        attacker, victim = [], []
        for _ in range(6):
            for _ in range(4):
                code, _ = yield self.login(node, "target", "wrong", "198.51.100.7")
                attacker.append(code)
            victim.append((yield self.login(node, "victim", PASSWORD, "203.0.113.9")))
        return attacker, victim

    @defer.inlineCallbacks
    def test_without_trusted_proxies_the_peer_counts(self):
        """
        Without TRUSTED_PROXIES the forwarded address is ignored: everyone
        behind the proxy shares its limit (a client cannot choose its own key).
        """
        node = yield self.node()
        attacker, victim = yield self.attack_and_log_in(node)
        self.assertEqual(attacker[:5], [401] * 5)
        # one burst of 6 for everyone behind the proxy: the victim's first login was the fifth attempt
        self.assertEqual([code for code, _ in victim], [200] + [429] * 5)

    @defer.inlineCallbacks
    def test_with_trusted_proxies_the_client_counts(self):
        """
        With the proxy in TRUSTED_PROXIES the attacker's address is limited
        and the victim's correct logins, from another address, all get 200 promptly.
        """
        node = yield self.node(TRUSTED_PROXIES="127.0.0.1")
        attacker, victim = yield self.attack_and_log_in(node)
        self.assertEqual(attacker[:6], [401] * 6)
        self.assertEqual(set(attacker[6:]), {429})
        self.assertEqual([code for code, _ in victim], [200] * 6)
        self.assertLess(max(seconds for _, seconds in victim), 2.0, victim)

    @defer.inlineCallbacks
    def test_concurrent_wrong_logins_do_not_hold_up_a_correct_one(self):
        """
        60 wrong passwords for one account at once, each from its own
        address, cost at most two checks of that account (the rest are turned
        away at once): its owner, from another address, is in within 5 s,
        following Retry-After. Before the check gate the 60 checks queued in
        the thread pool ahead of the owner's (about 9 s of PBKDF2 on 2 cores).
        """
        node = yield self.node(TRUSTED_PROXIES="127.0.0.1")
        yield add_full_cost_user(node, "owner", PASSWORD)
        attacks = [("owner", "198.51.{}.{}".format(number // 200, number % 200 + 1)) for number in range(60)]
        attackers, victim, seconds = yield flood_and_log_in(node.http, attacks, "owner", PASSWORD, "203.0.113.77")
        self.assertEqual(set(attackers) | {401, 429}, {401, 429}, attackers)
        self.assertEqual(victim[-1], 200, victim)
        self.assertLess(seconds, 5.0, (victim, seconds))

    @defer.inlineCallbacks
    def test_a_burst_from_one_address_does_not_slow_others(self):
        """
        20 wrong logins at once from one address (unknown names: each still
        costs a full derivation) are checked one at a time, the rest turned
        away: another client's login on the node is answered within 1.5 s
        (before: behind the burst's 20 checks, about 3 s on 2 cores).
        """
        node = yield self.node(TRUSTED_PROXIES="127.0.0.1", LOGIN_BURST="30")
        attacks = [("nobody{}".format(number), "198.51.100.7") for number in range(20)]
        attackers, victim, seconds = yield flood_and_log_in(node.http, attacks, "victim", PASSWORD, "203.0.113.9",
                                                            tries=1)
        self.assertEqual(victim, [200])
        self.assertLess(seconds, 1.5)
        self.assertIn(401, attackers)

    @defer.inlineCallbacks
    def test_a_forwarded_header_the_proxy_passed_on_is_ignored(self):
        """
        nginx appends to X-Forwarded-For but passes a client's own Forwarded
        on: the attacker cannot spend the victim's budget by naming the
        victim's address there, nor escape its own by naming a new one each time.
        """
        node = yield self.node(TRUSTED_PROXIES="127.0.0.1")
        attacker = []
        for number in range(8):
            code, _, _ = yield post_json(node.http + "/auth/login", {"username": "target", "password": "wrong"},
                                         headers={"X-Forwarded-For": "198.51.100.7",
                                                  "Forwarded": "for=203.0.113.{}".format(9 + number % 2)})
            attacker.append(code)
        self.assertEqual(attacker, [401] * 6 + [429] * 2)
        code, _ = yield self.login(node, "victim", PASSWORD, "203.0.113.9")
        self.assertEqual(code, 200)

    @defer.inlineCallbacks
    def test_many_addresses_slow_the_account_but_never_lock_it(self):
        """
        Wrong passwords for one account from a new address each get slower
        answers (progressive, capped); the right password from a fresh
        address still gets in, within the cap.
        """
        node = yield self.node(TRUSTED_PROXIES="127.0.0.1", LOGIN_BURST="20", LOGIN_ACCOUNT_DELAY_MAX="1")
        answers = []
        for number in range(7):
            answers.append((yield self.login(node, "victim", "wrong", "198.51.100.{}".format(number + 1))))
        self.assertEqual({code for code, _ in answers}, {401})
        fast, slow = [seconds for _, seconds in answers[:3]], [seconds for _, seconds in answers[5:]]
        self.assertLess(max(fast), 0.9, answers)
        self.assertGreaterEqual(min(slow), 0.95, answers)
        code, seconds = yield self.login(node, "victim", PASSWORD, "203.0.113.50")
        self.assertEqual(code, 200)
        self.assertLess(seconds, 1 + 1.5, "the right password waits at most the cap (plus the hashing)")
        code, seconds = yield self.login(node, "victim", PASSWORD, "203.0.113.51")
        self.assertEqual(code, 200)
        self.assertLess(seconds, 0.9, "a successful login clears the account's delay")


class ShippedProxyConfigTests(unittest.SynchronousTestCase):
    """The shipped nginx, compose and Kubernetes configs give the hub what it needs to see clients."""

    def test_compose_trusts_its_balancer_and_nginx_forwards(self):
        """Every nginx location forwards the client address in X-Forwarded-For and drops a client's Forwarded;
        the hub trusts exactly the balancer's address and reads X-Forwarded-For."""
        with open(os.path.join(REPO, "docker-compose.yml")) as handle:
            compose = yaml.safe_load(handle)
        trusted = parse_networks(compose["x-hub"]["environment"]["TRUSTED_PROXIES"])
        balancer = compose["services"]["balancer"]["networks"]["default"]["ipv4_address"]
        self.assertTrue(any(ipaddress.ip_address(balancer) in network for network in trusted))
        subnet = ipaddress.ip_network(compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
        self.assertIn(ipaddress.ip_address(balancer), subnet)
        with open(os.path.join(REPO, "deploy", "compose", "nginx.conf")) as handle:
            conf = handle.read()
        locations = re.findall(r"^\s*location [^{]+\{([^}]*)\}", conf, re.MULTILINE)
        self.assertEqual(len(locations), 3)
        for body in locations:
            self.assertIn("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;", body)
            self.assertIn('proxy_set_header Forwarded "";', body)
        self.assertEqual(compose["x-hub"]["environment"].get("FORWARDED_HEADER", X_FORWARDED_FOR), X_FORWARDED_FOR)

    def test_kubernetes_sets_trusted_proxies(self):
        """The ConfigMap both workloads read names the Ingress controller's pods."""
        with open(os.path.join(REPO, "deploy", "k8s", "configmap.yaml")) as handle:
            config = yaml.safe_load(handle)
        self.assertTrue(parse_networks(config["data"]["TRUSTED_PROXIES"]))
        self.assertEqual(config["data"]["FORWARDED_HEADER"], X_FORWARDED_FOR)   # what ingress-nginx writes
        for workload in ("master.yaml", "client.yaml"):
            with open(os.path.join(REPO, "deploy", "k8s", workload)) as handle:
                self.assertIn("name: hub-config", handle.read())
