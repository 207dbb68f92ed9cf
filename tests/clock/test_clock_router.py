"""
The clock through a real router: initial state, then ticks about 0.5 s
apart with strictly increasing ``seq``.
"""

import time

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.clients import connect
from tests.support.node import shared_node
from tests.support.polling import eventually


class ClockThroughRouterTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_get_then_ticks(self):
        """An authenticated client gets time.get, then ticks ~0.5 s apart with increasing seq."""
        node = yield shared_node()
        client = yield connect(self, node)
        ticks = []
        yield client.session.subscribe(lambda state: ticks.append((time.monotonic(), state)), "time.tic")
        initial = yield client.session.call("time.get")
        self.assertRegex(initial["value"], r"^\d\d:\d\d:\d\d$")
        self.assertIn("iso", initial)
        yield eventually(lambda: len(ticks) >= 5, timeout=10, message="fewer than 5 ticks")
        seqs = [state["seq"] for _, state in ticks]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertGreater(ticks[0][1]["seq"], 0)
        gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:])]
        average = sum(gaps) / len(gaps)
        self.assertTrue(0.3 < average < 0.8, "average gap {:.3f}s".format(average))

    @defer.inlineCallbacks
    def test_three_serializers(self):
        """JSON, MessagePack and CBOR clients all get time.get."""
        from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer
        node = yield shared_node()
        for serializer in (JsonSerializer(), MsgPackSerializer(), CBORSerializer()):
            client = yield connect(self, node, serializers=[serializer])
            state = yield client.session.call("time.get")
            self.assertIn("value", state)
