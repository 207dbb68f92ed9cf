"""tests.support.node.shared: which shared resources a test process keeps alive, and when one is built again."""

from twisted.internet import defer
from twisted.trial import unittest

from tests.support import node as support


class Resource:
    def __init__(self, name, made):
        self.name = name
        self.running = False
        self.disposed = False
        made.append(self)


class SharedResourceTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.patch(support, "_shared", {})
        self.made = []

    def ask(self, key, start=None):
        def begin(resource):
            resource.running = True
            return defer.succeed(None) if start is None else start(resource)
        d = support.shared(key, build=lambda: Resource(key, self.made), start=begin,
                           alive=lambda resource: resource.running,
                           dispose=lambda resource: setattr(resource, "disposed", True))
        return self.successResultOf(d)

    def test_same_key_is_built_once(self):
        first = self.ask("a")
        self.assertIs(self.ask("a"), first)
        self.assertEqual(len(self.made), 1)

    def test_only_the_last_asked_for_stay_alive_and_the_kept_one_always(self):
        kept = self.ask(support.KEPT)
        names = ["n{}".format(index) for index in range(support.SHARED_ALIVE + 2)]
        resources = [self.ask(name) for name in names]
        self.assertEqual([resource.disposed for resource in resources],
                         [True, True] + [False] * support.SHARED_ALIVE)
        self.assertFalse(kept.disposed)
        self.assertEqual(sorted(support._shared), sorted([support.KEPT] + names[2:]))

    def test_asking_again_makes_a_resource_the_most_recent(self):
        first = self.ask("first")
        for index in range(support.SHARED_ALIVE - 1):
            self.ask("n{}".format(index))
            self.ask("first")
        self.ask("newest")
        self.assertFalse(first.disposed)
        self.assertTrue(self.made[1].disposed)

    def test_an_evicted_or_dead_resource_is_built_afresh(self):
        first = self.ask("a")
        first.running = False
        second = self.ask("a")
        self.assertIsNot(second, first)
        self.assertTrue(first.disposed)
        self.assertFalse(second.disposed)

    def test_a_failed_start_is_disposed_of_and_not_kept(self):
        d = support.shared("bad", build=lambda: Resource("bad", self.made),
                           start=lambda resource: defer.fail(RuntimeError("no start")),
                           alive=lambda resource: True, dispose=lambda resource: setattr(resource, "disposed", True))
        self.failureResultOf(d, RuntimeError)
        self.assertTrue(self.made[0].disposed)
        self.assertNotIn("bad", support._shared)
        self.assertIsNot(self.ask("bad"), self.made[0])
