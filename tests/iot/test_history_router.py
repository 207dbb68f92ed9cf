"""
IoT history through a real router: the serial reader reads a real
pseudo-terminal, devices report with a ``device`` token, and users read
``iot.history`` / ``iot.sources``. History survives a hub restart on SQLite
and on PostgreSQL with seq still increasing, and its rollups with it;
pruning by count and by age sets the pruned flag; only users and admins may
read it.
"""

import subprocess
import sys

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, threads
from twisted.trial import unittest

from components.auth import AUTH_NO_TOKEN
from components.core import errors
from components.iot import DEVICE_PUBLISH, HISTORY, SERIAL_TOPIC, SOURCES
from tests.support.clients import connect
from tests.support.databases import postgres_url
from tests.support.node import REPO, RouterNode, shared_node
from tests.support.polling import eventually
from tests.support.serialpty import FakeArduino

FAST = {"HISTORY_FLUSH_INTERVAL": "0.05", "HISTORY_PRUNE_INTERVAL": "0.2"}


def arduino(testcase):
    device = FakeArduino()
    testcase.addCleanup(device.close)
    device.plug()
    return device


@defer.inlineCallbacks
def history(client, *args, **kwargs):
    answer = yield client.session.call(HISTORY, *args, **kwargs)
    return answer


def stored(client, count, source=SERIAL_TOPIC, **kwargs):
    """Poll iot.history until it holds ``count`` states; fire with the answer."""
    return eventually(lambda: history(client, source, **kwargs),
                      check=lambda answer: len(answer["states"]) == count,
                      message="history never held {} states".format(count))


@defer.inlineCallbacks
def write_each(client, device, values):
    """Write ``values`` one at a time, each awaited as its own event; fire with the events."""
    events = []
    subscription = yield client.session.subscribe(events.append, SERIAL_TOPIC)
    for value in values:
        device.write(b"%d\n" % value)
        yield eventually(lambda: events and events[-1]["value"] == value, message="%d not published" % value)
    yield subscription.unsubscribe()
    return events


def register_device(node, name):
    """``python -m components.iot device add NAME`` on ``node``'s directory (a device token needs it)."""
    def add():
        subprocess.run([sys.executable, "-m", "components.iot", "device", "add", name, "--json",
                        "--cbdir", node.directory], env=node.env, cwd=REPO, check=False, capture_output=True)
    return threads.deferToThread(add)


class RestartMixin:
    """History across a restart of the hub, for the database of ``database_env``."""

    timeout = 120

    @defer.inlineCallbacks
    def test_history_across_restart(self):
        """States before and after a restart are all in the history, oldest first, seq strictly increasing."""
        device = arduino(self)
        env = dict(FAST, SERIAL_URL=device.path, **self.database_env())
        node = RouterNode(name="history-restart", env=env)
        self.addCleanup(node.cleanup)
        yield node.start()
        yield eventually(lambda: "serial device open" in node.log_text(), message="reader did not open")
        client = yield connect(self, node)
        yield write_each(client, device, (10, 20, 30))
        before = yield stored(client, 3)
        self.assertEqual([item["value"] for item in before["states"]], [10, 20, 30])
        yield client.close()
        yield node.stop()

        yield node.start()
        yield eventually(lambda: node.log_text().count("serial device open") >= 2,
                         message="reader did not reopen the pty after the restart")
        client = yield connect(self, node)
        yield write_each(client, device, (40, 50))
        after = yield stored(client, 5)
        self.assertEqual([item["value"] for item in after["states"]], [10, 20, 30, 40, 50])
        seqs = [item["seq"] for item in after["states"]]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertEqual(after["states"][:3], before["states"])
        self.assertFalse(after["pruned"])
        live = yield client.session.call("iot.serial.get")
        self.assertEqual(live["seq"], seqs[-1])
        # the writer's batches rolled up as they were stored, on this database, across the restart
        for resolution in ("1m", "1h"):
            rows = (yield history(client, SERIAL_TOPIC, resolution=resolution, limit=1000))["states"]
            self.assertEqual((sum(row["count"] for row in rows), min(row["min"] for row in rows),
                              max(row["max"] for row in rows), rows[-1]["last"], rows[-1]["last_seq"]),
                             (5, 10, 50, 50, seqs[-1]), resolution)


class RestartOnSQLiteTests(RestartMixin, unittest.TestCase):
    def database_env(self):
        return {}


class RestartOnPostgreSQLTests(RestartMixin, unittest.TestCase):
    def database_env(self):
        return {"DATABASE_URL": postgres_url(self)}


class HistoryReadTests(unittest.TestCase):
    """after_seq, limit, minutes, pruning by count, sources and permissions on one node."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.device = _shared_arduino()
        self.node = yield shared_node("history-read", env=dict(
            FAST, SERIAL_URL=self.device.path, HISTORY_MAX_STATES="6", IOT_STALE_AFTER="1"))
        yield eventually(lambda: "serial device open" in self.node.log_text(), message="reader did not open")
        self.client = yield connect(self, self.node)

    def readings(self, values):
        return write_each(self.client, self.device, values)

    @defer.inlineCallbacks
    def test_after_seq_limit_minutes_and_pruning_by_count(self):
        """Pages by after_seq and limit; minutes keeps recent ones; beyond 6 states the oldest are pruned."""
        base = 1000 + 100 * _next_round()
        events = yield self.readings([base + i for i in range(1, 10)])
        seqs = [event["seq"] for event in events]
        last = yield eventually(lambda: history(self.client, SERIAL_TOPIC, limit=1000),
                                check=lambda answer: [item["seq"] for item in answer["states"]] == seqs[-6:],
                                message="not pruned to the newest 6")
        self.assertTrue(last["pruned"])
        page = yield history(self.client, SERIAL_TOPIC, after_seq=seqs[-6], limit=2)
        self.assertEqual(([s["value"] for s in page["states"]], page["more"], page["pruned"]),
                         ([base + 5, base + 6], True, False))
        page = yield history(self.client, source=SERIAL_TOPIC, after_seq=seqs[-3])
        self.assertEqual(([s["seq"] for s in page["states"]], page["more"]), (seqs[-2:], False))
        gap = yield history(self.client, SERIAL_TOPIC, after_seq=seqs[0])
        self.assertTrue(gap["pruned"])
        recent = yield history(self.client, SERIAL_TOPIC, minutes=10)
        self.assertEqual([s["seq"] for s in recent["states"]], seqs[-6:])
        nothing = yield history(self.client, "iot.device.nobody-here")
        self.assertEqual((nothing["states"], nothing["pruned"]), ([], False))

    @defer.inlineCallbacks
    def test_bad_arguments(self):
        """Bad arguments answer invalid_argument."""
        for args, kwargs in [((), {}), (("time.tic",), {}), ((SERIAL_TOPIC,), {"limit": 0}),
                             ((SERIAL_TOPIC,), {"limit": 1001}), ((SERIAL_TOPIC,), {"after_seq": "x"}),
                             ((SERIAL_TOPIC,), {"minutes": -1})]:
            with self.assertRaises(ApplicationError) as caught:
                yield history(self.client, *args, **kwargs)
            self.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT, (args, kwargs))

    @defer.inlineCallbacks
    def test_sources_live_and_stale(self):
        """Serial is live after a reading; a device goes stale after IOT_STALE_AFTER without one."""
        yield self.readings([5000 + _next_round()])
        yield register_device(self.node, "history-dev")
        device = yield connect(self, self.node, sub="history-dev", role="device")
        answer = yield device.session.call(DEVICE_PUBLISH, 7)

        def sources():
            d = self.client.session.call(SOURCES)
            return d.addCallback(lambda items: {item["source"]: item for item in items})
        listed = yield eventually(sources, check=lambda listed: any(
            item["kind"] == "device" and item["state"]["seq"] == answer["seq"] for item in listed.values()),
            message="device reading not listed")
        serial = listed[SERIAL_TOPIC]
        self.assertEqual((serial["kind"], serial["live"], serial["state"]["stale"]), ("serial", True, False))
        self.assertEqual(serial["last_seen"], serial["state"]["ts"])
        (source,) = [name for name, item in listed.items() if item["state"]["seq"] == answer["seq"]]
        self.assertTrue(source.startswith("iot.device."))
        self.assertTrue(listed[source]["live"])
        self.assertEqual(listed[source]["state"]["value"], 7)
        stale = yield eventually(sources, check=lambda listed: not listed[source]["live"],
                                 message="device never went stale")
        self.assertEqual(stale[source]["last_seen"], listed[source]["last_seen"])

    @defer.inlineCallbacks
    def test_permissions(self):
        """Users and admins may read the history; a device may not; without a token nobody gets in."""
        admin = yield connect(self, self.node, sub="root", role="admin")
        page = yield history(admin, SERIAL_TOPIC, limit=1)
        self.assertEqual(page["source"], SERIAL_TOPIC)
        yield self.client.session.call(SOURCES)
        device = yield connect(self, self.node, sub="history-dev", role="device")
        for procedure, args in ((HISTORY, (SERIAL_TOPIC,)), (SOURCES, ())):
            with self.assertRaises(ApplicationError) as caught:
                yield device.session.call(procedure, *args)
            self.assertEqual(caught.exception.error, "wamp.error.not_authorized")
        with self.assertRaises(ApplicationError) as caught:
            yield connect(self, self.node, ticket="")
        self.assertEqual(caught.exception.error, AUTH_NO_TOKEN)


class PruneByAgeTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_pruning_by_age(self):
        """States older than HISTORY_MAX_AGE are pruned; the history then says so."""
        device = arduino(self)
        node = RouterNode(name="history-age", env=dict(FAST, SERIAL_URL=device.path, HISTORY_MAX_AGE="2s"))
        self.addCleanup(node.cleanup)
        yield node.start()
        yield eventually(lambda: "serial device open" in node.log_text(), message="reader did not open")
        client = yield connect(self, node)
        device.write(b"1\n")
        first = yield stored(client, 1)
        self.assertFalse(first["pruned"])
        gone = yield stored(client, 0)
        self.assertTrue(gone["pruned"])
        again = yield history(client, SERIAL_TOPIC, after_seq=first["states"][0]["seq"])
        self.assertEqual((again["states"], again["pruned"]), ([], False))


class HistoryOffTests(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def test_history_off(self):
        """HISTORY=off: readings still reach subscribers; iot.history and iot.sources answer unavailable."""
        device = arduino(self)
        node = RouterNode(name="history-off", env={"SERIAL_URL": device.path, "HISTORY": "off"})
        self.addCleanup(node.cleanup)
        yield node.start()
        yield eventually(lambda: "serial device open" in node.log_text(), message="reader did not open")
        client = yield connect(self, node)
        events = yield write_each(client, device, (3, 4))
        self.assertEqual([event["value"] for event in events], [3, 4])
        for procedure, args in ((HISTORY, (SERIAL_TOPIC,)), (SOURCES, ())):
            with self.assertRaises(ApplicationError) as caught:
                yield client.session.call(procedure, *args)
            self.assertEqual(caught.exception.error, errors.UNAVAILABLE)


_arduinos = []
_rounds = [0]


def _shared_arduino():
    if not _arduinos:
        _arduinos.append(FakeArduino())
        import atexit
        atexit.register(_arduinos[0].close)
        _arduinos[0].plug()
    return _arduinos[0]


def _next_round():
    _rounds[0] += 1
    return _rounds[0]
