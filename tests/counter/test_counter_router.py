"""
The click counter through a real router on SQLite and PostgreSQL: exact
counts under concurrent clicks (also with two component instances on one
database), every acknowledged click kept across a hub crash, bad input
refused without a change, the per-session rate limit, and a database that
goes down and comes back.
"""

import uuid

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions
from twisted.internet import defer
from twisted.trial import unittest

from components.core import errors
from tests.support.clients import connect, eventually
from tests.support.databases import postgres_url
from tests.support.node import RouterNode, component, router_worker, shared_node
from tests.support.pgcluster import PostgresCluster

FAST = {"COUNTER_RATE": "100000", "COUNTER_BURST": "100000"}


def fresh_name():
    return "t-" + uuid.uuid4().hex[:12]


@defer.inlineCallbacks
def private_node(testcase, env=None, transform=None):
    node = RouterNode(env=dict(FAST, **(env or {})), transform=transform, name="counter")
    testcase.addCleanup(node.cleanup)
    yield node.start()
    return node


class Watcher:
    """A connected client that keeps the highest-seq state of each counter it was sent."""

    def __init__(self, client):
        self.client = client
        self.best = {}
        self.events = []

    def on_event(self, state):
        self.events.append(state)
        current = self.best.get(state["name"])
        if current is None or state["seq"] > current["seq"]:
            self.best[state["name"]] = state

    def value(self, name):
        return self.best.get(name, {}).get("value")


@defer.inlineCallbacks
def watchers(testcase, node, count, **options):
    clients = yield defer.gatherResults(
        [connect(testcase, node, sub="clicker{}".format(index), **options) for index in range(count)])
    result = []
    for client in clients:
        watcher = Watcher(client)
        # every counter: counter.changed (default) and counter.changed.<name>
        yield client.session.subscribe(watcher.on_event, "counter.changed", options=SubscribeOptions(match="prefix"))
        result.append(watcher)
    return result


@defer.inlineCallbacks
def click_many(session, name, clicks):
    """Click ``clicks`` times one after another; fire with the acknowledged states."""
    acks = []
    for _ in range(clicks):
        state = yield session.call("counter.click", name=name)
        acks.append(state)
    return acks


class StormMixin:
    """20 clients x 50 clicks on one counter; shared by the SQLite and PostgreSQL cases."""

    timeout = 120

    @defer.inlineCallbacks
    def assert_storm_counts_exactly(self, node, clients=20, clicks=50):
        name = fresh_name()
        group = yield watchers(self, node, clients)
        acked = yield defer.gatherResults([click_many(w.client.session, name, clicks) for w in group])
        total = clients * clicks
        states = [state for acks in acked for state in acks]
        # each click answered with its own state: values 1..total and versions 1..total, each once
        self.assertEqual(sorted(state["value"] for state in states), list(range(1, total + 1)))
        self.assertEqual(sorted(state["seq"] for state in states), list(range(1, total + 1)))
        final = yield group[0].client.session.call("counter.get", name)
        self.assertEqual((final["value"], final["seq"], final["name"]), (total, total, name))
        yield eventually(lambda: all(w.value(name) == total for w in group), timeout=15,
                         message="not every client saw the final count")
        for watcher in group:
            seqs = [event["seq"] for event in watcher.events if event["name"] == name]
            self.assertEqual(len(seqs), len(set(seqs)), "an event was delivered twice")


class CounterOnSqliteTests(StormMixin, unittest.TestCase):

    @defer.inlineCallbacks
    def node(self):
        node = yield shared_node("counter-sqlite", env=FAST)
        return node

    @defer.inlineCallbacks
    def test_concurrent_clicks_count_exactly(self):
        """SQLite: 20 clients clicking 50 times each at once end at exactly 1000 and all of them see 1000."""
        node = yield self.node()
        yield self.assert_storm_counts_exactly(node)

    @defer.inlineCallbacks
    def test_get_of_a_new_counter(self):
        """counter.get of a counter never clicked is value 0, seq 0; a click then gives 1 / seq 1 and an event."""
        node = yield self.node()
        [watcher] = yield watchers(self, node, 1)
        name = fresh_name()
        state = yield watcher.client.session.call("counter.get", name=name)
        self.assertEqual((state["value"], state["seq"], state["name"]), (0, 0, name))
        self.assertIsInstance(state["ts"], int)
        clicked = yield watcher.client.session.call("counter.click", 3, name)
        self.assertEqual((clicked["value"], clicked["seq"]), (3, 1))
        yield eventually(lambda: watcher.value(name) == 3, message="no counter.changed event")
        self.assertEqual(watcher.best[name], clicked)

    @defer.inlineCallbacks
    def test_bad_input_changes_nothing(self):
        """Every bad input is invalid_argument; the count, its seq and the events stay as they were."""
        node = yield self.node()
        yield assert_bad_input_changes_nothing(self, node)

    @defer.inlineCallbacks
    def test_kill_during_storm_keeps_acknowledged_clicks(self):
        """SQLite: SIGKILL of the hub during a click storm; after restart every acknowledged click is counted."""
        node = yield private_node(self)
        yield assert_crash_keeps_acknowledged(self, node)


@defer.inlineCallbacks
def assert_bad_input_changes_nothing(testcase, node):
    [watcher] = yield watchers(testcase, node, 1)
    session = watcher.client.session
    name = fresh_name()
    yield session.call("counter.click", name=name)
    yield eventually(lambda: watcher.value(name) == 1, message="no event for the valid click")
    bad_calls = [
        ((), {"n": "1", "name": name}), ((), {"n": 1.0, "name": name}), ((), {"n": 2.5, "name": name}),
        ((), {"n": True, "name": name}), ((), {"n": 0, "name": name}), ((), {"n": -3, "name": name}),
        ((), {"n": 101, "name": name}), ((), {"n": None, "name": name}), ((), {"name": name, "extra": 1}),
        ((1, name, "x"), {}), ((), {"name": ""}), ((), {"name": "a" * 65}), ((), {"name": "bad name"}),
    ]
    for args, kwargs in bad_calls:
        with testcase.assertRaises(ApplicationError) as caught:
            yield session.call("counter.click", *args, **kwargs)
        testcase.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT, (args, kwargs))
    state = yield session.call("counter.get", name=name)
    testcase.assertEqual((state["value"], state["seq"]), (1, 1))
    for args, kwargs in (((), {"name": ""}), ((), {"name": name, "n": 1}), ((name, 2), {})):
        with testcase.assertRaises(ApplicationError) as caught:
            yield session.call("counter.get", *args, **kwargs)
        testcase.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT, (args, kwargs))
    # the next valid click is seq 2: nothing in between was published or counted
    clicked = yield session.call("counter.click", name=name)
    testcase.assertEqual((clicked["value"], clicked["seq"]), (2, 2))
    yield eventually(lambda: watcher.value(name) == 2, message="no event for the second click")
    testcase.assertEqual([(e["seq"], e["value"]) for e in watcher.events if e["name"] == name], [(1, 1), (2, 2)])


@defer.inlineCallbacks
def assert_crash_keeps_acknowledged(testcase, node, clients=10, kill_after=150):
    name = fresh_name()
    group = yield watchers(testcase, node, clients, reconnect=False)
    acked = []
    unknown = []

    @defer.inlineCallbacks
    def clicker(session):
        while True:
            try:
                state = yield session.call("counter.click", name=name)
            except Exception:
                unknown.append(1)  # in flight when the hub died: may or may not be counted
                return
            acked.append(state)
            if len(acked) >= kill_after and node.process.poll() is None:
                node.kill()

    yield defer.gatherResults([clicker(w.client.session) for w in group], consumeErrors=True)
    testcase.assertGreaterEqual(len(acked), kill_after)
    yield node.start()
    client = yield connect(testcase, node, sub="after")
    final = yield client.session.call("counter.get", name=name)
    testcase.assertGreaterEqual(final["value"], len(acked), "an acknowledged click was lost")
    testcase.assertLessEqual(final["value"], len(acked) + len(unknown), "a click was counted twice")
    testcase.assertGreaterEqual(final["value"], max(state["value"] for state in acked))
    # counting goes on from there after the restart
    clicked = yield client.session.call("counter.click", name=name)
    testcase.assertEqual((clicked["value"], clicked["seq"]), (final["value"] + 1, final["seq"] + 1))


def second_instance(config):
    """A node config with a second counter component (shared registration, same database)."""
    first = component(config, "counter")
    second = dict(first, id="counter-b", extra=dict(first["extra"]))
    router_worker(config)["components"].append(second)
    return config


class CounterOnPostgresTests(StormMixin, unittest.TestCase):

    @defer.inlineCallbacks
    def test_concurrent_clicks_count_exactly(self):
        """PostgreSQL: 20 clients clicking 50 times each at once end at exactly 1000 and all of them see 1000."""
        node = yield private_node(self, env={"DATABASE_URL": postgres_url(self)})
        yield self.assert_storm_counts_exactly(node)
        yield assert_bad_input_changes_nothing(self, node)

    @defer.inlineCallbacks
    def test_two_instances_count_exactly(self):
        """Two counter components on one PostgreSQL database, called in turn, still count exactly 1000."""
        node = yield private_node(self, env={"DATABASE_URL": postgres_url(self)}, transform=second_instance)
        yield eventually(lambda: node.log_text().count("counter ready on") == 2, timeout=20,
                         message="two counter instances did not start")
        yield self.assert_storm_counts_exactly(node)

    @defer.inlineCallbacks
    def test_kill_during_storm_keeps_acknowledged_clicks(self):
        """PostgreSQL: SIGKILL of the hub during a click storm; after restart every acknowledged click is counted."""
        node = yield private_node(self, env={"DATABASE_URL": postgres_url(self)})
        yield assert_crash_keeps_acknowledged(self, node)


def only_auth_and_counter(config):
    """The router runs just the authenticator and the counter (other components' own database handling aside)."""
    worker = router_worker(config)
    worker["components"] = [item for item in worker["components"] if item["id"] in ("authenticator", "counter")]
    return config


class CounterDatabaseOutageTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def assert_unavailable(self, session, name):
        for procedure in ("counter.click", "counter.get", "counter.click"):
            with self.assertRaises(ApplicationError) as caught:
                yield session.call(procedure, name=name)
            self.assertEqual(caught.exception.error, errors.UNAVAILABLE)
            # the database's refusal, not the 20 s deadline: it failed fast
            self.assertIn("database unavailable", caught.exception.args[0])

    @defer.inlineCallbacks
    def test_database_down_then_back(self):
        """Database down at start, then up, down and up again: unavailable at once while down, counting on when up."""
        cluster = PostgresCluster()
        self.addCleanup(cluster.destroy)
        yield cluster.start()
        yield cluster.stop()
        node = yield private_node(self, env={"DATABASE_URL": cluster.url, "COUNTER_TIMEOUT": "20"},
                                  transform=only_auth_and_counter)
        client = yield connect(self, node)
        session = client.session
        name = fresh_name()
        # the component came up without its database (schema not migrated yet)
        yield self.assert_unavailable(session, name)

        yield cluster.start()
        for _ in range(3):
            yield session.call("counter.click", name=name)

        yield cluster.stop()
        yield self.assert_unavailable(session, name)

        yield cluster.start()
        clicked = yield session.call("counter.click", name=name)
        self.assertEqual((clicked["value"], clicked["seq"]), (4, 4))
        state = yield session.call("counter.get", name=name)
        self.assertEqual(state["value"], 4)


class CounterRateLimitTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_rate_limited_session(self):
        """With the default limit (10/s, burst 20), 30 clicks at once from one session: the rest is rate_limited."""
        node = yield shared_node()
        client = yield connect(self, node)
        other = yield connect(self, node, sub="bob")
        name = fresh_name()
        results = yield defer.DeferredList(
            [client.session.call("counter.click", name=name) for _ in range(30)], consumeErrors=True)
        accepted = [value for ok, value in results if ok]
        refused = [value.value for ok, value in results if not ok]
        # the burst, plus what the bucket refilled (10/s) while the calls were handled
        self.assertGreaterEqual(len(accepted), 20)
        self.assertLessEqual(len(accepted), 25)
        self.assertEqual({error.error for error in refused}, {errors.RATE_LIMITED})
        for error in refused:
            self.assertGreater(error.kwargs["retry_after"], 0)
            self.assertIn("retry in", error.args[0])
        state = yield other.session.call("counter.get", name=name)
        self.assertEqual(state["value"], len(accepted))
        # another session is not limited by this one
        clicked = yield other.session.call("counter.click", name=name)
        self.assertEqual(clicked["value"], len(accepted) + 1)
