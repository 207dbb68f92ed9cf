"""
The dev node's demo sources (components.iot.demo): the simulated Arduino
(dead band and 100 ms pace on an injected clock, a real pseudo-terminal
behind a stable link), the demo OData service ($top, $orderby, the SCP
shape, 400s; a real local server), the demo device's registration and
signed posts, the configs (the demo in the dev node only), and a fresh dev
node started from the committed config whose serial, OData and device
panels are all live within 10 s of its start.
"""

import json
import os
import random
import shutil
import stat
import tempfile
import time

import treq
from twisted.internet import defer, reactor, task
from twisted.logger import Logger, formatEvent
from twisted.trial import unittest
from twisted.web.server import Site

from components.core.settings import Settings
from components.db.database import Database
from components.iot import DEVICE_PREFIX, ODATA_GET, SERIAL_GET, SERIAL_TOPIC, demo
from components.iot.demo import device as demo_device
from components.iot.demo.odata_service import DemoTable, IoTTableResource, ODataError, parse_query
from components.iot.demo.potentiometer import ADC_MAX, ArduinoSimulator, DeadBandReporter, Potentiometer
from components.iot.demo.pty_device import PseudoTerminal
from components.iot.demo.runner import DemoRunner, stopping_node
from components.iot.odata import extract_value, query_url
from components.iot.readings import parse_reading
from components.iot.device_registry import DeviceRegistry
from components.iot.request_signing import sign
from tests.support.clients import connect
from tests.support.databases import sqlite_url
from tests.support.node import CONFIG, checkout_node, free_port
from tests.support.polling import eventually
from tests.support.processes import run_until_said

NODE_DIR = os.path.dirname(CONFIG)


class Scripted:
    """A potentiometer that reads the given values in turn."""

    def __init__(self, values):
        self.values = list(values)

    def read(self):
        return self.values.pop(0)


class PotentiometerTests(unittest.SynchronousTestCase):
    """The wiper wanders over the ADC range and never leaves it."""

    def test_random_walk_stays_in_range_and_moves(self):
        """10,000 reads stay within 0..1023 and cover a wide span."""
        pot = Potentiometer(random.Random(7))
        readings = [pot.read() for _ in range(10000)]
        self.assertTrue(all(0 <= value <= ADC_MAX for value in readings))
        self.assertGreater(max(readings) - min(readings), 300)

    def test_clamped_at_the_ends(self):
        """Big steps from either end are clamped to 0 and 1023, never beyond."""
        for start in (ADC_MAX, 0):
            pot = Potentiometer(random.Random(1), start=start, step=500, rest=0)
            readings = [pot.read() for _ in range(200)]
            self.assertTrue(all(0 <= value <= ADC_MAX for value in readings))
            self.assertIn(start, readings)


class DeadBandTests(unittest.SynchronousTestCase):
    """The sketch's rule: a line when the reading moved by more than the band since the last line written."""

    def test_first_reading_always_written(self):
        self.assertEqual(DeadBandReporter(2).offer(512), b"512\r\n")

    def test_within_band_is_silent_and_compares_with_last_written(self):
        """With band 2: 500 written, 502 and 498 not, 503 is (3 from the last written 500, not from 502)."""
        reporter = DeadBandReporter(2)
        lines = [reporter.offer(value) for value in (500, 502, 498, 501, 503, 505, 506)]
        self.assertEqual(lines, [b"500\r\n", None, None, None, b"503\r\n", None, b"506\r\n"])


class ArduinoSimulatorTests(unittest.SynchronousTestCase):
    """Reads every 100 ms on the injected clock; writes only what passes the dead band."""

    def test_pace_and_dead_band(self):
        clock = task.Clock()
        written = []
        simulator = ArduinoSimulator(clock, written.append, Scripted([500, 501, 510, 510, 508, 100] + [100] * 20))
        simulator.start()
        self.assertEqual((simulator.reads, written), (1, [b"500\r\n"]))
        clock.advance(0.099)
        self.assertEqual(simulator.reads, 1)
        clock.advance(0.001)
        self.assertEqual(simulator.reads, 2)
        for _ in range(8):
            clock.advance(0.1)
        self.assertEqual(simulator.reads, 10)
        self.assertEqual(written, [b"500\r\n", b"510\r\n", b"100\r\n"])
        simulator.stop()
        clock.advance(5)
        self.assertEqual(simulator.reads, 10)

    def test_lines_are_what_the_serial_reader_parses(self):
        """Every line of a wandering run is one ASCII integer line the hub's serial reader accepts."""
        clock = task.Clock()
        written = []
        ArduinoSimulator(clock, written.append, Potentiometer(random.Random(3))).start()
        clock.pump([0.1] * 600)
        self.assertGreater(len(written), 100)
        for line in written:
            self.assertTrue(line.endswith(b"\r\n"))
            self.assertTrue(0 <= parse_reading(line.rstrip(b"\r\n")) <= ADC_MAX)


class PseudoTerminalTests(unittest.TestCase):
    """A real pty behind a stable link, replaced atomically and never blocking the writer."""

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="hub-demo-pty-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.link = os.path.join(self.directory, "run", "arduino")

    def _open_reader(self):
        fd = os.open(self.link, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        self.addCleanup(os.close, fd)
        return fd

    def test_link_reaches_the_slave_and_carries_lines(self):
        device = PseudoTerminal(self.link)
        self.addCleanup(device.close)
        device.open()
        self.assertEqual(os.readlink(self.link), device.device)
        self.assertTrue(device.device.startswith("/dev/pts/"))
        reader = self._open_reader()
        device.write(b"512\r\n")
        self.assertEqual(os.read(reader, 100), b"512\r\n")

    def test_close_removes_the_link_and_reopen_replaces_a_stale_one(self):
        """close() removes the link; a link left by a killed simulator is replaced, no temporary left behind."""
        first = PseudoTerminal(self.link)
        first.open()
        first.close()
        self.assertFalse(os.path.lexists(self.link))
        os.symlink("/dev/null", self.link)  # a stale link left by a killed simulator
        second = PseudoTerminal(self.link)
        self.addCleanup(second.close)
        second.open()
        self.assertEqual(os.readlink(self.link), second.device)
        self.assertEqual(os.listdir(os.path.dirname(self.link)), ["arduino"])

    def test_nobody_reading_never_blocks_and_keeps_fresh_lines(self):
        """With nobody reading, 50,000 lines are written without blocking; a late reader gets the newest ones."""
        device = PseudoTerminal(self.link)
        self.addCleanup(device.close)
        device.open()
        started = time.monotonic()
        for value in range(50000):
            device.write(b"%d\r\n" % (value % 1024))
        self.assertLess(time.monotonic() - started, 30)
        reader = self._open_reader()
        backlog = b""
        while True:
            try:
                chunk = os.read(reader, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            backlog += chunk
        self.assertLess(len(backlog), 50000 * 4)
        self.assertTrue(backlog.endswith(b"%d\r\n" % (49999 % 1024)), backlog[-20:])


class ODataQueryTests(unittest.SynchronousTestCase):
    """$top, $skip, $orderby and $format as the demo understands them; everything else refused."""

    def test_defaults(self):
        self.assertEqual(parse_query(b""), {"top": 100, "skip": 0, "orderby": ("G_CREATED", False)})

    def test_what_the_poller_sends(self):
        """The hub's poller query ($top=1, $orderby=G_CREATED%20desc) asks for the newest row."""
        raw = query_url("http://x/" + demo.ODATA_PATH).partition("?")[2].encode() + b"&$format=json"
        self.assertEqual(parse_query(raw), {"top": 1, "skip": 0, "orderby": ("G_CREATED", True)})

    def test_plus_and_asc(self):
        self.assertEqual(parse_query(b"$orderby=G_CREATED+asc&$top=5&$skip=2&custom=1")["orderby"],
                         ("G_CREATED", False))

    def test_bad_options_are_400(self):
        for raw in (b"$top=-1", b"$top=x", b"$top=1001", b"$top=1&$top=2", b"$orderby=C_VALUE desc",
                    b"$orderby=G_CREATED%20sideways", b"$orderby=", b"$filter=C_VALUE%20gt%201",
                    b"$format=xml", b"$select=C_VALUE", b"$top=%ff"):
            with self.assertRaises(ODataError, msg=raw) as caught:
                parse_query(raw)
            self.assertEqual(caught.exception.status, 400)


class DemoTableTests(unittest.SynchronousTestCase):
    """A row per interval, values wandering 0..100, ordered and limited as asked."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.table = DemoTable(self.clock, interval=1.0, size=50, random=random.Random(5))
        self.table.start()
        self.clock.pump([1.0] * 59)

    def test_rows_added_per_interval_and_bounded(self):
        self.assertEqual(len(self.table.rows), 50)
        self.assertEqual(self.table.rows[-1]["ID"], 60)

    def test_newest_first_with_desc_and_top(self):
        rows = self.table.query(top=3, orderby=("G_CREATED", True))
        self.assertEqual([row["ID"] for row in rows], [60, 59, 58])
        self.assertEqual(rows[0]["G_CREATED"], "/Date({})/".format(int(self.clock.seconds() * 1000)))
        self.assertEqual(set(rows[0]), {"__metadata", "ID", "G_DEVICE", "G_CREATED", "C_VALUE"})

    def test_oldest_first_and_skip(self):
        self.assertEqual([row["ID"] for row in self.table.query(top=2, skip=1)], [12, 13])

    def test_values_are_text_percentages_that_wander(self):
        values = [int(row["C_VALUE"]) for row in self.table.query(top=50)]
        self.assertTrue(all(0 <= value <= 100 for value in values))
        self.assertGreater(len(set(values)), 3)
        self.assertIsInstance(self.table.query(top=1)[0]["C_VALUE"], str)


class ODataServiceTests(unittest.TestCase):
    """The demo service over real HTTP: the shape the poller reads, errors as OData errors."""

    def setUp(self):
        self.clock = task.Clock()
        self.table = DemoTable(self.clock, interval=0.05, random=random.Random(9))
        self.table.start()
        self.addCleanup(self.table.stop)
        self.clock.pump([0.05] * 5)  # six rows, 50 ms apart
        site = Site(IoTTableResource(self.table))
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = "http://127.0.0.1:{}".format(self.port.getHost().port)

    @defer.inlineCallbacks
    def _get(self, path, method="GET"):
        response = yield treq.request(method, (self.base + path).encode(), persistent=False)
        body = yield response.content()
        return response.code, json.loads(body.decode()), response.headers

    @defer.inlineCallbacks
    def test_newest_row_as_the_poller_reads_it(self):
        """GET ?$top=1&$orderby=G_CREATED desc&$format=json: d.results[0].C_VALUE of the newest row."""
        code, document, headers = yield self._get(
            query_url(demo.ODATA_PATH).replace("/?", "?") + "&$format=json")
        self.assertEqual(code, 200)
        self.assertEqual(len(document["d"]["results"]), 1)
        self.assertEqual(document["d"]["results"][0]["ID"], self.table.rows[-1]["ID"])
        self.assertEqual(extract_value(document, "C_VALUE"), str(self.table.rows[-1]["value"]))
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json;charset=utf-8"])

    @defer.inlineCallbacks
    def test_top_and_order(self):
        code, document, _ = yield self._get(demo.ODATA_PATH + "?$top=3&$orderby=G_CREATED%20desc")
        created = [int(row["G_CREATED"][6:-2]) for row in document["d"]["results"]]
        self.assertEqual((code, len(created)), (200, 3))
        self.assertEqual(created, sorted(created, reverse=True))
        code, document, _ = yield self._get(demo.ODATA_PATH + "?$top=3&$orderby=G_CREATED%20asc")
        self.assertEqual([row["ID"] for row in document["d"]["results"]], [1, 2, 3])

    @defer.inlineCallbacks
    def test_errors(self):
        """Bad options 400, other paths 404, POST 405, each with an OData error body."""
        for path, method, status in ((demo.ODATA_PATH + "?$top=many", "GET", 400),
                                     (demo.ODATA_PATH + "?$filter=x", "GET", 400),
                                     (demo.ODATA_PATH + "?$orderby=C_VALUE", "GET", 400),
                                     ("/other", "GET", 404), (demo.ODATA_PATH, "POST", 405)):
            code, document, _ = yield self._get(path, method)
            self.assertEqual(code, status, path)
            self.assertEqual(document["error"]["code"], str(status))
            self.assertTrue(document["error"]["message"]["value"])


class DemoDeviceTests(unittest.TestCase):
    """Registration on first start, credentials kept 0600 and reused, a revoked device left alone."""

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="hub-demo-device-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.path = os.path.join(self.directory, demo.DEVICE_CREDENTIALS)
        self.db = Database(sqlite_url(self))
        self.addCleanup(self.db.close)
        self.registry = DeviceRegistry(self.db, os.urandom(32))

    @defer.inlineCallbacks
    def test_registers_once_and_reuses(self):
        first = yield demo_device.ensure_registered(self.registry, demo.DEVICE_NAME, self.path)
        self.assertEqual(first["name"], demo.DEVICE_NAME)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        device = yield self.registry.lookup(first["key"])
        self.assertEqual((device.name, device.secret), (demo.DEVICE_NAME, first["secret"]))
        again = yield demo_device.ensure_registered(self.registry, demo.DEVICE_NAME, self.path)
        self.assertEqual(again, first)
        listed = yield self.registry.list()
        self.assertEqual([item["name"] for item in listed], [demo.DEVICE_NAME])

    @defer.inlineCallbacks
    def test_lost_file_or_rotated_key_gets_fresh_credentials(self):
        first = yield demo_device.ensure_registered(self.registry, demo.DEVICE_NAME, self.path)
        os.unlink(self.path)
        second = yield demo_device.ensure_registered(self.registry, demo.DEVICE_NAME, self.path)
        self.assertNotEqual(second["key"], first["key"])
        yield self.registry.rotate(demo.DEVICE_NAME)
        third = yield demo_device.ensure_registered(self.registry, demo.DEVICE_NAME, self.path)
        self.assertNotEqual(third["key"], second["key"])
        device = yield self.registry.lookup(third["key"])
        self.assertEqual(device.secret, third["secret"])

    @defer.inlineCallbacks
    def test_revoked_stays_revoked(self):
        yield demo_device.ensure_registered(self.registry, demo.DEVICE_NAME, self.path)
        yield self.registry.revoke(demo.DEVICE_NAME)
        found = yield demo_device.ensure_registered(self.registry, demo.DEVICE_NAME, self.path)
        self.assertIsNone(found)

    def test_signed_post_is_on_its_own_topic(self):
        credentials = {"name": demo.DEVICE_NAME, "key": "dkabc", "secret": "s" * 40}
        url, body = demo_device.signed_post("http://h/publish", credentials, 42, 7, stamp="2026-01-01T00:00:00.000Z",
                                            nonce=9)
        self.assertEqual(json.loads(body), {"topic": DEVICE_PREFIX + demo.DEVICE_NAME, "args": [{"value": 42}]})
        signature = sign("s" * 40, "dkabc", "2026-01-01T00:00:00.000Z", 7, 9, body).replace("=", "%3D")
        self.assertEqual(url, "http://h/publish?key=dkabc&timestamp=2026-01-01T00:00:00.000Z&seq=7&nonce=9"
                              "&signature=" + signature)


def _load(name):
    with open(os.path.join(NODE_DIR, name)) as handle:
        return json.load(handle)


def _router(config):
    return next(worker for worker in config["workers"] if worker["type"] == "router")


def _extra(config, component_id):
    return next(item for item in _router(config)["components"] if item["id"] == component_id)["extra"]


def _everything(config):
    if isinstance(config, dict):
        for value in config.values():
            yield from _everything(value)
    elif isinstance(config, list):
        for value in config:
            yield from _everything(value)
    else:
        yield config


class ConfigTests(unittest.SynchronousTestCase):
    """The demo runs in the dev node only."""

    def test_dev_config_runs_the_demo(self):
        """config.json has the guest worker (before the router, so its ports exist when the pollers start)
        and points SERIAL_URL and ODATA_URL at it by default."""
        config = _load("config.json")
        ids = [worker["id"] for worker in config["workers"]]
        self.assertLess(ids.index(demo.WORKER), ids.index(_router(config)["id"]))
        worker = config["workers"][ids.index(demo.WORKER)]
        self.assertEqual(worker["type"], "guest")
        self.assertIn("-m components.iot.demo run", " ".join(worker["arguments"]))
        self.assertEqual(_extra(config, "serial_reader")["SERIAL_URL"], "${SERIAL_URL:-" + demo.ARDUINO_LINK + "}")
        self.assertEqual(_extra(config, "odata")["ODATA_URL"], "${ODATA_URL:-" + demo.ODATA_URL + "}")
        self.assertIn(":{}/".format(demo.ODATA_PORT), demo.ODATA_URL)

    def test_production_configs_have_no_demo(self):
        """master.json and client.json: no demo worker, no demo defaults, SERIAL_URL/ODATA_URL off when unset."""
        for name in ("master.json", "client.json"):
            config = _load(name)
            self.assertNotIn(demo.WORKER, [worker["id"] for worker in config["workers"]], name)
            self.assertEqual([worker["type"] for worker in config["workers"] if worker["type"] == "guest"], [], name)
            texts = [value for value in _everything(config) if isinstance(value, str)]
            self.assertEqual([text for text in texts if demo.ARDUINO_LINK in text or str(demo.ODATA_PORT) in text
                              or "components.iot.demo" in text], [], name)
        client = _load("client.json")
        self.assertEqual(_extra(client, "serial_reader")["SERIAL_URL"], "${SERIAL_URL}")
        self.assertEqual(_extra(client, "odata")["ODATA_URL"], "${ODATA_URL}")

    def test_topology_leaves_the_demo_out(self):
        """What `python -m components.node.topology write` makes of config.json has none of the demo."""
        from components.node import topology
        for name, text in topology.rendered().items():
            self.assertNotIn("components.iot.demo", text, name)
            self.assertNotIn(demo.ODATA_URL, text, name)
            self.assertNotIn(demo.ARDUINO_LINK, text, name)

    def test_without_demo(self):
        config = demo.without_demo(_load("config.json"))
        self.assertNotIn(demo.WORKER, [worker["id"] for worker in config["workers"]])
        self.assertEqual(_extra(config, "serial_reader")["SERIAL_URL"], "${SERIAL_URL}")


class RunnerTests(unittest.TestCase):
    """The demo OData port taken by another process refuses the demo's process (the dev node stops)."""

    def test_port_taken_refuses_with_one_line(self):
        """One critical line names the port, DEMO_ODATA_PORT and ODATA_URL; exit 78; no OData service."""
        directory = tempfile.mkdtemp(prefix="hub-demo-runner-")
        self.addCleanup(shutil.rmtree, directory, True)
        taken = reactor.listenTCP(0, Site(IoTTableResource(DemoTable(task.Clock()))), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        settings = Settings({}, {"DEMO_ODATA_PORT": str(port)}, directory)
        exits, lines = [], []
        runner = DemoRunner(reactor, settings, parts=("arduino", "odata"), exit=exits.append)
        runner.log = Logger(observer=lambda event: lines.append(formatEvent(event)))
        self.successResultOf(runner.start())
        self.addCleanup(runner.stop)
        self.assertEqual(exits, [78])
        self.assertIsNone(runner.listening)
        self.assertEqual(len(lines), 2, lines)  # the Arduino's info line, then the refusal
        for text in ("refuses to start", "127.0.0.1:{} is taken".format(port), "DEMO_ODATA_PORT", "ODATA_URL"):
            self.assertIn(text, lines[1])

    def test_stopping_node_signals_the_parent_then_exits(self):
        """As the dev node's guest worker the refusal first sends SIGTERM to the controller (the parent)."""
        import signal
        calls = []
        stop = stopping_node(exit=lambda code: calls.append(("exit", code)),
                             kill=lambda pid, sig: calls.append(("kill", pid, sig)), parent=lambda: 4242)
        stop(78)
        self.assertEqual(calls, [("kill", 4242, signal.SIGTERM), ("exit", 78)])


class SwitchOffTests(unittest.TestCase):
    """DEMO=off: the worker's process says so and stays up (the dev node stops when a worker exits)."""

    timeout = 180

    @defer.inlineCallbacks
    def test_demo_off_idles(self):
        directory = tempfile.mkdtemp(prefix="hub-demo-off-")
        self.addCleanup(shutil.rmtree, directory, True)
        process, said = yield run_until_said(self, directory, ["components.iot.demo", "--cbdir", directory],
                                             "demo: off (DEMO=off)", env=dict(os.environ, DEMO="off"))
        self.assertTrue(said)
        self.assertIsNone(process.poll())
        self.assertFalse(os.path.lexists(os.path.join(directory, demo.ARDUINO_LINK)))


class FreshDevNodeTests(unittest.TestCase):
    """
    A fresh dev node from the committed config.json, its demo worker kept,
    laid out as a checkout is (``.venv`` beside the node directory): every
    IoT panel is live within 10 s of the start.
    """

    timeout = 120

    @defer.inlineCallbacks
    def test_every_panel_live_within_10s(self):
        """
        Within 10 s of the node being up (router worker ready), iot.serial.get and
        iot.odata.get answer fresh, non-stale values, the serial value wanders in
        events, and a reading of the registered demo device arrives on its topic.
        """
        odata_port = free_port()
        node = checkout_node(self, "demo-checkout", keep_workers=(demo.WORKER,),
                             env={"DEMO": "on", "DEMO_ODATA_PORT": str(odata_port),
                                  "ODATA_URL": "http://127.0.0.1:{}{}".format(odata_port, demo.ODATA_PATH)})
        launched = time.monotonic()
        yield node.start()
        started = time.monotonic()
        client = yield connect(self, node)
        serial_events, device_events = [], []
        yield client.session.subscribe(serial_events.append, SERIAL_TOPIC)
        yield client.session.subscribe(device_events.append, DEVICE_PREFIX + demo.DEVICE_NAME)
        live = {}

        @defer.inlineCallbacks
        def check():
            for procedure in (SERIAL_GET, ODATA_GET):
                if procedure in live:
                    continue
                try:
                    state = yield client.session.call(procedure)
                except Exception:
                    continue
                if state.get("value") is not None and not state.get("stale") and \
                        abs(state["ts"] / 1000.0 - time.time()) < 10:
                    live[procedure] = (time.monotonic() - started, state)
            if len({event["value"] for event in serial_events}) >= 3 and "serial events" not in live:
                live["serial events"] = (time.monotonic() - started, serial_events[-1])
            if device_events and "device" not in live:
                live["device"] = (time.monotonic() - started, device_events[0])

        def report():
            return "boot {:.1f}s; live after start: {}\n{}".format(started - launched, {
                name: round(after, 1) for name, (after, _) in live.items()}, node.log_tail())
        yield eventually(lambda: check().addCallback(lambda _: sorted(live)),
                         check=lambda names: names == sorted([SERIAL_GET, ODATA_GET, "serial events", "device"]),
                         timeout=10, interval=0.1, message="not every demo source live", details=report)
        self.assertTrue(0 <= live[SERIAL_GET][1]["value"] <= 1023)
        self.assertTrue(0 <= int(live[ODATA_GET][1]["value"]) <= 100)
        reading = live["device"][1]
        self.assertEqual(reading["device"], demo.DEVICE_NAME)
        self.assertTrue(0 <= reading["value"] <= 100)
        credentials = os.path.join(node.directory, demo.DEVICE_CREDENTIALS)
        self.assertEqual(stat.S_IMODE(os.stat(credentials).st_mode), 0o600)
        self.assertEqual(os.readlink(os.path.join(node.directory, demo.ARDUINO_LINK))[:9], "/dev/pts/")
        yield node.stop()
        self.assertFalse(os.path.lexists(os.path.join(node.directory, demo.ARDUINO_LINK)))
