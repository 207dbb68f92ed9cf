"""
A node on PostgreSQL holds few connections: its router worker shares one
pool per database (``DATABASE_POOL_MAX``, 3 by default) among all its
components, so joins, a click storm and the health checks stay within two
pools and the user-sync listener, not a pool per component.
"""

import uuid

import psycopg2
import treq
from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.support.clients import connect
from tests.support.databases import POSTGRES_ADMIN_URL, postgres_url
from tests.support.node import RouterNode

POOL_MAX = 3
# the router worker: a pool on each of the two databases, and the master's LISTEN connection
BOUND = 2 * POOL_MAX + 1


def connections_to(names):
    """How many server connections are open to the databases ``names`` now (a Deferred)."""
    def count():
        connection = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)", (list(names),))
                return cursor.fetchone()[0]
        finally:
            connection.close()
    return threads.deferToThread(count)


class ConnectionBoundTests(unittest.TestCase):
    """A dev node with DATABASE_URL and MASTER_DATABASE_URL on PostgreSQL, counted in pg_stat_activity."""

    timeout = 240

    @defer.inlineCallbacks
    def test_a_busy_node_stays_within_its_pools(self):
        """20 joins, 20 x 10 concurrent clicks and health checks: at most 2 x DATABASE_POOL_MAX + 1 connections."""
        client_url, master_url = postgres_url(self), postgres_url(self)
        names = [url.rsplit("/", 1)[1] for url in (client_url, master_url)]
        node = RouterNode(env={"DATABASE_URL": client_url, "MASTER_DATABASE_URL": master_url,
                               "DATABASE_POOL_MAX": str(POOL_MAX), "COUNTER_RATE": "100000",
                               "COUNTER_BURST": "100000"}, name="pools")
        self.addCleanup(node.cleanup)
        yield node.start(timeout=90)
        seen = []

        @defer.inlineCallbacks
        def sample():
            seen.append((yield connections_to(names)))

        clients = yield defer.gatherResults(
            [connect(self, node, sub="pool{}".format(index)) for index in range(20)])
        yield sample()
        name = "pools-" + uuid.uuid4().hex[:8]

        @defer.inlineCallbacks
        def clicks(client):
            for _ in range(10):
                yield client.session.call("counter.click", name=name)
        storm = defer.gatherResults([clicks(client) for client in clients])
        health = defer.gatherResults([treq.get(node.http + "/health/ready", persistent=False).addCallback(
            treq.content) for _ in range(5)])
        yield sample()
        yield defer.gatherResults([storm, health])
        yield sample()  # idle pooled connections stay open: this is the most the pools opened
        final = yield clients[0].session.call("counter.get", name)
        self.assertEqual(final["value"], 200)
        self.assertTrue(max(seen) >= 2, "the node holds no connection to its databases: {}".format(seen))
        self.assertLessEqual(max(seen), BOUND, "connections to the node's databases over time: {}".format(seen))
