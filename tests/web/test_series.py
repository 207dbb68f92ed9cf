"""
``hub.series`` and the dashboard's IoT charts in a real headless Chromium
against a real hub whose serial reader reads a real pseudo-terminal.

The page reaches the hub through a TCP proxy in the test process that can be
cut (every connection through it closed, new ones refused) and restored: the
page, its SharedWorker or its own direct connection, all lose the hub at once
while the router keeps publishing. Readings published while it was cut must
reach the page after it is back, exactly once each, in order.
"""

import os
import re

from twisted.internet import defer, reactor
from twisted.protocols import portforward

from tests.support.browser import log_in, poll
from tests.support.clients import connect
from tests.support.node import RouterNode
from tests.support.polling import eventually
from tests.support.serialpty import FakeArduino
from tests.support.users import add_users
from tests.web.test_web_ui import PASSWORD, USERS, BrowserTestCase, expect

SERIAL = "iot.serial.reader"
MISSED = 20


class _Client(portforward.ProxyClient):
    def connectionMade(self):
        self.peer.factory.proxy.links.add(self)
        portforward.ProxyClient.connectionMade(self)

    def connectionLost(self, reason):
        self.peer.factory.proxy.links.discard(self)
        portforward.ProxyClient.connectionLost(self, reason)


class _ClientFactory(portforward.ProxyClientFactory):
    protocol = _Client


class _Server(portforward.ProxyServer):
    clientProtocolFactory = _ClientFactory

    def connectionMade(self):
        if self.factory.proxy.cut_off:
            self.transport.abortConnection()
            return
        self.factory.proxy.links.add(self)
        portforward.ProxyServer.connectionMade(self)

    def connectionLost(self, reason):
        self.factory.proxy.links.discard(self)
        portforward.ProxyServer.connectionLost(self, reason)


class CuttableProxy:
    """
    A TCP proxy on 127.0.0.1 to ``port``: ``cut()`` aborts every connection
    through it and refuses new ones until ``restore()``.
    """

    def __init__(self, port):
        self.links = set()
        self.cut_off = False
        factory = portforward.ProxyFactory("127.0.0.1", port)
        factory.protocol = _Server
        factory.proxy = self
        self.listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.http = "http://127.0.0.1:{}".format(self.listening.getHost().port)

    def cut(self):
        self.cut_off = True
        for link in list(self.links):
            link.transport.abortConnection()

    def restore(self):
        self.cut_off = False

    @defer.inlineCallbacks
    def close(self):
        self.cut()
        yield self.listening.stopListening()


class Readings:
    """Serial readings written on the pty, each awaited at a direct subscriber of the router."""

    def __init__(self, arduino, events):
        self.arduino = arduino
        self.events = events
        self.value = 100

    @defer.inlineCallbacks
    def publish(self, count):
        """Write ``count`` readings that each differ from the last; fire with their states as published."""
        published = []
        for _ in range(count):
            self.value += 7
            before = len(self.events)
            self.arduino.write(b"%d\n" % self.value)
            yield eventually(lambda: len(self.events) > before and self.events[-1]["value"] == self.value,
                             message="reading {} not published".format(self.value))
            published.append(self.events[-1])
        return published


@defer.inlineCallbacks
def serial_web_node(testcase, arduino, env=None):
    """A private node reading ``arduino`` (dead band 0), with the web test users."""
    settings = {"SERIAL_URL": arduino.path, "SERIAL_DEADBAND": "0"}
    settings.update(env or {})
    node = RouterNode(name="series", env=settings)
    testcase.addCleanup(node.cleanup)
    yield node.start()
    yield add_users(node, USERS, PASSWORD)
    yield eventually(lambda: "serial device open" in node.log_text(), message="reader did not open the pty")
    return node


@defer.inlineCallbacks
def stored(testcase, node, source, last_seq):
    """Wait until the hub's history holds ``last_seq`` of ``source`` (history is written in batches)."""
    client = yield connect(testcase, node, sub="checker", role="user")
    yield eventually(lambda: client.session.call("iot.history", source, after_seq=last_seq - 1),
                     check=lambda page: any(state["seq"] == last_seq for state in page["states"]),
                     interval=0.1, message="seq {} of {} not in the history".format(last_seq, source))
    yield client.close()


# In the page: follow the serial source with hub.series and record every change it reports.
FOLLOW = """(source) => {
    window.__changes = [];
    window.__series = hub.series(source, {minutes: 10, onChange: (points, change) => {
        window.__changes.push({reset: change.reset, added: change.added.map((p) => p.seq), count: points.length});
    }});
    return true;
}"""

SEEN = """() => ({lastSeq: window.__series.lastSeq(), points: window.__series.points().map((p) => [p.seq, p.value]),
                  changes: window.__changes})"""


def polyline_pairs(page, source):
    """The x,y pairs of the dashboard chart's line for ``source``."""
    points = page.locator('figure[data-source="{}"] polyline.chart-line'.format(source)).get_attribute("points")
    return [pair for pair in (points or "").split(" ") if pair]


class SeriesRecoveryTests(BrowserTestCase):
    """A page offline while readings are published gets exactly those readings once it is back."""

    timeout = 180

    @defer.inlineCallbacks
    def recover(self, transport):
        arduino = FakeArduino()
        self.addCleanup(arduino.close)
        node = yield serial_web_node(self, arduino)
        proxy = CuttableProxy(node.port)
        self.addCleanup(proxy.close)
        watcher = yield connect(self, node, sub="watcher", role="user")
        events = []
        yield watcher.session.subscribe(events.append, SERIAL)
        readings = Readings(arduino, events)
        before = yield readings.publish(5)
        browser, context = yield self.browser_context()

        def open_page(_chromium):
            page = log_in(context.new_page(), proxy.http, "alice", PASSWORD, path="/?transport=" + transport)
            page.evaluate(FOLLOW, SERIAL)
            poll(page, lambda: page.evaluate("window.__series.lastSeq()") == before[-1]["seq"],
                 message="history before the cut not loaded")
            return page, page.evaluate("hub.mode")

        page, mode = yield browser.run(open_page)
        self.assertEqual(mode, transport)
        proxy.cut()

        def offline(_chromium):
            expect(page.locator("#status")).to_have_attribute("data-state", re.compile("offline|connecting"))
            return page.evaluate("window.__changes.length")
        changes_before_cut = yield browser.run(offline)

        missed = yield readings.publish(MISSED)
        # no waiting for the history writer's batch: iot.history answers with the states still queued too
        # nothing reached the page while it was cut off
        seen = yield browser.run(lambda _chromium: page.evaluate(SEEN))
        self.assertEqual(seen["lastSeq"], before[-1]["seq"])
        proxy.restore()

        def recovered(_chromium):
            page.evaluate("hub.connect()")   # retry now rather than after the backoff
            expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=45000)
            poll(page, lambda: page.evaluate("window.__series.lastSeq()") == missed[-1]["seq"], timeout=20,
                 message="missed readings not recovered")
            expect(page.locator('figure[data-source="{}"]'.format(SERIAL))).to_have_attribute(
                "data-last-seq", str(missed[-1]["seq"]))
            return page.evaluate(SEEN), polyline_pairs(page, SERIAL), page.locator(
                'figure[data-source="{}"]'.format(SERIAL)).get_attribute("data-count")

        seen, pairs, drawn = yield browser.run(recovered)
        after_cut = [seq for change in seen["changes"][changes_before_cut:] for seq in change["added"]]
        self.assertEqual(after_cut, [state["seq"] for state in missed])
        self.assertFalse(any(change["reset"] for change in seen["changes"][changes_before_cut:]))
        expected = [[state["seq"], state["value"]] for state in before + missed]
        self.assertEqual(seen["points"], expected)
        # the dashboard's own chart of the same source: one point per reading
        self.assertEqual(len(pairs), len(expected))
        self.assertEqual(drawn, str(len(expected)))

    def test_shared_worker_recovers_missed_readings(self):
        """Through the SharedWorker: the 20 readings published while cut off arrive after it is back, in order, once."""
        return self.recover("shared")

    def test_direct_recovers_missed_readings(self):
        """With the direct transport: the same 20 readings, in order, once."""
        return self.recover("direct")


class ChartTests(BrowserTestCase):
    """The dashboard's charts, source list and stale marks."""

    timeout = 120

    @defer.inlineCallbacks
    def test_chart_points_list_and_stale_mark(self):
        """The chart draws one point per reading, the list shows the source online; unplugged, it says stale."""
        arduino = FakeArduino()
        self.addCleanup(arduino.close)
        node = yield serial_web_node(self, arduino)
        watcher = yield connect(self, node, sub="watcher", role="user")
        events = []
        yield watcher.session.subscribe(events.append, SERIAL)
        readings = Readings(arduino, events)
        first = yield readings.publish(8)
        yield stored(self, node, SERIAL, first[-1]["seq"])
        browser, context = yield self.browser_context()
        card = 'figure[data-source="{}"]'.format(SERIAL)

        screenshot = self.screenshot_path("charts.png")
        problems = []

        def live(_chromium):
            page = context.new_page()
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            log_in(page, node.http, "alice", PASSWORD)
            expect(page.locator(card)).to_have_attribute("data-last-seq", str(first[-1]["seq"]))
            expect(page.locator(card)).to_have_attribute("data-stale", "false")
            expect(page.locator('#sources tr[data-source="{}"]'.format(SERIAL))).to_have_attribute("data-live", "true")
            counted = page.evaluate("async () => { const chart = await import('/js/chart.js');"
                                    " return [chart.readingsText(1), chart.readingsText(8)]; }")
            self.assertEqual(counted, ["1 reading", "8 readings"])  # the summary's and the label's wording
            return (page, polyline_pairs(page, SERIAL), page.locator(card + " .chart-summary").text_content(),
                    page.locator(card + " .stale-badge").is_visible(),
                    page.locator(card + " svg").get_attribute("aria-label"))

        page, pairs, summary, badge, label = yield browser.run(live)
        self.assertEqual(len(pairs), 8)
        values = [state["value"] for state in first]
        self.assertIn("Latest {}".format(values[-1]), summary)
        self.assertIn("min {}, max {}".format(min(values), max(values)), summary)
        self.assertIn("8 readings", label)
        self.assertIn("over 8 readings in the last", summary)
        self.assertFalse(badge)
        # the line rises as the readings do: y decreases along the line
        ys = [float(pair.split(",")[1]) for pair in pairs]
        self.assertEqual(ys, sorted(ys, reverse=True))
        live_more = yield readings.publish(2)
        arduino.unplug()
        yield eventually(lambda: events[-1].get("stale") is True, message="no stale event after unplug")

        def stale(_chromium):
            expect(page.locator(card)).to_have_attribute("data-stale", "true")
            expect(page.locator(card + " .stale-badge")).to_be_visible()
            expect(page.locator(card + " .stale-badge")).to_contain_text("Stale")
            expect(page.locator('#sources tr[data-source="{}"]'.format(SERIAL))).to_have_attribute(
                "data-live", "false", timeout=25000)
            page.screenshot(path=screenshot, full_page=True)
            return (polyline_pairs(page, SERIAL), page.locator(card + " .stale-badge").text_content(),
                    page.locator('#sources tr[data-source="{}"] td'.format(SERIAL)).last.text_content())

        pairs, badge_text, state_text = yield browser.run(stale)
        # the stale state repeats the last value: it is no reading and draws no point
        self.assertEqual(len(pairs), 8 + len(live_more))
        self.assertRegex(badge_text, r"Stale: no fresh reading since \d\d:\d\d:\d\d")
        self.assertIn("stale", state_text)
        self.assertEqual([p for p in problems if "Content Security Policy" in p or "Uncaught" in p], [])
        self.assertTrue(os.path.getsize(screenshot) > 1000)


SERIES_ENGINE_CHECK = """async () => {
    const {Engine} = await import('/js/engine.js');
    const engine = new Engine({autobahn: {}, url: 'ws://unused.invalid/ws', fetch: () => Promise.reject(new Error())});
    const now = Date.now();
    const st = (seq, age = 0) => ({value: seq, seq, ts: now - age});
    const calls = [];
    let handler = null, answers = [];
    const fakeSession = () => ({isOpen: true,
        subscribe: async (topic, h) => { handler = h; return {topic}; },
        unsubscribe: async () => {},
        call: async (proc, args, kwargs) => { calls.push([proc, args[0], kwargs.after_seq, kwargs.minutes]);
                                               return answers.shift()(); }});
    const settle = () => new Promise((resolve) => setTimeout(resolve, 30));
    const got = [];
    const client = {post: (m) => { if (m.op === 'points') got.push({reset: m.reset, seqs: m.points.map((p) => p.seq)}); }};
    const reconnect = async () => {
        engine.session = fakeSession();
        const entry = engine.series.get('iot.serial.reader');
        entry.subscription = null;
        engine.syncSeries(engine.session, 'iot.serial.reader', entry);
        await settle();
    };
    engine.attach(client);
    engine.session = fakeSession();
    // first load: two pages ("more"); live events during the load wait, the one the history also has comes once;
    // a state older than the window is dropped
    answers = [() => { handler([st(12)]); handler([st(13)]); return {states: [st(1, 11 * 60000), st(10), st(11)], pruned: false, more: true}; },
               () => ({states: [st(12)], pruned: false, more: false})];
    engine.watchSeries(client, 'iot.serial.reader', 10, 1);
    await settle();
    handler([st(13)]);   // a repeat: not passed on
    // reconnect: only what came after 13; a live repeat of 15 during the fetch comes once
    answers = [() => { handler([st(15)]); handler([st(16)]); return {states: [st(14), st(15)], pruned: false, more: false}; }];
    await reconnect();
    // reconnect after the missed states were pruned: the window is loaded again and the clients reset
    answers = [() => ({states: [st(30)], pruned: true, more: false}),
               () => ({states: [st(20), st(21)], pruned: true, more: false})];
    await reconnect();
    handler([st(5)]);    // older than what is held: dropped
    return {got, calls};
}"""


class SeriesEngineTests(BrowserTestCase):
    """The engine's series bookkeeping, run as a module in Chromium against a scripted session (no router)."""

    @defer.inlineCallbacks
    def test_paging_dedupe_and_pruned_reload(self):
        """History pages by 'more', live events during a load wait and come once, 'pruned' reloads the window."""
        arduino = FakeArduino()
        self.addCleanup(arduino.close)
        result = yield self.evaluate_on_hub_page(SERIES_ENGINE_CHECK)
        self.assertEqual(result["got"], [{"reset": True, "seqs": [10, 11, 12, 13]},
                                         {"reset": False, "seqs": [14, 15, 16]},
                                         {"reset": True, "seqs": [20, 21]}])
        self.assertEqual(result["calls"], [["iot.history", SERIAL, None, 10], ["iot.history", SERIAL, 11, 10],
                                           ["iot.history", SERIAL, 13, 10], ["iot.history", SERIAL, 16, 10],
                                           ["iot.history", SERIAL, None, 10]])
