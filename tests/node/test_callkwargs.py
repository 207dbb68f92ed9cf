"""
Unit tests of components.node.patches.callkwargs: txaio's ``as_future`` with
the function positional-only, so callers' keywords ``fun``, ``f`` and
``self`` reach procedures.
"""

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from components.node.patches import callkwargs


class FakeTx:
    """A txaio.tx stand-in whose as_future has txaio's signature."""

    @staticmethod
    def as_future(fun, *args, **kwargs):
        return defer.maybeDeferred(fun, *args, **kwargs)


class PositionalAsFutureTests(SynchronousTestCase):
    """The replacement behaves like txaio's, except that no caller keyword collides with it."""

    def setUp(self):
        self.tx = type("Tx", (), {"as_future": staticmethod(FakeTx.as_future)})
        self.txaio = type("Txaio", (), {"using_twisted": True, "as_future": staticmethod(FakeTx.as_future)})
        self.assertTrue(callkwargs.install(self.txaio, self.tx))

    def test_keywords_named_like_its_parameters_pass_through(self):
        """fun=, f= and self= are the called function's keywords."""
        result = self.tx.as_future(lambda **kwargs: sorted(kwargs), fun=1, f=2, self=3)
        self.assertEqual(self.successResultOf(result), ["f", "fun", "self"])
        self.assertIs(self.txaio.as_future, self.tx.as_future)

    def test_results_failures_deferreds_and_coroutines(self):
        """A value, an exception, a Deferred and a coroutine function all come back as Deferreds."""
        self.assertEqual(self.successResultOf(self.tx.as_future(lambda: 7)), 7)
        self.failureResultOf(self.tx.as_future(lambda: 1 / 0), ZeroDivisionError)
        waiting = defer.Deferred()
        self.assertIs(self.tx.as_future(lambda: waiting), waiting)

        async def coroutine(x):
            return x * 2
        self.assertEqual(self.successResultOf(self.tx.as_future(coroutine, 4)), 8)

    def test_installed_once(self):
        """A second install changes nothing."""
        self.assertFalse(callkwargs.install(self.txaio, self.tx))
