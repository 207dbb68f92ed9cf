"""
Alarms through a real router: rules added and removed with the
``reactive-hub alarm`` command while the node runs, a device reporting with
a ``device`` token, users and admins on WAMP. Each rule (above, below,
silent for) raises and clears on ``iot.alarm``; the events are in
``hub.history``; ``iot.alarms`` lists them; an admin acknowledges (a user
is refused); a restart neither raises a raised alarm again nor forgets it.
The command and the alarm tables on SQLite and PostgreSQL.
"""

import copy
import json
import os
import subprocess
import sys
import uuid
from types import SimpleNamespace

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, threads
from twisted.trial import unittest

from components.core import errors
from components.event_history import HISTORY as HUB_HISTORY
from components.iot import ALARM_ACK, ALARM_TOPIC, ALARMS, DEVICE_PUBLISH, device_topic
from components.node import topology
from tests.support.clients import connect
from tests.support.databases import OnPostgreSQL, OnSQLite
from tests.support.devices import register
from tests.support.node import REPO, RouterNode, free_port
from tests.support.polling import eventually

HUB = os.path.join(os.path.dirname(sys.executable), "reactive-hub")
FAST = {"ALARM_RELOAD_INTERVAL": "0.2", "HISTORY_FLUSH_INTERVAL": "0.05"}


def alarm_command(node, *args):
    """``reactive-hub alarm ARGS --json`` on ``node``'s directory; fire with (exit code, parsed stdout)."""
    def run():
        done = subprocess.run([HUB, "alarm"] + list(args) + ["--json", "--cbdir", node.directory],
                              env=node.env, cwd=REPO, capture_output=True, text=True, check=False)
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else done.stderr
    return threads.deferToThread(run)


class AlarmRouterTests(unittest.TestCase):

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.node = RouterNode(name="alarms", env=FAST)
        self.addCleanup(self.node.cleanup)
        yield self.node.start()
        self.user = yield connect(self, self.node, sub="alice", role="user")
        self.admin = yield connect(self, self.node, sub="root", role="admin")
        self.events = []
        yield self.user.session.subscribe(self.events.append, ALARM_TOPIC)

    @defer.inlineCallbacks
    def device(self):
        name = "pump-" + uuid.uuid4().hex[:8]
        yield register(self, self.node, name)
        client = yield connect(self, self.node, sub=name, role="device")
        return device_topic(name), client

    @defer.inlineCallbacks
    def add_rule(self, *args):
        code, rule = yield alarm_command(self.node, "add", *args)
        self.assertEqual(code, 0, rule)
        return rule

    def changes(self, rule):
        return [(event["state"], event["change"]) for event in self.events if event["rule"] == rule["id"]]

    def until_change(self, rule, count, publish=None):
        """Poll (publishing ``publish()`` each time when given) until ``rule`` has ``count`` changes."""
        def check():
            if len(self.changes(rule)) >= count:
                return True
            return publish().addCallback(lambda _: False) if publish else False
        return eventually(check, timeout=30, message="rule {} never had {} changes: {}".format(
            rule["id"], count, self.changes(rule)), details=self.node.log_tail)

    @defer.inlineCallbacks
    def test_rules_raise_clear_ack_history_restart(self):
        """Above, below and silent rules added on the running node raise and clear; ack; history; restart."""
        source, device = yield self.device()

        def send(value):
            return lambda: device.session.call(DEVICE_PUBLISH, value)

        above = yield self.add_rule(source, "--above", "80", "--hysteresis", "5")
        self.assertEqual(above["condition"], "above 80 (hysteresis 5)")
        # the rule is read by the running node within ALARM_RELOAD_INTERVAL: keep reporting 90 until raised
        yield self.until_change(above, 1, send(90))
        yield device.session.call(DEVICE_PUBLISH, 77)   # inside the hysteresis band: still raised
        yield self.until_change(above, 2, send(74))
        self.assertEqual(self.changes(above), [("raised", "raised"), ("cleared", "cleared")])
        first = [event for event in self.events if event["rule"] == above["id"]][0]
        self.assertEqual((first["source"], first["value"]), (source, 90))
        self.assertTrue(first["seq"] >= first["ts"] > 0)

        below = yield self.add_rule(source, "--below", "10")
        yield self.until_change(below, 1, send(5))
        yield self.until_change(below, 2, send(50))
        self.assertEqual(self.changes(below), [("raised", "raised"), ("cleared", "cleared")])

        quiet_source, quiet = yield self.device()
        silent = yield self.add_rule(quiet_source, "--silent-for", "1")
        yield self.until_change(silent, 1)
        yield quiet.session.call(DEVICE_PUBLISH, 1)
        yield self.until_change(silent, 2)
        self.assertEqual(self.changes(silent)[:2], [("raised", "raised"), ("cleared", "cleared")])

        # listed while raised; a user may not acknowledge, an admin may
        yield self.until_change(above, 3, send(95))
        listed = yield self.user.session.call(ALARMS)
        raised = [alarm for alarm in listed["value"] if alarm["rule"] == above["id"]]
        self.assertEqual([(alarm["state"], alarm["acked_by"]) for alarm in raised], [("raised", None)])
        self.assertGreaterEqual(listed["seq"], max(event["seq"] for event in self.events))
        with self.assertRaises(ApplicationError) as refused:
            yield self.user.session.call(ALARM_ACK, source, above["id"])
        self.assertIn(refused.exception.error, (ApplicationError.NOT_AUTHORIZED, errors.NOT_AUTHORIZED))
        acked = yield self.admin.session.call(ALARM_ACK, source, above["id"])
        self.assertEqual((acked["state"], acked["acked_by"], acked["change"]), ("raised", "root", "acked"))
        yield self.until_change(above, 4)
        with self.assertRaises(ApplicationError) as missing:
            yield self.admin.session.call(ALARM_ACK, source, 999999)
        self.assertEqual(missing.exception.error, errors.NOT_FOUND)

        # every change is in the stored history of iot.alarm
        def stored():
            return self.user.session.call(HUB_HISTORY, ALARM_TOPIC, limit=1000)
        page = yield eventually(stored, check=lambda page: len(page["events"]) >= len(self.events),
                                message="iot.alarm history incomplete")
        history = [(event["args"][0]["rule"], event["args"][0]["change"]) for event in page["events"]]
        self.assertEqual(history, [(event["rule"], event["change"]) for event in self.events])

        # a restart: the raised alarm is still listed (acknowledged), and not raised again
        before = len(self.events)
        yield self.node.stop()
        yield self.node.start()
        user = yield connect(self, self.node, sub="alice", role="user")
        after = []
        yield user.session.subscribe(after.append, ALARM_TOPIC)
        listed = yield eventually(lambda: user.session.call(ALARMS), retry_on=(ApplicationError,),
                                  message="iot.alarms not answering after the restart")
        raised = [alarm for alarm in listed["value"] if alarm["rule"] == above["id"]]
        self.assertEqual([(alarm["state"], alarm["acked_by"]) for alarm in raised], [("raised", "root")])
        device = yield connect(self, self.node, sub=source.rsplit(".", 1)[1], role="device")
        yield device.session.call(DEVICE_PUBLISH, 99)
        yield device.session.call(DEVICE_PUBLISH, 1)
        yield eventually(lambda: any(event["rule"] == below["id"] for event in after),
                         message="no alarm after the restart", details=self.node.log_tail)
        self.assertNotIn((above["id"], "raised"), [(event["rule"], event["change"]) for event in after])
        self.assertEqual(len(self.events), before)  # the old session went with the restart

        # a rule removed with the command clears its raised alarm at once
        code, removed = yield alarm_command(self.node, "remove", str(below["id"]))
        self.assertEqual((code, removed["id"]), (0, below["id"]))
        yield eventually(lambda: (below["id"], "removed") in [(item["rule"], item["change"])
                                                              for item in after],
                         message="removing the rule did not clear its alarm")
        code, _ = yield alarm_command(self.node, "remove", str(below["id"]))
        self.assertEqual(code, 3)


class AlarmReplicasTests(unittest.TestCase):
    """Two router workers (``topology client --routers 2``): an evaluator on each, one database."""

    timeout = 240

    @defer.inlineCallbacks
    def test_both_workers_answer_and_raise_once(self):
        """iot.alarms and iot.alarm.ack answer on both workers; each change is published once."""
        node = RouterNode(name="alarm-replicas", env=FAST)
        self.addCleanup(node.cleanup)
        config = topology.router_replicas_config(routers=2, port=node.port)
        direct = []
        for router in (worker for worker in config["workers"] if worker["type"] == "router"):
            port = free_port()
            direct.append(SimpleNamespace(url="ws://127.0.0.1:{}/ws".format(port)))  # each worker's own port
            transport = copy.deepcopy(router["transports"][0])
            transport.update(id="direct", endpoint={"type": "tcp", "port": port})
            transport["paths"] = {"ws": transport["paths"]["ws"]}
            router["transports"].append(transport)
        with open(os.path.join(node.directory, "config.json"), "w") as handle:
            json.dump(config, handle)
        yield node.start()
        yield eventually(lambda: node.log_text().count("Ok, router-to-router") >= 2, timeout=60,
                         message="links between the router workers not up", details=node.log_tail)
        yield eventually(lambda: node.log_text().count("alarms: rules read every") >= 2, timeout=60,
                         message="no alarm evaluator on both router workers", details=node.log_tail)
        seen = [[], []]
        users = []
        for index, worker in enumerate(direct):
            user = yield connect(self, worker, sub="watcher{}".format(index), role="user")
            yield user.session.subscribe(seen[index].append, ALARM_TOPIC)
            users.append(user)
        name = "pump-" + uuid.uuid4().hex[:8]
        yield register(self, node, name)
        device = yield connect(self, direct[1], sub=name, role="device")
        code, rule = yield alarm_command(node, "add", name, "--above", "80")
        self.assertEqual(code, 0, rule)

        def changes(index):
            return [event["change"] for event in seen[index] if event["rule"] == rule["id"]]

        def changed(count, value):
            def check():
                if all(len(changes(index)) >= count for index in (0, 1)):
                    return True
                return device.session.call(DEVICE_PUBLISH, value).addCallback(lambda _: False)
            # retried when the device's rate limit refuses a reading
            return eventually(check, timeout=30, interval=0.2, retry_on=(ApplicationError,),
                              details=node.log_tail, message="not {} changes on both workers: {}".format(
                                  count, [changes(0), changes(1)]))

        yield changed(1, 90)
        for user in users:
            listed = yield eventually(
                lambda user=user: user.session.call(ALARMS), retry_on=(ApplicationError,),
                check=lambda listed: any(alarm["rule"] == rule["id"] for alarm in listed["value"]),
                message="iot.alarms does not list the raised alarm")
            self.assertEqual([alarm["state"] for alarm in listed["value"] if alarm["rule"] == rule["id"]],
                             ["raised"])
        admin = yield connect(self, direct[1], sub="root", role="admin")
        acked = yield admin.session.call(ALARM_ACK, device_topic(name), rule["id"])
        self.assertEqual((acked["change"], acked["acked_by"]), ("acked", "root"))
        yield changed(3, 70)
        self.assertEqual([changes(0), changes(1)], [["raised", "acked", "cleared"]] * 2)
        seqs = [event["seq"] for event in seen[0]]
        self.assertEqual(seqs, sorted(set(seqs)))


def command(env, *args):
    """``reactive-hub alarm ARGS`` with ``env``; fire with (exit code, stdout, stderr)."""
    def run():
        done = subprocess.run([HUB, "alarm"] + list(args), env=env, cwd=REPO, capture_output=True, text=True,
                              check=False)
        return done.returncode, done.stdout, done.stderr
    return threads.deferToThread(run)


class CommandMixin:
    """``reactive-hub alarm`` and the alarm tables on the database of ``database_url()``."""

    timeout = 120

    @defer.inlineCallbacks
    def test_add_list_remove_and_refusals(self):
        env = dict(os.environ, DATABASE_URL=self.database_url())
        code, out, _ = yield command(env, "add", "pump-1", "--above", "80", "--hysteresis", "2.5", "--json")
        self.assertEqual(code, 0)
        added = json.loads(out)
        self.assertEqual((added["source"], added["kind"], added["threshold"], added["hysteresis"]),
                         ("iot.device.pump-1", "above", 80.0, 2.5))
        code, out, _ = yield command(env, "add", "iot.serial.reader", "--silent-for", "30")
        self.assertEqual((code, out), (0, "alarm rule {} added: iot.serial.reader silent for 30 s\n".format(
            added["id"] + 1)))
        code, out, _ = yield command(env, "list", "--json")
        self.assertEqual([rule["condition"] for rule in json.loads(out)],
                         ["above 80 (hysteresis 2.5)", "silent for 30 s"])
        code, out, _ = yield command(env, "list")
        self.assertEqual(out.splitlines()[0].split(), ["id", "source", "condition", "created"])
        for args, expected in ((("add", "iot.nothing", "--above", "1"), 1),
                               (("add", "pump-1", "--below", "nan"), 1),
                               (("add", "pump-1", "--silent-for", "0"), 1),
                               (("add", "pump-1", "--above", "1", "--below", "2"), 2),
                               (("add", "pump-1"), 2),
                               (("remove", "999"), 3)):
            code, _, err = yield command(env, *args)
            self.assertEqual(code, expected, (args, err))
        code, _, err = yield command(env, "remove", "999", "--json")
        self.assertEqual(json.loads(err)["error"], errors.NOT_FOUND)
        code, out, _ = yield command(env, "remove", str(added["id"]), "--json")
        self.assertEqual((code, json.loads(out)["id"]), (0, added["id"]))
        code, out, _ = yield command(env, "list", "--json")
        self.assertEqual(len(json.loads(out)), 1)

    @defer.inlineCallbacks
    def test_alarm_states_stored(self):
        from components.db.database import Database
        from components.iot.alarm_rules import AlarmStore
        store = AlarmStore(Database(self.database_url()))
        self.addCleanup(store.db.close)
        alarm = {"rule": 7, "source": "iot.odata.value", "state": "raised", "value": "42", "raised_ts": 1,
                 "ts": 2, "seq": 3, "acked_by": None, "acked_ts": None}
        yield store.change(alarm, None)
        yield store.change(dict(alarm, state="cleared", value=None, seq=4, acked_by="root", acked_ts=5), 3)
        stored = yield store.alarms()
        self.assertEqual(stored, [dict(alarm, state="cleared", value=None, seq=4, acked_by="root",
                                       acked_ts=5)])
        yield store.forget(7)
        self.assertEqual((yield store.alarms()), [])


class SQLiteCommandTests(OnSQLite, CommandMixin, unittest.TestCase):
    """On a SQLite file."""


class PostgreSQLCommandTests(OnPostgreSQL, CommandMixin, unittest.TestCase):
    """On PostgreSQL (BIGSERIAL ids, RETURNING, ON CONFLICT)."""
