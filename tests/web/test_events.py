"""
``hub.events`` in a real headless Chromium against a real hub: a page that
follows an application's topic and loses the hub (a TCP proxy cut for 30 s,
a router restart, pruning while it was away) gets every event published
meanwhile exactly once, in order, marked ``replayed``, then live ones; when
the hub pruned some it gets the gap flag once and the kept events; events
sent to one user (``to_users``) are resumed only for that user. Through the
SharedWorker and with the direct transport. The engine's bookkeeping
(reordered live events, duplicates, a "pruned" answer that lost nothing,
events the hub could not store) runs against a scripted session.
"""

import base64
import json
import re
import uuid

import treq
from twisted.internet import defer, reactor

from components.applications.app_registry import AppRegistry
from components.core.settings import Settings
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek
from components.event_history import HISTORY
from tests.support.browser import log_in, poll
from tests.support.clients import connect
from tests.support.polling import eventually
from tests.web.test_series import CuttableProxy
from tests.web.test_web_ui import PASSWORD, BrowserTestCase, expect, private_web_node, shared_web_node

OFFLINE_SECONDS = 30   # how long the page stays cut off in the first test (the figure)
PRUNE_ENV = {"HISTORY_TOPIC_MAX_EVENTS": "4", "HISTORY_TOPIC_PRUNE_INTERVAL": "0.2"}

# In the page: follow `topic` with hub.events from the oldest kept event; record every event and gap.
FOLLOW = """(topic) => {
    window.__events = [];
    window.__gaps = [];
    window.__errors = [];
    window.__stop = hub.events(topic,
                               (args, kwargs, details) => window.__events.push({args, kwargs, ...details}),
                               {since: "start", onGap: (info) => window.__gaps.push(info),
                                onError: (error) => window.__errors.push(error)});
    return true;
}"""

LIVE = ("hub.info().then((info) => info.events.length > 0"
        " && info.events.every((e) => e.subscribed && !e.syncing))")


class Publisher:
    """An application registered on ``node``, publishing through POST /apps/publish."""

    def __init__(self, testcase, node):
        self.testcase = testcase
        self.node = node
        self.name = "ev" + uuid.uuid4().hex[:10]
        self.topic = "app.{}.items".format(self.name)
        self.auth = None

    @defer.inlineCallbacks
    def register(self):
        settings = Settings(environ=self.node.env, node_directory=self.node.directory)
        registry = AppRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))
        try:
            key, secret = yield registry.add(self.name)
        finally:
            registry.db.close()
        self.auth = "Basic " + base64.b64encode("{}:{}".format(key, secret).encode()).decode()
        return self

    @defer.inlineCallbacks
    def publish(self, n, to_users=None):
        body = {"topic": self.topic, "args": [n], "kwargs": {"n": n}}
        if to_users is not None:
            body["to_users"] = to_users
        headers = {b"Content-Type": [b"application/json"], b"Authorization": [self.auth.encode()]}
        response = yield treq.post(self.node.http + "/apps/publish", data=json.dumps(body).encode(),
                                   headers=headers, persistent=False, timeout=30)
        answer = yield response.json()
        self.testcase.assertEqual(response.code, 200, answer)

    @defer.inlineCallbacks
    def publish_all(self, numbers, **options):
        for n in numbers:
            yield self.publish(n, **options)


def seen(page):
    return page.evaluate("window.__events")


def wait_events(page, count, timeout=30):
    """On the browser thread: wait until the page holds ``count`` events; return them."""
    poll(page, lambda: len(seen(page)) >= count, timeout=timeout,
         message="the page did not get {} events (got {})".format(count, len(seen(page))))
    return seen(page)


def open_follower(context, base_url, user, transport, topic):
    """On the browser thread: log ``user`` in on ``transport`` and follow ``topic`` from the start."""
    page = log_in(context.new_page(), base_url, user, PASSWORD, path="/?transport=" + transport)
    page.evaluate(FOLLOW, topic)
    wait_live(page)
    return page


def wait_live(page):
    """On the browser thread: wait until the engine's followers have read the history and are live."""
    poll(page, lambda: page.evaluate(LIVE), message="the follower did not go live")


def go_offline(page):
    expect(page.locator("#status")).to_have_attribute("data-state", re.compile("offline|connecting"))


def come_back(page, count):
    """On the browser thread: reconnect now (not after the backoff), wait until ``count`` events are held."""
    page.evaluate("hub.connect()")
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=45000)
    return wait_events(page, count)


class EventsTestCase(BrowserTestCase):
    timeout = 240

    @defer.inlineCallbacks
    def follow(self, node, transport):
        """An application publishing on ``node`` and alice's page following its topic through a proxy."""
        app = yield Publisher(self, node).register()
        proxy = CuttableProxy(node.port)
        self.addCleanup(proxy.close)
        browser, context = yield self.browser_context()
        page = yield browser.run(lambda _c: open_follower(context, proxy.http, "alice", transport, app.topic))
        return app, proxy, browser, page

    @defer.inlineCallbacks
    def back_then_live(self, app, proxy, browser, page, held, live):
        """Restore the proxy; once the page holds ``held`` events publish ``live``; fire with all held."""
        proxy.restore()
        yield browser.run(lambda _c: come_back(page, held))
        yield app.publish(live)
        events = yield browser.run(lambda _c: wait_events(page, held + 1))
        return events

    def assertDelivered(self, events, numbers, replayed):
        """``events`` carry ``numbers`` in order at increasing positions, with these ``replayed`` flags."""
        self.assertEqual([event["args"] for event in events], [[n] for n in numbers])
        self.assertEqual([event["kwargs"] for event in events], [{"n": n} for n in numbers])
        positions = [event["publication"] for event in events]
        self.assertEqual(positions, sorted(set(positions)), "positions repeat or go back")
        self.assertEqual([event["replayed"] for event in events], replayed)
        self.assertTrue(all(isinstance(event["ts"], int) for event in events))


class ResumeTests(EventsTestCase):
    """A page that lost the hub gets what was published meanwhile once, in order, then live events."""

    @defer.inlineCallbacks
    def offline_for_30_seconds(self, transport):
        node = yield shared_web_node()
        app, proxy, browser, page = yield self.follow(node, transport)
        self.assertEqual((yield browser.run(lambda _c: page.evaluate("hub.mode"))), transport)
        yield app.publish_all([0, 1, 2])
        yield browser.run(lambda _c: wait_events(page, 3))
        proxy.cut()
        yield browser.run(lambda _c: go_offline(page))
        cut_at = reactor.seconds()
        # five events spread over the 30 s the page is away; it must stay away (the proxy refuses its retries)
        for step, n in enumerate(range(3, 8)):
            yield app.publish(n)
            yield eventually(lambda: reactor.seconds() >= cut_at + OFFLINE_SECONDS * (step + 1) / 5,
                             timeout=OFFLINE_SECONDS + 10, interval=0.5)
        state, held = yield browser.run(lambda _c: (page.locator("#status").get_attribute("data-state"),
                                                    len(seen(page))))
        self.assertNotEqual(state, "online")
        self.assertEqual(held, 3)
        events = yield self.back_then_live(app, proxy, browser, page, 8, 8)
        self.assertDelivered(events, range(9), [False] * 3 + [True] * 5 + [False])
        self.assertFalse(any(event["gap"] for event in events))
        flags = yield browser.run(lambda _c: page.evaluate("[window.__gaps, window.__errors]"))
        self.assertEqual(flags, [[], []])

    def test_shared_worker_offline_30_seconds(self):
        """Through the SharedWorker: five events published over 30 s offline come once, in order, replayed."""
        return self.offline_for_30_seconds("shared")

    def test_direct_offline_30_seconds(self):
        """With the direct transport: the same five, once, in order, replayed."""
        return self.offline_for_30_seconds("direct")

    @defer.inlineCallbacks
    def test_router_restart(self):
        """Across a router restart (the events in its database): those published before the stop and after the
        start while the page was away arrive once, in order (direct transport)."""
        node = yield private_web_node(self)
        app, proxy, browser, page = yield self.follow(node, "direct")
        yield app.publish_all([0, 1])
        yield browser.run(lambda _c: wait_events(page, 2))
        proxy.cut()
        yield browser.run(lambda _c: go_offline(page))
        yield app.publish_all([2, 3])
        yield node.stop()
        yield node.start()
        yield app.publish_all([4, 5])
        events = yield self.back_then_live(app, proxy, browser, page, 6, 6)
        self.assertDelivered(events, range(7), [False] * 2 + [True] * 4 + [False])
        self.assertFalse(any(event["gap"] for event in events))

    @defer.inlineCallbacks
    def test_gap_after_pruning(self):
        """HISTORY_TOPIC_MAX_EVENTS=4: away while 7 are published, the page gets onGap once, then the 4 kept,
        the first of them with gap: true (SharedWorker)."""
        node = yield private_web_node(self, env=PRUNE_ENV)
        app, proxy, browser, page = yield self.follow(node, "shared")
        yield app.publish_all([0, 1])
        before = yield browser.run(lambda _c: wait_events(page, 2))
        proxy.cut()
        yield browser.run(lambda _c: go_offline(page))
        yield app.publish_all(range(2, 9))
        checker = yield connect(self, node, sub="checker", role="user")
        newest = before[-1]["publication"]
        yield eventually(lambda: checker.session.call(HISTORY, app.topic, after_publication=newest),
                         check=lambda page: page["pruned"] and len(page["events"]) == 4,
                         message="the hub never pruned past the page's position")
        events = yield self.back_then_live(app, proxy, browser, page, 6, 9)
        self.assertDelivered(events, [0, 1, 5, 6, 7, 8, 9], [False, False, True, True, True, True, False])
        self.assertEqual([event["gap"] for event in events], [False, False, True, False, False, False, False])
        gaps = yield browser.run(lambda _c: page.evaluate("window.__gaps"))
        self.assertEqual(gaps, [{"topic": app.topic}])

    @defer.inlineCallbacks
    def test_personal_events_resumed_for_their_user_only(self):
        """Events for alice only and for bob only, published while both were away: each gets their own and the
        common ones, in order (direct transport for alice, SharedWorker for bob)."""
        node = yield shared_web_node()
        app = yield Publisher(self, node).register()
        proxy = CuttableProxy(node.port)
        self.addCleanup(proxy.close)
        browser, alice_context = yield self.browser_context()
        _, bob_context = yield self.browser_context()
        alice = yield browser.run(
            lambda _c: open_follower(alice_context, proxy.http, "alice", "direct", app.topic))
        bob = yield browser.run(lambda _c: open_follower(bob_context, proxy.http, "bob", "shared", app.topic))
        yield app.publish(0)
        yield app.publish(1, to_users=["alice"])
        yield browser.run(lambda _c: (wait_events(alice, 2), wait_events(bob, 1)))
        proxy.cut()
        yield browser.run(lambda _c: (go_offline(alice), go_offline(bob)))
        yield app.publish(2)
        yield app.publish(3, to_users=["alice"])
        yield app.publish(4, to_users=["bob"])
        yield app.publish(5)
        proxy.restore()
        alice_events = yield browser.run(lambda _c: come_back(alice, 5))
        bob_events = yield browser.run(lambda _c: come_back(bob, 4))
        self.assertDelivered(alice_events, [0, 1, 2, 3, 5], [False, False, True, True, True])
        self.assertDelivered(bob_events, [0, 2, 4, 5], [False, True, True, True])

    @defer.inlineCallbacks
    def test_topic_without_history_is_an_error(self):
        """A topic the hub keeps no history of reaches onError (its feed may not be subscribed), no event."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            page = log_in(context.new_page(), node.http, "alice", PASSWORD)
            page.evaluate(FOLLOW, "counter.changed")
            poll(page, lambda: page.evaluate("window.__errors.length") > 0, message="no error")
            return page.evaluate("[window.__errors, window.__events]")

        errors, events = yield browser.run(script)
        self.assertEqual(events, [])
        self.assertEqual([error["error"] for error in errors], ["wamp.error.not_authorized"])


# The engine against a scripted session: live messages out of position order, duplicates, a "pruned" answer
# that lost nothing (the newest position given is not pruned), a real gap, an event the hub could not store.
ENGINE_CHECK = """async () => {
    const {Engine} = await import('/js/engine.js');
    const engine = new Engine({autobahn: {}, url: 'ws://unused.invalid/ws',
                               fetch: () => Promise.reject(new Error())});
    const ev = (p) => ({publication: p, ts: 1, args: [p], kwargs: {}});
    const calls = [];
    let handler = null, answers = [];
    const fakeSession = () => ({isOpen: true,
        subscribe: async (topic, h) => { handler = h; calls.push(['subscribe', topic]); return {topic}; },
        unsubscribe: async () => {},
        call: async (proc, args, kwargs) => {
            calls.push([proc, args[0], kwargs.after_publication, kwargs.limit]);
            return answers.shift()();
        }});
    const settle = () => new Promise((resolve) => setTimeout(resolve, 30));
    const got = [];
    const client = {post: (m) => {
        if (m.op === 'events' && m.start !== undefined) got.push(['start', m.start]);
        else if (m.op === 'events') {
            got.push(m.events.map((e) => [e.details.publication, e.details.replayed, e.details.gap]));
        }
        else if (m.op === 'gap') got.push('gap');
    }};
    const reconnect = async () => {
        engine.session = fakeSession();
        engine.syncEvents(engine.session, [...engine.followers][0]);
        await settle();
    };
    engine.attach(client);
    engine.session = fakeSession();
    // "now": the last position, then what followed it; a live one during the load waits and comes once
    answers = [() => ({events: [], more: false, pruned: false, last: 10}),
               () => { handler([ev(12)]);
                       return {events: [ev(11), ev(12)], more: false, pruned: false, last: 12}; }];
    engine.handle(client, {op: 'follow', topic: 'app.x.items', key: 'k', since: 'now'});
    await settle();
    handler([ev(14)]); handler([ev(13)]); handler([ev(12)]);
    handler([{publication: null, ts: 1, args: [], kwargs: {}}]);
    // reconnect: 15 never came live (reordered past 16 on another node); pages by "more"; 17 live meanwhile
    answers = [() => { handler([ev(17)]);
                       return {events: [ev(11), ev(13), ev(15)], more: true, pruned: false, last: 17}; },
               () => ({events: [ev(16), ev(17)], more: false, pruned: false, last: 17})];
    await reconnect();
    // "pruned" after the resume point, but not after the newest given: nothing lost, no gap
    answers = [() => ({events: [ev(16), ev(17)], more: false, pruned: true, last: 17}),
               () => ({events: [], more: false, pruned: false, last: 17})];
    await reconnect();
    // pruned after the newest given too: a gap, the next event marked
    answers = [() => ({events: [ev(30), ev(31)], more: false, pruned: true, last: 31}),
               () => ({events: [ev(30), ev(31)], more: false, pruned: true, last: 31})];
    await reconnect();
    return {got, calls};
}"""


class EngineEventsTests(BrowserTestCase):
    """The engine's events bookkeeping, run as a module in Chromium against a scripted session (no router)."""

    @defer.inlineCallbacks
    def test_reorder_duplicates_and_gap_check(self):
        """Each position once in arrival order, replayed ones marked, 'pruned' flags a gap only when events
        after the newest position given are gone, an unstored event passes without moving the cursor."""
        result = yield self.evaluate_on_hub_page(ENGINE_CHECK)
        self.assertEqual(result["got"], [
            ["start", 10], [[11, True, False], [12, True, False]], [[14, False, False]], [[13, False, False]],
            [[None, False, False]], [[15, True, False], [16, True, False], [17, True, False]],
            "gap", [[30, True, True], [31, True, False]]])
        feed, topic = "hub.feed.app.x.items", "app.x.items"
        self.assertEqual(result["calls"], [
            ["subscribe", feed], [HISTORY, topic, 2 ** 53 - 1, 1], [HISTORY, topic, 10, 1000],
            ["subscribe", feed], [HISTORY, topic, 10, 1000], [HISTORY, topic, 15, 1000],
            ["subscribe", feed], [HISTORY, topic, 10, 1000], [HISTORY, topic, 17, 1],
            ["subscribe", feed], [HISTORY, topic, 10, 1000], [HISTORY, topic, 17, 1]])

    @defer.inlineCallbacks
    def test_cursor_from_a_former_channel_or_a_position(self):
        """A follower started from a cursor snapshot (what hub.js sends a new channel) skips what it held;
        one started from a position reads what followed it; neither flags a gap for events it had."""
        result = yield self.evaluate_on_hub_page(SNAPSHOT_CHECK)
        self.assertEqual(result["calls"], [["app.x.items", 20], ["app.x.items", 40]])
        self.assertEqual(result["got"], {"snap": [21, 26], "pos": [41]})
        self.assertEqual(result["hub"], [[22, 23], 23, {"after": None, "recent": [22, 23]}, "now"])
        # beyond 64 positions the lowest become the floor: everything at or below it counts as given
        self.assertEqual(result["window64"], [6, 64, 6, False, True])


# A cursor snapshot {after, recent} and a position as `since`; hub.js's own cursor (the tab's copy).
SNAPSHOT_CHECK = """async () => {
    const {Engine} = await import('/js/engine.js');
    const {EventCursor} = await import('/js/cursor.js');
    const engine = new Engine({autobahn: {}, url: 'ws://unused.invalid/ws',
                               fetch: () => Promise.reject(new Error())});
    const ev = (p) => ({publication: p, ts: 1, args: [p], kwargs: {}});
    const calls = [], got = {snap: [], pos: []};
    const pages = {20: [ev(21), ev(22), ev(25), ev(26)], 40: [ev(41)]};
    engine.session = {isOpen: true, subscribe: async (topic) => ({topic}), unsubscribe: async () => {},
                      call: async (proc, args, kwargs) => {
                          calls.push([args[0], kwargs.after_publication]);
                          const events = pages[kwargs.after_publication];
                          return {events, more: false, pruned: false, last: 50};
                      }};
    const client = {post: (m) => {
        if (m.op === 'events') got[m.key].push(...m.events.map((e) => e.details.publication));
    }};
    engine.attach(client);
    const snapshot = {after: 20, recent: [22, 25]};
    engine.handle(client, {op: 'follow', topic: 'app.x.items', key: 'snap', since: snapshot});
    await new Promise((resolve) => setTimeout(resolve, 30));
    engine.handle(client, {op: 'follow', topic: 'app.x.items', key: 'pos', since: 40});
    await new Promise((resolve) => setTimeout(resolve, 30));
    const start = new EventCursor('start');
    start.accept(23); start.accept(22); start.accept(23);
    const long = new EventCursor(0);
    for (let p = 70; p >= 1; p--) long.accept(p);   // 70 positions, newest first: the 64 highest are held
    const window64 = [long.after, long.recent.length, long.resumeAfter(), long.accept(3), long.accept(71)];
    return {calls, got, window64,
            hub: [start.recent, start.newest(), start.snapshot(), new EventCursor().snapshot()]};
}"""
