"""
tests/support/polling.py: ``eventually`` polls a plain or a Deferred-returning
predicate on an injected clock until it is true (or passes ``check``),
retries the exceptions it is told to, and fails with the message after the
timeout in clock seconds.
"""

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from tests.support import polling


class EventuallyTests(SynchronousTestCase):

    def setUp(self):
        self.clock = task.Clock()

    def test_plain_predicate_fires_with_its_value(self):
        values = [0, None, "ready"]
        done = polling.eventually(lambda: values.pop(0), interval=0.5, clock=self.clock)
        self.assertNoResult(done)
        self.clock.advance(0.5)
        self.assertNoResult(done)
        self.clock.advance(0.5)
        self.assertEqual(self.successResultOf(done), "ready")

    def test_deferred_predicate(self):
        answers = []

        def check():
            answers.append(defer.Deferred())
            return answers[-1]
        done = polling.eventually(check, clock=self.clock)
        answers[-1].callback(False)
        self.clock.advance(polling.INTERVAL)
        self.assertEqual(len(answers), 2)
        answers[-1].callback({"seq": 3})
        self.assertEqual(self.successResultOf(done), {"seq": 3})

    def test_timeout_in_clock_seconds_is_generous_by_default(self):
        done = polling.eventually(lambda: False, message="never", clock=self.clock)
        self.clock.advance(29.9)
        self.assertNoResult(done)
        self.clock.pump([polling.INTERVAL] * 4)
        failure = self.failureResultOf(done, AssertionError)
        self.assertEqual(str(failure.value), "never after 30.0s (last: False)")

    def test_retry_on_counts_as_not_yet(self):
        calls = []

        def connect():
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionRefusedError("not listening yet")
            return "client"
        done = polling.eventually(connect, retry_on=(ConnectionRefusedError,), clock=self.clock)
        self.clock.pump([polling.INTERVAL] * 2)
        self.assertEqual(self.successResultOf(done), "client")

    def test_retry_on_timeout_names_the_last_error(self):
        def refuse():
            raise ConnectionRefusedError("refused")
        done = polling.eventually(refuse, timeout=1, retry_on=(ConnectionRefusedError,), message="no port",
                                  clock=self.clock)
        self.clock.pump([0.5] * 3)
        self.assertIn("no port after 1s (last: ConnectionRefusedError('refused'))",
                      str(self.failureResultOf(done, AssertionError).value))

    def test_other_errors_fail_at_once(self):
        done = polling.eventually(lambda: 1 / 0, retry_on=(ConnectionRefusedError,), clock=self.clock)
        self.failureResultOf(done, ZeroDivisionError)

    def test_check_on_the_value(self):
        """With ``check``, a false value can be the awaited one, and the failure shows the last value."""
        lists = [[1, 2], []]
        done = polling.eventually(lambda: lists.pop(0), check=lambda found: len(found) == 0, clock=self.clock)
        self.clock.advance(polling.INTERVAL)
        self.assertEqual(self.successResultOf(done), [])
        done = polling.eventually(lambda: [1], check=lambda found: not found, timeout=0.1, message="one left",
                                  clock=self.clock)
        self.clock.pump([polling.INTERVAL] * 3)
        self.assertEqual(str(self.failureResultOf(done, AssertionError).value),
                         "one left after 0.1s (last: [1])")


class BlockingEventuallyTests(SynchronousTestCase):
    """The same rules for a thread that may block, with its own wait and clock."""

    def setUp(self):
        self.clock = task.Clock()
        self.waits = []

    def wait(self, seconds):
        self.waits.append(seconds)
        self.clock.advance(seconds)

    def poll(self, predicate, **kwargs):
        return polling.blocking_eventually(predicate, wait=self.wait, now=self.clock.seconds, **kwargs)

    def test_returns_the_value_after_waiting(self):
        values = [None, {"clients": 1}]
        self.assertEqual(self.poll(lambda: values.pop(0), interval=0.2), {"clients": 1})
        self.assertEqual(self.waits, [0.2])

    def test_timeout_names_the_last_error(self):
        def refuse():
            raise ConnectionRefusedError("refused")
        with self.assertRaises(AssertionError) as raised:
            self.poll(refuse, timeout=1, retry_on=(ConnectionRefusedError,), message="Django not serving",
                      details=lambda: "log tail")
        self.assertEqual(str(raised.exception),
                         "Django not serving after 1s (last: ConnectionRefusedError('refused'))\nlog tail")
        self.assertAlmostEqual(self.clock.seconds(), 1.0)

    def test_check_and_other_errors(self):
        self.assertEqual(self.poll(lambda: 0, check=lambda value: value == 0), 0)
        self.assertRaises(ZeroDivisionError, self.poll, lambda: 1 / 0, retry_on=(ConnectionRefusedError,))
