"""
Unit tests of the counter's parts without a router: argument validation,
the per-user rate limits of clicks and new counters (injected clock), group
commit, and the SQL (with the cap on the number of counters) on a real
in-memory SQLite database.
"""

import sqlite3

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.request import Registration
from autobahn.wamp.types import CallDetails
from twisted.internet import defer, task
from twisted.trial import unittest

from components.counter import store
from components.core import errors
from components.core.batching import Batcher, NotStarted, OutcomeUnknown
from components.counter import topic_of
from components.counter.component import ClickGate, caller_of, click_arguments, get_arguments, latest_per_counter
from components.db.database import Cursor


class ClickArgumentTests(unittest.SynchronousTestCase):

    def assertRefused(self, args=(), kwargs=None, maximum=100):
        with self.assertRaises(ApplicationError) as caught:
            click_arguments(list(args), kwargs or {}, maximum)
        self.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT)
        return caught.exception.args[0]

    def test_defaults(self):
        """No arguments is one click on the counter named default."""
        self.assertEqual(click_arguments([], {}, 100), (1, "default"))

    def test_positional_and_keyword(self):
        """n and name may be given by position or keyword, up to the maximum per call."""
        self.assertEqual(click_arguments([7, "page-2_button_a"], {}, 100), (7, "page-2_button_a"))
        self.assertEqual(click_arguments([], {"n": 100, "name": "x"}, 100), (100, "x"))

    def test_bad_n(self):
        """n that is a bool, float, string, None, zero, negative or above the maximum is refused."""
        for bad in (True, False, 1.0, 2.5, "1", None, [1], 0, -1, 101, 10 ** 30):
            message = self.assertRefused(kwargs={"n": bad})
            self.assertIn("n must be an integer from 1 to 100", message)

    def test_settable_maximum(self):
        """The maximum per call is the configured one."""
        self.assertEqual(click_arguments([5], {}, 5), (5, "default"))
        self.assertRefused(args=[6], maximum=5)

    def test_bad_name(self):
        """A name that is empty, too long, not a string or has other characters is refused."""
        for bad in ("", "a" * 65, 5, None, "a b", "name\n", "ünï", "a/b", "<script>", "a.b", "a..b"):
            message = self.assertRefused(kwargs={"name": bad})
            self.assertIn("name must be 1-64 characters", message)
        self.assertEqual(click_arguments([], {"name": "a" * 64}, 100)[1], "a" * 64)

    def test_unknown_and_extra_arguments(self):
        """Unknown keywords, too many positional arguments and a value given twice are refused."""
        self.assertIn("unknown argument(s): count", self.assertRefused(kwargs={"count": 1}))
        self.assertIn("at most 2 positional", self.assertRefused(args=[1, "a", 3]))
        self.assertIn("two values for 'n'", self.assertRefused(args=[1], kwargs={"n": 2}))

    def test_get_arguments(self):
        """counter.get takes only a valid name."""
        self.assertEqual(get_arguments([], {}), "default")
        self.assertEqual(get_arguments(["x"], {}), "x")
        for args, kwargs in (([], {"n": 1}), (["x", "y"], {}), ([""], {})):
            with self.assertRaises(ApplicationError) as caught:
                get_arguments(args, kwargs)
            self.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT)


class TopicTests(unittest.SynchronousTestCase):
    """One topic per counter, so seq values of different counters never meet in one subscription."""

    def test_topic_of(self):
        """The default counter keeps the contract's topic; named ones get a sub-topic."""
        self.assertEqual(topic_of("default"), "counter.changed")
        self.assertEqual(topic_of("lobby-2"), "counter.changed.lobby-2")


def call_details(**kwargs):
    """The CallDetails a callee gets (``caller``, ``caller_authid`` as the router disclosed them)."""
    return CallDetails(Registration(None, 1, "counter.click", None), **kwargs)


class ClickGateTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.clock = task.Clock()
        self.gate = ClickGate(max_per_call=100, rate=2.0, burst=3, clock=self.clock.seconds)

    def test_burst_then_limited_with_retry_time(self):
        """A session gets its burst, then rate_limited saying when to retry; it may click again after that."""
        for _ in range(3):
            self.assertEqual(self.gate.admit([], {}, "s1"), (1, "default"))
        with self.assertRaises(ApplicationError) as caught:
            self.gate.admit([], {}, "s1")
        self.assertEqual(caught.exception.error, errors.RATE_LIMITED)
        self.assertEqual(caught.exception.kwargs["retry_after"], 0.5)
        self.assertIn("retry in 0.500 s", caught.exception.args[0])
        self.clock.advance(0.5)
        self.assertEqual(self.gate.admit([2], {}, "s1"), (2, "default"))

    def test_callers_are_independent(self):
        """One caller at its limit does not limit another."""
        for _ in range(3):
            self.gate.admit([], {}, "s1")
        self.assertEqual(self.gate.admit([], {}, "s2"), (1, "default"))

    def test_sessions_of_one_user_share_the_budget(self):
        """Every session of one authid spends the same click budget; another user still has its own."""
        sessions = [call_details(caller=index, caller_authid="mallory") for index in range(5)]
        for details in sessions[:3]:
            self.gate.admit([], {}, caller_of(details))
        for details in sessions:
            with self.assertRaises(ApplicationError) as caught:
                self.gate.admit([], {}, caller_of(details))
            self.assertEqual(caught.exception.error, errors.RATE_LIMITED)
            self.assertIn("too many clicks from this user", caught.exception.args[0])
        self.assertEqual(self.gate.admit([], {}, caller_of(call_details(caller=9, caller_authid="bob"))),
                         (1, "default"))

    def test_caller_key(self):
        """The key is the authid when the router discloses one, else the session id (never both mixed up)."""
        self.assertEqual(caller_of(call_details(caller=7, caller_authid="ann")), ("authid", "ann"))
        self.assertEqual(caller_of(call_details(caller=7)), ("session", 7))
        self.assertNotEqual(caller_of(call_details(caller_authid="7")), caller_of(call_details(caller=7)))

    def test_new_counters_have_their_own_per_user_budget(self):
        """New counters: new_burst at once, then new_rate per second, rate_limited with retry_after in between."""
        gate = ClickGate(max_per_call=100, rate=1000.0, burst=1000, clock=self.clock.seconds,
                         new_rate=0.5, new_burst=2)
        gate.admit_new_name("ann")
        gate.admit_new_name("ann")
        with self.assertRaises(ApplicationError) as caught:
            gate.admit_new_name("ann")
        self.assertEqual(caught.exception.error, errors.RATE_LIMITED)
        self.assertEqual(caught.exception.kwargs["retry_after"], 2.0)
        self.assertIn("too many new counters from this user; retry in 2.000 s", caught.exception.args[0])
        gate.admit_new_name("bob")  # another user is not limited by ann
        gate.admit([], {}, "ann")  # clicks are a separate budget
        self.clock.advance(2.0)
        gate.admit_new_name("ann")

    def test_default_new_counter_limits(self):
        """By default a user may create 10 counters at once, then one per 10 s."""
        gate = ClickGate(max_per_call=100, rate=1000.0, burst=1000, clock=self.clock.seconds)
        for _ in range(10):
            gate.admit_new_name("ann")
        with self.assertRaises(ApplicationError) as caught:
            gate.admit_new_name("ann")
        self.assertEqual(caught.exception.kwargs["retry_after"], 10.0)

    def test_invalid_input_is_refused_without_spending_the_budget(self):
        """Bad input is invalid_argument, not rate_limited, and leaves the session's budget as it was."""
        for _ in range(10):
            with self.assertRaises(ApplicationError) as caught:
                self.gate.admit([], {"n": 0}, "s1")
            self.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT)
        for _ in range(3):
            self.gate.admit([], {}, "s1")


class BatcherTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.flushes = []
        self.batcher = Batcher(self.flush, max_batch=3)

    def flush(self, items):
        d = defer.Deferred()
        self.flushes.append((items, d))
        return d

    def test_alone_flushes_at_once(self):
        """A lone item is flushed immediately and gets its own result."""
        result = self.batcher.submit("a")
        self.assertEqual([items for items, _ in self.flushes], [["a"]])
        self.flushes[0][1].callback(["A"])
        self.assertEqual(self.successResultOf(result), "A")

    def test_items_waiting_form_the_next_batch(self):
        """Items submitted while a batch runs go together into the next one, at most max_batch each."""
        first = self.batcher.submit(1)
        rest = [self.batcher.submit(i) for i in range(2, 7)]
        self.assertEqual(len(self.flushes), 1)
        self.flushes[0][1].callback([10])
        self.assertEqual(self.successResultOf(first), 10)
        self.assertEqual(self.flushes[1][0], [2, 3, 4])
        self.flushes[1][1].callback([20, 30, 40])
        self.assertEqual(self.flushes[2][0], [5, 6])
        self.flushes[2][1].callback([50, 60])
        self.assertEqual([self.successResultOf(d) for d in rest], [20, 30, 40, 50, 60])
        self.assertEqual((self.batcher.batches, self.batcher.items), (3, 6))

    def test_failure_reaches_every_item_of_the_batch(self):
        """A failed flush fails each item of that batch, and the next batch still runs."""
        first = self.batcher.submit(1)
        second = self.batcher.submit(2)
        self.flushes[0][1].errback(RuntimeError("down"))
        self.failureResultOf(first, RuntimeError)
        self.flushes[1][1].callback(["ok"])
        self.assertEqual(self.successResultOf(second), "ok")

    def test_cancel_before_start_has_no_effect(self):
        """An item cancelled while waiting fails with NotStarted and is never flushed."""
        self.batcher.submit(1)
        waiting = self.batcher.submit(2)
        kept = self.batcher.submit(3)
        waiting.cancel()
        self.failureResultOf(waiting, NotStarted)
        self.flushes[0][1].callback([1])
        self.assertEqual(self.flushes[1][0], [3])
        self.flushes[1][1].callback([3])
        self.assertEqual(self.successResultOf(kept), 3)

    def test_cancel_while_running_is_outcome_unknown(self):
        """An item cancelled during its flush fails with OutcomeUnknown; the late result is ignored."""
        running = self.batcher.submit(1)
        running.cancel()
        self.failureResultOf(running, OutcomeUnknown)
        self.flushes[0][1].callback([1])
        self.assertFalse(self.batcher._running)

    def test_fail_waiting(self):
        """fail_waiting fails the items that have not started and leaves the running batch alone."""
        running = self.batcher.submit(1)
        waiting = self.batcher.submit(2)
        self.batcher.fail_waiting(RuntimeError("stopping"))
        self.failureResultOf(waiting, RuntimeError)
        self.flushes[0][1].callback([1])
        self.assertEqual(self.successResultOf(running), 1)
        self.assertEqual(len(self.flushes), 1)


class CounterSqlTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.connection = sqlite3.connect(":memory:", isolation_level=None)
        self.addCleanup(self.connection.close)
        self.cursor = Cursor(self.connection.cursor(), "sqlite")
        for statement in store.MIGRATIONS[0].sqlite:
            self.cursor.execute(statement)

    def test_batch_answers_each_click_as_its_own_transaction(self):
        """A batch gives every click the value after its own increment and its own version."""
        states = store.add_clicks(self.cursor, [("a", 1), ("b", 2), ("a", 3)], 1000)
        self.assertEqual(states, [
            {"name": "a", "value": 1, "seq": 1, "ts": 1000},
            {"name": "b", "value": 2, "seq": 1, "ts": 1000},
            {"name": "a", "value": 4, "seq": 2, "ts": 1000},
        ])
        states = store.add_clicks(self.cursor, [("a", 5)], 2000)
        self.assertEqual(states, [{"name": "a", "value": 9, "seq": 3, "ts": 2000}])
        self.assertEqual(store.read(self.cursor, "a", 3000), {"name": "a", "value": 9, "seq": 3, "ts": 2000})

    def test_never_clicked(self):
        """A counter never clicked reads as 0 with seq 0 and creates no row."""
        self.assertEqual(store.read(self.cursor, "new", 5), {"name": "new", "value": 0, "seq": 0, "ts": 5})
        self.assertEqual(self.cursor.execute("SELECT COUNT(*) FROM hub_counter").fetchone(), (0,))

    def test_cap_on_the_number_of_counters(self):
        """Beyond max_names rows a click that would create one gets None and creates nothing; existing ones count on."""
        store.add_clicks(self.cursor, [("a", 1), ("b", 1)], 1000, max_names=3)
        states = store.add_clicks(self.cursor, [("d", 1), ("a", 2), ("c", 5), ("d", 1)], 2000, max_names=3)
        # one row left: the new names get it in name order (c before d)
        self.assertEqual(states, [None, {"name": "a", "value": 3, "seq": 2, "ts": 2000},
                                  {"name": "c", "value": 5, "seq": 1, "ts": 2000}, None])
        self.assertEqual(self.cursor.execute("SELECT COUNT(*) FROM hub_counter").fetchone(), (3,))
        self.assertEqual(store.read(self.cursor, "d", 3000)["seq"], 0)
        self.assertEqual(store.add_clicks(self.cursor, [("e", 1)], 3000, max_names=3), [None])
        self.assertEqual(store.add_clicks(self.cursor, [("b", 4)], 3000, max_names=3)[0]["value"], 5)
        # without a cap (the default) nothing is refused
        self.assertEqual(store.add_clicks(self.cursor, [("e", 1)], 4000)[0]["value"], 1)

    def test_exists(self):
        """exists() tells a counter with a row from one never clicked, with no row created by asking."""
        store.add_clicks(self.cursor, [("a", 1)], 1000)
        self.assertTrue(store.exists(self.cursor, "a"))
        self.assertFalse(store.exists(self.cursor, "b"))
        self.assertEqual(store.existing(self.cursor, ["a", "b", "a"]), {"a"})
        self.assertEqual(self.cursor.execute("SELECT COUNT(*) FROM hub_counter").fetchone(), (1,))

    def test_latest_per_counter(self):
        """Only the newest state of each counter of a batch is published."""
        states = store.add_clicks(self.cursor, [("a", 1), ("b", 2), ("a", 3)], 1000)
        latest = sorted(latest_per_counter(states), key=lambda item: item["name"])
        self.assertEqual([(item["name"], item["seq"], item["value"]) for item in latest], [("a", 2, 4), ("b", 1, 2)])
