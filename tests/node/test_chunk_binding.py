"""
The chunk_binding patch: a fan-out larger than the realm's
``event_dispatching_chunk_size`` to a topic that several subscriptions
match sends every receiver its own subscription's EVENT. Units on a loop
that schedules its chunks as Crossbar's broker does, and a real node whose
chunk size is 2: three users subscribed to an ``app.`` topic (which the
event history's ``app.`` prefix also matches) each get the event published
through ``POST /apps/publish`` and stay joined; without the patch the third
got the history's EVENT and autobahn ended its session.
"""

import base64
import json

import treq
from twisted.internet import defer, task
from twisted.trial import unittest

from components.applications.app_registry import AppRegistry
from components.core.settings import Settings
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek
from components.node.patches import PatchUnavailable, chunk_binding
from tests.support.clients import connect
from tests.support.node import RouterNode
from tests.support.polling import eventually

CHUNK = 2


class FakeTxaio:
    """The txaio a fake broker module uses: ``call_later`` on a task.Clock."""

    def __init__(self, clock):
        self.clock = clock

    def call_later(self, delay, function, *args):
        return self.clock.callLater(delay, function, *args)


def make_broker(txaio_holder):
    """A module-like object whose ``publish`` loops over subscriptions as Crossbar's ``processPublish``
    does: per subscription a nested ``_notify_some`` sends CHUNK receivers and schedules the rest."""

    class Broker:
        def processPublish(self, subscriptions, sent):
            for subscription, receivers in subscriptions:
                msg = "event for " + subscription

                def _notify_some(receivers):
                    for receiver in receivers[:CHUNK]:
                        sent.append((receiver, msg))
                    rest = receivers[CHUNK:]
                    if rest:
                        return holder.txaio.call_later(0, _notify_some, rest)

                _notify_some(receivers)

    holder = txaio_holder
    holder.Broker = Broker
    holder.__name__ = "fake.broker"
    return holder


class Module:
    """A stand-in for ``crossbar.router.broker``: attributes only."""


class ChunkBindingUnitTests(unittest.SynchronousTestCase):

    def publish(self, patched):
        clock = task.Clock()
        module = make_broker(Module())
        module.txaio = FakeTxaio(clock)
        if patched:
            self.assertTrue(chunk_binding.install(module))
        sent = []
        module.Broker().processPublish([("exact", ["a", "b", "c", "d", "e"]), ("prefix", ["history"])], sent)
        clock.advance(0)
        clock.advance(0)
        return sent

    def test_without_the_patch_later_chunks_send_the_last_subscriptions_event(self):
        """What Crossbar does: receivers past the first chunk get the last loop iteration's EVENT."""
        sent = dict(self.publish(patched=False))
        self.assertEqual(sent["c"], "event for prefix")

    def test_every_chunk_sends_its_own_subscriptions_event(self):
        sent = self.publish(patched=True)
        self.assertEqual(sorted(sent), [("a", "event for exact"), ("b", "event for exact"),
                                        ("c", "event for exact"), ("d", "event for exact"),
                                        ("e", "event for exact"), ("history", "event for prefix")])

    def test_bound_copy(self):
        """Free variables keep their current values, an unassigned one stays unassigned, the own name is the
        copy; a function without free variables is itself."""
        def outer():
            value = 1

            def _notify_some():
                return value, later, _notify_some
            copy = chunk_binding.bound(_notify_some)
            value = 2
            later = 3
            return _notify_some, copy
        original, copy = outer()
        self.assertEqual(original()[:2], (2, 3))
        self.assertRaises(NameError, copy)
        self.assertIsNot(copy, original)
        self.assertTrue(getattr(copy, chunk_binding.BOUND))
        self.assertIs(chunk_binding.bound(len), len)

    def test_install_once_and_refusals(self):
        module = make_broker(Module())
        module.txaio = FakeTxaio(task.Clock())
        self.assertTrue(chunk_binding.install(module))
        self.assertFalse(chunk_binding.install(module))
        bare = Module()
        bare.__name__ = "fake.broker"
        self.assertRaises(PatchUnavailable, chunk_binding.install, bare)
        other = Module()
        other.__name__ = "fake.broker"
        other.txaio = FakeTxaio(task.Clock())
        other.Broker = type("Broker", (), {"processPublish": lambda self: None})
        self.assertRaises(PatchUnavailable, chunk_binding.install, other)

    def test_crossbars_broker_has_the_shape(self):
        """The installed Crossbar's broker defines and schedules ``_notify_some`` as the patch expects."""
        from crossbar.router import broker
        self.assertTrue(chunk_binding.schedules_chunks(broker.Broker))


def with_chunk(config):
    for worker in config["workers"]:
        for realm in worker.get("realms", []):
            realm.setdefault("options", {})["event_dispatching_chunk_size"] = CHUNK
    return config


class ChunkBindingNodeTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        self.node = RouterNode(name="chunk-binding", transform=with_chunk)
        self.addCleanup(self.node.cleanup)
        yield self.node.start()
        self.addCleanup(self.node.stop)
        settings = Settings(environ=self.node.env, node_directory=self.node.directory)
        registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        self.addCleanup(registry.db.close)
        key, secret = yield registry.add("chunks")
        self.auth = "Basic " + base64.b64encode("{}:{}".format(key, secret).encode("utf-8")).decode("ascii")

    @defer.inlineCallbacks
    def test_every_subscriber_past_the_chunk_gets_the_event(self):
        got = {}
        clients = {}
        for name in ("ann", "bob", "cid"):
            clients[name] = yield connect(self, self.node, sub=name)
            yield clients[name].session.subscribe(
                lambda *args, name=name: got.setdefault(name, []).append(args), "app.chunks.news")
        response = yield treq.post(self.node.http + "/apps/publish", persistent=False, timeout=30,
                                   data=json.dumps({"topic": "app.chunks.news", "args": ["hello"]}).encode(),
                                   headers={b"Authorization": [self.auth.encode("ascii")],
                                            b"Content-Type": [b"application/json"]})
        self.assertEqual(response.code, 200, (yield response.text()))
        yield eventually(lambda: len(got) == 3, timeout=30, message="not every subscriber got the event",
                         details=lambda: repr(got) + self.node.log_tail(20))
        self.assertEqual(got, {name: [("hello",)] for name in ("ann", "bob", "cid")})
        for name, client in clients.items():
            self.assertTrue(client.session.is_attached(), name)
        self.assertNotIn("AlreadyCalledError", self.node.log_text())
