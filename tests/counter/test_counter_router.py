"""
The click counter through a real router on SQLite and PostgreSQL: exact
counts under concurrent clicks (also with two component instances on one
database), every acknowledged click kept across a hub crash, bad input
refused without a change, the per-user limits (clicks and new counters,
shared by all sessions of a user), the cap on the number of counters, and a
database that goes down and comes back.
"""

import uuid

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions
from twisted.internet import defer
from twisted.trial import unittest

from components.core import errors
from tests.support.clients import connect
from tests.support.databases import postgres_url
from tests.support.node import RouterNode, component, router_worker, shared_node
from tests.support.pgcluster import PostgresCluster
from tests.support.polling import eventually

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
    """The router runs just the authenticator and the counter (other components' own database handling aside),
    and boot, which installs the worker's patches (the listening interface among them)."""
    worker = router_worker(config)
    worker["components"] = [item for item in worker["components"]
                            if item["id"] in ("boot", "authenticator", "counter")]
    return config


class CounterDatabaseOutageTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def assert_unavailable(self, session, name, port):
        for procedure in ("counter.click", "counter.get", "counter.click"):
            with self.assertRaises(ApplicationError) as caught:
                yield session.call(procedure, name=name)
            self.assertEqual(caught.exception.error, errors.UNAVAILABLE)
            # the database's refusal, not the 20 s deadline: it failed fast; in the generic words only
            message = caught.exception.args[0]
            self.assertTrue(message.startswith(errors.DATABASE_UNAVAILABLE), message)
            for detail in ("postgresql", "127.0.0.1", str(port), "connection"):
                self.assertNotIn(detail, message)
            if procedure == "counter.click":
                self.assertTrue(message.endswith("Nothing was changed."), message)

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
        yield self.assert_unavailable(session, name, cluster.port)
        # the driver's words (which server, which port) are in the operators' log
        self.assertRegex(node.log_text(), r"counter (click|get): .*port {}".format(cluster.port))

        yield cluster.start()
        for _ in range(3):
            yield session.call("counter.click", name=name)

        yield cluster.stop()
        yield self.assert_unavailable(session, name, cluster.port)

        yield cluster.start()
        clicked = yield session.call("counter.click", name=name)
        self.assertEqual((clicked["value"], clicked["seq"]), (4, 4))
        state = yield session.call("counter.get", name=name)
        self.assertEqual(state["value"], 4)


class CounterRateLimitTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_rate_limited_session(self):
        """With the default limit (10/s, burst 20), 30 clicks at once from one user: the rest is rate_limited."""
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
        # another user is not limited by this one
        clicked = yield other.session.call("counter.click", name=name)
        self.assertEqual(clicked["value"], len(accepted) + 1)


class SessionCallBoundTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_burst_of_gets_past_the_session_bound(self):
        """200 counter.get at once from one session: those past SESSION_MAX_CALLS_IN_FLIGHT (8) are answered
        rate_limited at once, the rest are answered; another user's call is answered meanwhile."""
        node = yield shared_node()
        client = yield connect(self, node)
        other = yield connect(self, node, sub="bob")
        name = fresh_name()
        burst = defer.DeferredList([client.session.call("counter.get", name=name) for _ in range(200)],
                                   consumeErrors=True)
        state = yield other.session.call("counter.get", name=name)
        self.assertEqual(state["value"], 0)
        results = yield burst
        refused = [value.value for ok, value in results if not ok]
        self.assertTrue(refused, "no call of the burst was refused")
        self.assertLessEqual(len(refused), 200 - 8)
        self.assertEqual({error.error for error in refused}, {errors.RATE_LIMITED})
        self.assertIn("in flight", refused[0].args[0])
        self.assertTrue(all(value["value"] == 0 for ok, value in results if ok))
        # the bound holds calls in flight only: once answered, the session calls again
        again = yield client.session.call("counter.get", name=name)
        self.assertEqual(again["seq"], 0)


def fresh_user():
    return "u-" + uuid.uuid4().hex[:12]


@defer.inlineCallbacks
def sessions_of(testcase, node, user, count=5):
    """``count`` sessions of one user, each with its own connection."""
    clients = yield defer.gatherResults([connect(testcase, node, sub=user) for _ in range(count)])
    return [client.session for client in clients]


@defer.inlineCallbacks
def outcomes(calls):
    """Fire with ``(answers, refusals)`` of the Deferreds ``calls``, all at once."""
    results = yield defer.DeferredList(calls, consumeErrors=True)
    return [value for ok, value in results if ok], [value.value for ok, value in results if not ok]


class CounterPerUserLimitTests(unittest.TestCase):
    """Defaults: 10 clicks/s (burst 20) and 0.1 new counters/s (burst 10) per user, whatever its sessions."""

    timeout = 180

    def assertRateLimited(self, refusals, what):
        self.assertTrue(refusals)
        for error in refusals:
            self.assertEqual(error.error, errors.RATE_LIMITED, error.args)
            self.assertGreater(error.kwargs["retry_after"], 0)
            self.assertIn("too many {} from this user".format(what), error.args[0])

    @defer.inlineCallbacks
    def test_sessions_of_one_user_share_one_click_budget(self):
        """5 sessions of one user clicking 10 times each at once get one user's burst (20), not five."""
        node = yield shared_node()
        sessions = yield sessions_of(self, node, fresh_user())
        other = (yield connect(self, node, sub=fresh_user())).session
        name = fresh_name()
        yield other.call("counter.click", name=name)  # the counter exists: only the click budget counts below
        accepted, refused = yield outcomes([session.call("counter.click", name=name)
                                            for session in sessions for _ in range(10)])
        # the burst, plus what the bucket refilled (10/s) while the calls were handled
        self.assertGreaterEqual(len(accepted), 20)
        self.assertLessEqual(len(accepted), 25)
        self.assertRateLimited(refused, "clicks")
        # another user is not limited by this one
        clicked = yield other.call("counter.click", name=name)
        self.assertEqual(clicked["value"], len(accepted) + 2)

    @defer.inlineCallbacks
    def test_new_counters_beyond_the_per_user_rate_are_refused(self):
        """15 new counters at once from 5 sessions of one user: 10 are created, the rest rate_limited and not created."""
        node = yield shared_node()
        sessions = yield sessions_of(self, node, fresh_user())
        names = [fresh_name() for _ in range(15)]
        calls = [sessions[index % 5].call("counter.click", name=name) for index, name in enumerate(names)]
        accepted, refused = yield outcomes(calls)
        # the burst of 10, and at most one more refilled (0.1/s) while the calls were handled
        self.assertIn(len(accepted), (10, 11))
        self.assertRateLimited(refused, "new counters")
        created = {state["name"] for state in accepted}
        for name in set(names) - created:
            state = yield sessions[0].call("counter.get", name=name)
            self.assertEqual((state["value"], state["seq"]), (0, 0), "a refused counter was created")
        # counters that exist are clicked on as usual
        again = yield sessions[1].call("counter.click", name=sorted(created)[0])
        self.assertEqual(again["value"], 2)
        # and another user still creates its own
        other = (yield connect(self, node, sub=fresh_user())).session
        state = yield other.call("counter.click", name=fresh_name())
        self.assertEqual(state["value"], 1)

    @defer.inlineCallbacks
    def test_a_burst_on_one_new_counter_spends_one_new_counter(self):
        """10 clicks at once on one new counter spend one new counter: 9 more are allowed, the 10th is refused."""
        node = yield shared_node()
        sessions = yield sessions_of(self, node, fresh_user())
        name = fresh_name()
        accepted, refused = yield outcomes([session.call("counter.click", name=name)
                                            for session in sessions for _ in range(2)])
        self.assertEqual((len(accepted), refused), (10, []))
        self.assertEqual(max(state["value"] for state in accepted), 10)
        for index in range(9):
            yield sessions[index % 5].call("counter.click", name=fresh_name())
        with self.assertRaises(ApplicationError) as caught:
            yield sessions[0].call("counter.click", name=fresh_name())
        self.assertRateLimited([caught.exception], "new counters")


class CounterCapTests(unittest.TestCase):
    timeout = 180

    def test_total_cap_on_sqlite(self):
        """SQLite, COUNTER_MAX_NAMES=10: of 40 new counters by 20 users at once exactly 10 exist, the rest refused."""
        return self.assert_cap({})

    def test_total_cap_on_postgres_with_two_instances(self):
        """PostgreSQL, two counter instances, COUNTER_MAX_NAMES=10: of 40 new counters at once exactly 10 exist."""
        return self.assert_cap({"DATABASE_URL": postgres_url(self)}, instances=2)

    @defer.inlineCallbacks
    def assert_cap(self, env, instances=1, users=20, per_user=2, cap=10):
        def transform(config):
            config = only_auth_and_counter(config)
            return second_instance(config) if instances == 2 else config
        node = yield private_node(self, env=dict(env, COUNTER_MAX_NAMES=str(cap)), transform=transform)
        yield eventually(lambda: node.log_text().count("counter ready on") == instances, timeout=20,
                         message="the counter instances did not start")
        clients = yield defer.gatherResults([connect(self, node, sub=fresh_user()) for _ in range(users)])
        sessions = [client.session for client in clients]
        names = [fresh_name() for _ in range(users * per_user)]
        accepted, refused = yield outcomes([sessions[index % users].call("counter.click", name=name)
                                            for index, name in enumerate(names)])
        self.assertEqual((len(accepted), len(refused)), (cap, len(names) - cap))
        for error in refused:
            self.assertEqual((error.error, error.kwargs.get("field")), (errors.INVALID_ARGUMENT, "name"))
            self.assertIn("maximum of {} counters".format(cap), error.args[0])
        for name in set(names) - {state["name"] for state in accepted}:
            state = yield sessions[0].call("counter.get", name=name)
            self.assertEqual(state["seq"], 0, "a refused counter was created")
        # existing counters go on counting, for anyone
        state = yield sessions[-1].call("counter.click", name=accepted[0]["name"])
        self.assertEqual(state["value"], 2)
        with self.assertRaises(ApplicationError) as caught:
            yield sessions[-1].call("counter.click", name="default")
        self.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT)
