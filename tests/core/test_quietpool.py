"""
components.core.quietpool: a failed connection through the pool writes no
"Starting factory" / "Stopping factory" lines (Twisted's pool writes a pair).
"""

from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from components.core.quietpool import QuietConnectionPool
from tests.support.ports import free_port as closed_port  # reserved for this process, never listened on


class QuietPoolTests(unittest.TestCase):

    @defer.inlineCallbacks
    def factory_lines(self, pool):
        """The factory lines logged while a GET to a closed port fails through ``pool``."""
        lines = []

        def observe(event):
            text = formatEvent(event)
            if "factory" in text.lower():
                lines.append(text)
        globalLogPublisher.addObserver(observe)
        try:
            agent = Agent(reactor, pool=pool, connectTimeout=5)
            url = "http://127.0.0.1:{}/".format(closed_port()).encode("ascii")
            with self.assertRaises(Exception):
                yield agent.request(b"GET", url)
        finally:
            globalLogPublisher.removeObserver(observe)
            yield pool.closeCachedConnections()
        return lines

    @defer.inlineCallbacks
    def test_failed_connection_is_silent(self):
        noisy = yield self.factory_lines(HTTPConnectionPool(reactor, persistent=True))
        self.assertTrue(noisy)  # what the plain pool writes (Starting/Stopping factory)
        quiet = yield self.factory_lines(QuietConnectionPool(reactor))
        self.assertEqual(quiet, [])
