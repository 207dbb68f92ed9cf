"""
The web UI in a real headless Chromium against a real hub: login and the
live clock, one shared WAMP session for all tabs of a browser (SharedWorker)
and one per tab in the direct fallback, clicks reaching every tab, tabs
released when closed, logout reaching every tab, user strings shown as text,
admin RPCs refused to users, recovery after a hub restart, and silent
re-authentication when the token expires.

Screenshots of the dashboard and the admin page go to the test's temp
directory under ``_trial_temp``.
"""

import os
import re

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest

from tests.support.browser import log_in, open_signed_in, poll, shared_browser
from tests.support.clients import connect
from tests.support.node import RouterNode, load_config, router_worker, shared_node
from tests.support.polling import eventually
from tests.support.users import add_users

PASSWORD = "browser-password-1"
XSS = "<img src=x onerror=alert(1)>"
USERS = [("alice", "Alice", False), ("bob", "Bob", False), ("mallory", XSS, False), ("root", "Root", True)]
WAIT = 15000  # ms, the longest any single browser expectation may wait


def allow_session_meta(config):
    """Test-only role transform: the admin role may call the wamp.session meta API (to count sessions)."""
    for realm in router_worker(config)["realms"]:
        for role in realm["roles"]:
            if role["name"] == "admin":
                role["permissions"].append({
                    "uri": "wamp.session.", "match": "prefix",
                    "allow": {"call": True, "register": False, "publish": False, "subscribe": False},
                    "disclose": {"caller": False, "publisher": False}, "cache": True})
    return config


def has_component(classname_prefix):
    """Whether the project's node config runs a component whose class starts with the prefix."""
    return any(item.get("classname", "").startswith(classname_prefix)
               for item in router_worker(load_config()).get("components", []))


@defer.inlineCallbacks
def shared_web_node():
    node = yield shared_node("webui", transform=allow_session_meta)
    if not getattr(node, "web_users", False):
        yield add_users(node, USERS, PASSWORD)
        node.web_users = True
    return node


@defer.inlineCallbacks
def private_web_node(testcase, env=None):
    node = RouterNode(name="webui-private", env=env, transform=allow_session_meta)
    testcase.addCleanup(node.cleanup)
    yield node.start()
    yield add_users(node, USERS, PASSWORD)
    return node


@defer.inlineCallbacks
def sessions_of(testcase, node, authid):
    """The ids of the WAMP sessions joined as ``authid``, read through the wamp.session meta API."""
    inspector = yield connect(testcase, node, sub="inspector", role="admin")
    found = []
    for session_id in (yield inspector.session.call("wamp.session.list")):
        try:
            details = yield inspector.session.call("wamp.session.get", session_id)
        except ApplicationError:
            continue  # left meanwhile
        if details and details.get("authid") == authid:
            found.append(session_id)
    yield inspector.close()
    return found


def wait_for_sessions(testcase, node, authid, count):
    """Poll the meta API until ``authid`` has ``count`` sessions; fire with their ids."""
    return eventually(lambda: sessions_of(testcase, node, authid), check=lambda found: len(found) == count,
                      interval=0.1, message="{} has not {} sessions".format(authid, count))


def expect(locator):
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect(locator)


def open_tabs(context, node, username, count, path="/"):
    """On the browser thread: log in in one tab, then open ``count - 1`` more tabs of the same profile."""
    pages = [log_in(context.new_page(), node.http, username, PASSWORD, path=path)]
    pages += [open_signed_in(context, node.http, path=path) for _ in range(count - 1)]
    return pages


def seq_of(page, selector="#clock"):
    return int(page.locator(selector).get_attribute("data-seq"))


class BrowserTestCase(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def browser_context(self):
        """A fresh browser profile (own cookies and SharedWorker), closed when the test ends."""
        browser = yield shared_browser()
        context = yield browser.run(lambda chromium: chromium.new_context(viewport={"width": 390, "height": 844}))
        context.set_default_timeout(WAIT)
        self.addCleanup(browser.run, lambda _chromium: context.close())
        return browser, context

    @defer.inlineCallbacks
    def evaluate_on_hub_page(self, code):
        """``code`` evaluated in a fresh page of the shared web node (the hub's modules loaded): its result."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            page = context.new_page()
            page.goto(node.http + "/")
            return page.evaluate(code)
        result = yield browser.run(script)
        return result

    def screenshot_path(self, name):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        return os.path.join(directory, name)


class DashboardTests(BrowserTestCase):
    """The dashboard against the shared web node."""

    @defer.inlineCallbacks
    def test_login_then_clock_ticks(self):
        """A wrong password is refused; the right one shows clock, greeting and status, no CSP violation."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()
        screenshot = self.screenshot_path("dashboard.png")

        def script(_chromium):
            page = context.new_page()
            problems = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(node.http + "/")
            expect(page.locator("#login-form")).to_be_visible()
            expect(page.locator("#status")).to_have_text("Signed out")
            page.fill("#username", "alice")
            page.fill("#password", "not the password")
            page.click("#login-form button[type=submit]")
            expect(page.locator("#login-error")).to_have_text(re.compile("wrong username or password"))
            log_in(page, node.http, "alice", PASSWORD)
            expect(page.locator("#clock")).to_have_attribute("data-seq", re.compile(r"^\d+$"))
            first_seq, first_text = seq_of(page), page.text_content("#clock")
            expect(page.locator("#clock")).not_to_have_attribute("data-seq", str(first_seq))
            expect(page.locator("#clock")).not_to_have_text(first_text)
            expect(page.locator("#greeting")).to_have_text("Hello Alice")
            expect(page.locator("#status")).to_have_text("Online as alice")
            page.screenshot(path=screenshot, full_page=True)
            return first_seq, seq_of(page), page.text_content("#clock"), problems

        first_seq, later_seq, clock, problems = yield browser.run(script)
        self.assertGreater(later_seq, first_seq)
        self.assertRegex(clock, r"^\d\d:\d\d:\d\d$")
        self.assertEqual([p for p in problems if "Content Security Policy" in p or "Uncaught" in p], [])
        self.assertTrue(os.path.getsize(screenshot) > 1000)

    @defer.inlineCallbacks
    def test_three_tabs_share_one_session(self):
        """Three tabs of one browser profile use exactly one WAMP session on the router (the SharedWorker's)."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            pages = open_tabs(context, node, "alice", 3)
            for page in pages:
                expect(page.locator("#clock")).to_have_attribute("data-seq", re.compile(r"^\d+$"))
            return pages[0].evaluate("hub.mode"), pages[0].evaluate("hub.info()")

        mode, info = yield browser.run(script)
        self.assertEqual(mode, "shared")
        self.assertEqual(info["clients"], 3)
        self.assertEqual(info["topics"]["time.tic"], 3)
        sessions = yield sessions_of(self, node, "alice")
        self.assertEqual(len(sessions), 1, sessions)

    @defer.inlineCallbacks
    def test_click_reaches_every_tab(self):
        """A click in one tab shows the new count in all three tabs."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            pages = open_tabs(context, node, "alice", 3)
            for page in pages:
                expect(page.locator("#count")).to_have_attribute("data-seq", re.compile(r"^\d+$"))
            before = int(pages[0].text_content("#count"))
            pages[1].click("#click")
            for page in pages:
                expect(page.locator("#count")).to_have_text(str(before + 1))
            return before

        before = yield browser.run(script)
        self.assertGreaterEqual(before, 0)

    @defer.inlineCallbacks
    def test_closed_tabs_are_released(self):
        """Closing tabs drops their topic references in the worker; with the last tab gone the session ends."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def open_three(_chromium):
            pages = open_tabs(context, node, "bob", 3)
            before = pages[0].evaluate("hub.info()")
            for page in pages[1:]:
                page.close()
            after = poll(pages[0], lambda: (lambda info: info if info["clients"] == 1 else None)(
                pages[0].evaluate("hub.info()")), message="closed tabs still attached")
            return pages[0], before, after

        last, before, after = yield browser.run(open_three)
        self.assertEqual(before["clients"], 3)
        self.assertEqual(before["topics"]["time.tic"], 3)
        self.assertEqual(set(after["topics"].values()), {1})
        sessions = yield sessions_of(self, node, "bob")
        self.assertEqual(len(sessions), 1)
        yield browser.run(lambda _chromium: last.close())
        remaining = yield wait_for_sessions(self, node, "bob", 0)
        self.assertEqual(remaining, [])

    @defer.inlineCallbacks
    def test_direct_fallback(self):
        """With ?transport=direct every tab has its own session, the clock ticks, and logout still reaches every tab."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()
        url = "/?transport=direct"

        def open_direct(_chromium):
            pages = open_tabs(context, node, "alice", 3, path=url)
            for page in pages:
                expect(page.locator("#clock")).to_have_attribute("data-seq", re.compile(r"^\d+$"))
            return pages, [page.evaluate("hub.mode") for page in pages]

        pages, modes = yield browser.run(open_direct)
        self.assertEqual(modes, ["direct"] * 3)
        sessions = yield sessions_of(self, node, "alice")
        self.assertGreaterEqual(len(sessions), 3)

        def log_out(_chromium):
            pages[2].click("#logout")
            for page in pages:
                expect(page.locator("#login-form")).to_be_visible()
            return [page.text_content("#status") for page in pages]

        statuses = yield browser.run(log_out)
        self.assertEqual(statuses, ["Signed out"] * 3)

    @defer.inlineCallbacks
    def test_logout_reaches_every_tab(self):
        """Logging out in one tab shows the login form in all tabs, and the shared session ends."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            pages = open_tabs(context, node, "bob", 3)
            pages[2].click("#logout")
            for page in pages:
                expect(page.locator("#login-form")).to_be_visible()
                expect(page.locator("#app")).to_be_hidden()
            # the login is gone server-side: a reload lands on the form again
            pages[0].reload()
            expect(pages[0].locator("#login-form")).to_be_visible()
            return [page.text_content("#status") for page in pages]

        statuses = yield browser.run(script)
        self.assertEqual(statuses, ["Signed out"] * 3)
        sessions = yield wait_for_sessions(self, node, "bob", 0)
        self.assertEqual(sessions, [])

    @defer.inlineCallbacks
    def test_first_name_is_shown_as_text(self):
        """A first name holding markup is shown literally; no element is created and no script runs."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            page = context.new_page()
            dialogs = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            log_in(page, node.http, "mallory", PASSWORD)
            expect(page.locator("#greeting")).to_have_text("Hello " + XSS)
            return page.locator("#greeting img").count(), page.locator("img").count(), dialogs

        in_greeting, images, dialogs = yield browser.run(script)
        self.assertEqual((in_greeting, images, dialogs), (0, 0, []))


    @defer.inlineCallbacks
    def test_policy_blocks_injected_handlers(self):
        """Even markup that got into the page could not run: the CSP blocks inline event handlers."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            page = context.new_page()
            page.goto(node.http + "/")
            violated = page.evaluate("""() => new Promise((resolve) => {
                document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective),
                                          {once: true});
                document.body.insertAdjacentHTML('beforeend',
                    '<img alt="" src="/favicon.svg" onload="window.__injected = true">');
            })""")
            return violated, page.evaluate("window.__injected === true")

        violated, ran = yield browser.run(script)
        self.assertIn(violated, ("script-src-attr", "script-src"))
        self.assertFalse(ran)


class AdminPageTests(BrowserTestCase):
    """The admin page: refused to users by the router, usable by admins."""

    @defer.inlineCallbacks
    def test_user_is_refused_admin_rpcs(self):
        """For a user the page shows the router's refusal, and master.users.* calls fail with not_authorized."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            page = log_in(context.new_page(), node.http, "bob", PASSWORD, path="/admin.html")
            expect(page.locator("#admin-denied")).to_be_visible()
            expect(page.locator("#user-form")).to_be_hidden()
            expect(page.locator("#admin-message")).to_contain_text("wamp.error.not_authorized")
            errors = {}
            for call in ("hub.call('master.users.list')",
                         "hub.call('master.users.save', [{username: 'bob', first_name: 'Owned'}])",
                         "hub.call('master.users.delete', ['alice'])"):
                errors[call] = page.evaluate(call + ".then(() => 'allowed', (e) => e.error)")
            return errors

        errors = yield browser.run(script)
        self.assertEqual(set(errors.values()), {"wamp.error.not_authorized"}, errors)

    @defer.inlineCallbacks
    def test_admin_page(self):
        """An admin sees the user form and either the user list or a clear 'unavailable' note (screenshot saved)."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()
        screenshot = self.screenshot_path("admin.png")

        def script(_chromium):
            page = log_in(context.new_page(), node.http, "root", PASSWORD, path="/admin.html")
            expect(page.locator("#admin-denied")).to_be_hidden()
            expect(page.locator("#user-form")).to_be_visible()
            page.wait_for_selector("#users[data-loaded], #admin-message:not(:empty)")
            loaded = page.locator("#users").get_attribute("data-loaded") == "true"
            rows = page.locator("#users tbody tr").count()
            page.screenshot(path=screenshot, full_page=True)
            return loaded, rows, page.text_content("#admin-message")

        loaded, rows, message = yield browser.run(script)
        if loaded:
            self.assertGreaterEqual(rows, 1)
        else:
            self.assertIn("unavailable", message)
        self.assertTrue(os.path.getsize(screenshot) > 1000)


    @defer.inlineCallbacks
    def test_admin_sees_who_is_online(self):
        """With bob's dashboard open (it subscribes time.tic), the admin page's "Online now" names bob (hub.presence)."""
        node = yield shared_web_node()
        browser, root = yield self.browser_context()
        _browser, bob = yield self.browser_context()

        def script(_chromium):
            dashboard = log_in(bob.new_page(), node.http, "bob", PASSWORD)
            expect(dashboard.locator("#clock")).to_have_attribute("data-seq", re.compile(r"\d+"))
            admin = log_in(root.new_page(), node.http, "root", PASSWORD, path="/admin.html")
            expect(admin.locator("#online")).to_be_visible()
            expect(admin.locator("#online-names li", has_text="bob")).to_have_count(1, timeout=30000)
            return admin.text_content("#online-count")

        count = yield browser.run(script)
        self.assertIn("session(s) on this node", count)

class ResilienceTests(BrowserTestCase):
    """Hub restarts and token expiry, each on a private node."""

    @defer.inlineCallbacks
    def test_restart_offline_then_catch_up(self):
        """Hub stopped: pages show offline with a countdown; restarted: they recover with what changed meanwhile."""
        node = yield private_web_node(self)
        browser, context = yield self.browser_context()
        counter = has_component("components.counter")

        def open_pages(_chromium):
            pages = open_tabs(context, node, "alice", 2)
            # a third tab on the direct transport: its token requests can be held back (a SharedWorker's cannot)
            pages.append(open_signed_in(context, node.http, path="/?transport=direct"))
            for page in pages:
                expect(page.locator("#clock")).to_have_attribute("data-seq", re.compile(r"^\d+$"))
            return pages, seq_of(pages[0]), pages[0].text_content("#count")

        pages, clock_before, count_before = yield browser.run(open_pages)
        held = pages[2]
        yield node.stop()

        def offline(_chromium):
            for page in pages:
                expect(page.locator("#status")).to_have_attribute("data-state", "offline")
                expect(page.locator("#status")).to_have_text(re.compile(r"Offline, retrying in \d+ s"))
            held.route("**/auth/token", lambda route: route.abort())
        yield browser.run(offline)

        yield node.start()
        expected_count = None
        if counter:
            # changed on the hub while the held tab cannot be online: it must fetch the change when it re-syncs
            client = yield connect(self, node, sub="carol", role="user")
            state = yield client.session.call("counter.click", n=1)
            expected_count = str(state["value"])
        held_state = yield browser.run(lambda _chromium: held.locator("#status").get_attribute("data-state"))
        self.assertNotEqual(held_state, "online")

        def recovered(_chromium):
            held.unroute("**/auth/token")
            for page in pages:
                expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=45000)
                if expected_count is not None:
                    expect(page.locator("#count")).to_have_text(expected_count)
            poll(pages[0], lambda: seq_of(pages[0]) > clock_before, message="clock did not move on")
            return [page.text_content("#count") for page in pages]

        counts = yield browser.run(recovered)
        if counter:
            self.assertEqual(counts, [expected_count] * 3)
            self.assertNotEqual(expected_count, count_before)
        sessions = yield sessions_of(self, node, "alice")
        self.assertEqual(len(sessions), 2)  # the shared worker's and the direct tab's

    @defer.inlineCallbacks
    def test_token_expiry_reauthenticates_silently(self):
        """At token expiry (JWT_TTL=10 s) the page rejoins with a fresh token: no reload, no login form."""
        node = yield private_web_node(self, env={"JWT_TTL": "10", "JWT_LEEWAY": "0"})
        browser, context = yield self.browser_context()

        def before(_chromium):
            page = log_in(context.new_page(), node.http, "alice", PASSWORD)
            page.evaluate("""() => {
                window.__sameDocument = true;
                window.__states = [];
                new MutationObserver(() => window.__states.push(document.getElementById('status').dataset.state))
                    .observe(document.getElementById('status'), {attributes: true});
            }""")
            return page, page.evaluate("hub.info()")["status"]["session"]

        page, first_session = yield browser.run(before)

        def after(_chromium):
            status = poll(page, lambda: (lambda s: s if s.get("session") not in (None, first_session) else None)(
                page.evaluate("hub.info()")["status"]), timeout=40, message="no new session after token expiry")
            expect(page.locator("#status")).to_have_attribute("data-state", "online")
            clock = seq_of(page)
            poll(page, lambda: seq_of(page) > clock, message="clock stopped after re-authentication")
            return (status, page.evaluate("window.__sameDocument === true"), page.evaluate("window.__states"),
                    page.locator("#login-form").is_visible())

        status, same_document, states, login_visible = yield browser.run(after)
        self.assertEqual(status["state"], "online")
        self.assertTrue(same_document)
        self.assertNotIn("signed_out", states)
        self.assertFalse(login_visible)
        yield node.logged("expired")


class SerialPanelTests(BrowserTestCase):
    """The serial panel against a node reading a real pseudo-terminal."""

    @defer.inlineCallbacks
    def test_reading_then_stale_mark(self):
        """A reading shows live; when the device is unplugged the value stays, marked stale."""
        from tests.iot.test_serial_router import FakeArduino
        arduino = FakeArduino()
        self.addCleanup(arduino.close)
        node = yield private_web_node(self, env={"SERIAL_URL": arduino.path})
        browser, context = yield self.browser_context()
        page = yield browser.run(lambda _chromium: log_in(context.new_page(), node.http, "alice", PASSWORD))
        yield eventually(lambda: "serial device open" in node.log_text(), message="reader did not open the pty")
        arduino.write(b"42\n")

        def live(_chromium):
            expect(page.locator("#serial")).to_have_text("42")
            expect(page.locator("#serial")).to_have_attribute("data-state", "live")
            return page.locator("#serial ~ .stale-mark").is_visible()
        self.assertFalse((yield browser.run(live)))
        arduino.unplug()

        def stale(_chromium):
            expect(page.locator("#serial")).to_have_attribute("data-state", "stale")
            expect(page.locator("#serial ~ .stale-mark")).to_be_visible()
            return page.text_content("#serial")
        self.assertEqual((yield browser.run(stale)), "42")


@defer.inlineCallbacks
def usersync_web_node(testcase):
    """A private node with the user sync relaying through a real moto server (SNS topic, one client queue)."""
    import uuid
    from components.usersync import provision
    from tests.support.emulator import ENV, blocking, shared_moto
    moto = yield shared_moto()
    plan = provision.Plan("web-" + uuid.uuid4().hex[:8], ["web"], max_receives=3, visibility_timeout=5)
    aws = yield blocking(provision.provision, moto.client("sns"), moto.client("sqs"), plan)
    env = dict(ENV, SNS_TOPIC_ARN=aws["topic_arn"], SQS_QUEUE_URL=aws["clients"]["web"]["queue_url"],
               AWS_ENDPOINT_URL=moto.url, USERSYNC_WAIT="1")
    node = yield private_web_node(testcase, env=env)
    return node


class UserSyncPageTests(BrowserTestCase):
    """The admin page editing users on the master, and the edit reaching only that user's tabs."""

    @defer.inlineCallbacks
    def test_admin_edit_reaches_only_that_users_tabs(self):
        """Renaming alice on the admin page updates the greeting in both of alice's tabs, not in bob's tab."""
        node = yield usersync_web_node(self)
        browser, alice = yield self.browser_context()
        _browser, bob = yield self.browser_context()
        _browser, root = yield self.browser_context()

        def open_pages(_chromium):
            alice_pages = open_tabs(alice, node, "alice", 2)
            bob_page = log_in(bob.new_page(), node.http, "bob", PASSWORD)
            for page in alice_pages:
                expect(page.locator("#greeting")).to_have_text("Hello Alice")
            expect(bob_page.locator("#greeting")).to_have_text("Hello Bob")
            admin = log_in(root.new_page(), node.http, "root", PASSWORD, path="/admin.html")
            admin.click("tr[data-username='alice'] button:text('Edit')")
            expect(admin.locator("#f-username")).to_have_value("alice")
            admin.fill("#f-first-name", "Alicia")
            admin.click("#save")
            expect(admin.locator("#admin-message")).to_have_text("Saved alice.")
            for page in alice_pages:
                expect(page.locator("#greeting")).to_have_text("Hello Alicia", timeout=30000)
            expect(admin.locator("tr[data-username='alice'] td").nth(1)).to_have_text("Alicia")
            return [page.text_content("#greeting") for page in alice_pages], bob_page.text_content("#greeting")

        alice_greetings, bob_greeting = yield browser.run(open_pages)
        self.assertEqual(alice_greetings, ["Hello Alicia"] * 2)
        self.assertEqual(bob_greeting, "Hello Bob")

    @defer.inlineCallbacks
    def test_admin_creates_and_deletes_a_user(self):
        """An admin creates a user with a password on the page (who can then log in) and deletes it in two steps."""
        node = yield shared_web_node()
        browser, root = yield self.browser_context()
        _browser, dave = yield self.browser_context()

        def script(_chromium):
            admin = log_in(root.new_page(), node.http, "root", PASSWORD, path="/admin.html")
            admin.fill("#f-username", "dave")
            admin.fill("#f-first-name", "Dave")
            admin.fill("#f-email", "dave@example.org")
            admin.fill("#f-password", "dave-password-1")
            admin.click("#save")
            expect(admin.locator("tr[data-username='dave']")).to_have_count(1)
            dave_page = log_in(dave.new_page(), node.http, "dave", "dave-password-1")
            expect(dave_page.locator("#greeting")).to_have_text("Hello Dave")
            delete = admin.locator("tr[data-username='dave'] button.danger")
            delete.click()
            expect(delete).to_have_text("Confirm delete")
            delete.click()
            expect(admin.locator("#admin-message")).to_have_text("Deleted dave.")
            # the list is re-read after the message: wait for the row to go rather than count at once
            expect(admin.locator("tr[data-username='dave']")).to_have_count(0)
            return admin.locator("tr[data-username='dave']").count()

        self.assertEqual((yield browser.run(script)), 0)


ENGINE_CHECK = """async () => {
    const {Engine} = await import('/js/engine.js');
    const engine = new Engine({autobahn: {}, url: 'ws://unused.invalid/ws', fetch: () => Promise.reject(new Error())});
    const got = {a: [], b: []};
    const a = {post: (m) => got.a.push(m)}, b = {post: (m) => got.b.push(m)};
    engine.attach(a);
    engine.watch(a, 't', 't.get');
    engine.watch(a, 't', 't.get');
    const entry = engine.topics.get('t');
    for (const seq of [5, 3, 5, 7, 6]) engine.apply('t', entry, {value: seq, seq, ts: 0});
    engine.attach(b);
    engine.watch(b, 't', 't.get');
    const refs = [engine.info().topics.t];
    engine.unwatch(a, 't');
    refs.push(engine.info().topics.t);
    engine.detach(a);
    refs.push(engine.info().topics.t);
    engine.detach(b);
    const states = (list) => list.filter((m) => m.op === 'state').map((m) => m.state.seq);
    return {a: states(got.a), b: states(got.b), refs, left: Object.keys(engine.info().topics)};
}"""


class EngineTests(BrowserTestCase):
    """The connection engine's topic bookkeeping, run as a module in Chromium (no connection needed)."""

    @defer.inlineCallbacks
    def test_seq_rule_refcounts_and_late_client(self):
        """Only newer seqs are passed on; a late client gets the current state at once; refs drop per client."""
        result = yield self.evaluate_on_hub_page(ENGINE_CHECK)
        self.assertEqual(result["a"], [5, 7])
        self.assertEqual(result["b"], [7])
        self.assertEqual(result["refs"], [3, 2, 1])
        self.assertEqual(result["left"], [])
