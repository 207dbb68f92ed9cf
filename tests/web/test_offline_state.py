"""
What the pages say when the hub is away or has signed the user out, in a
real Chromium: offline, the source list says "unknown" (not what the hub
said last), the Click button is disabled and the status counts down to the
next attempt; with its database stopped, a click fails in generic words;
a user the hub revoked reads why on the login page. The engine's reconnect
delays follow the hub's one backoff rule (full jitter).
"""

import os
import re
import uuid

from twisted.internet import defer

from components.db.database import Database
from components.iot import DEVICE_PUBLISH, device_topic
from tests.support.browser import log_in
from tests.support.clients import connect
from tests.support.devices import register
from tests.support.pgcluster import PostgresCluster
from tests.support.users import add_users
from tests.web.test_web_ui import PASSWORD, BrowserTestCase, expect, private_web_node, shared_web_node

SIGNED_OUT_BY_HUB = ("You were signed out: your account changed (deactivated, new password or rights) or you logged "
                     "out elsewhere. Log in again to go on.")
WAIT = 30000  # ms: the history writer and iot.sources refresh on a loaded machine

BACKOFF_CHECK = """async () => {
    const {Backoff} = await import('/js/backoff.js');
    const ceilings = new Backoff({initial: 0.5, maximum: 15, random: () => 1});
    const top = [];
    for (let i = 0; i < 8; i++) top.push(ceilings.next());
    const zero = new Backoff({initial: 0.5, maximum: 15, random: () => 0});
    const low = [zero.next(), zero.next(), zero.next()];
    const half = new Backoff({initial: 0.5, maximum: 15, random: () => 0.5});
    const mid = [half.next(), half.next(), half.next()];
    half.reset();
    const afterReset = half.next();
    const real = new Backoff({initial: 0.5, maximum: 15});
    for (let i = 0; i < 10; i++) real.next();
    const spread = [];
    for (let i = 0; i < 200; i++) spread.push(real.next());
    return {top, low, mid, afterReset, min: Math.min(...spread), max: Math.max(...spread)};
}"""


class OfflineStateTests(BrowserTestCase):
    """The dashboard while the hub is stopped, on a private node."""

    @defer.inlineCallbacks
    def test_sources_unknown_click_disabled_countdown(self):
        """Hub stopped: sources "unknown", Click disabled, a countdown; back: known and enabled again."""
        node = yield private_web_node(self)
        name = "offline-" + uuid.uuid4().hex[:8]
        yield register(self, node, name)
        device = yield connect(self, node, sub=name, role="device")
        yield device.session.call(DEVICE_PUBLISH, 42)
        source = device_topic(name)
        row = '#sources tr[data-source="{}"]'.format(source)
        browser, context = yield self.browser_context()
        screenshot = self.screenshot_path("offline.png")

        def online(_chromium):
            page = log_in(context.new_page(), node.http, "alice", PASSWORD)
            expect(page.locator(row)).to_have_attribute("data-live", "true", timeout=WAIT)
            expect(page.locator("#click")).to_be_enabled()
            return page

        page = yield browser.run(online)
        yield node.stop()

        def offline(_chromium):
            expect(page.locator("#status")).to_have_attribute("data-state", "offline", timeout=WAIT)
            expect(page.locator("#status")).to_have_text(re.compile(r"Offline, retrying in \d+ s"), timeout=WAIT)
            expect(page.locator(row)).to_have_attribute("data-live", "unknown")
            expect(page.locator("#click")).to_be_disabled()
            page.screenshot(path=screenshot, full_page=True)
            return [cell.text_content() for cell in page.locator(row + " td").all()]

        cells = yield browser.run(offline)
        print("offline dashboard screenshot: {}".format(screenshot))
        self.assertEqual(cells[-1], "Unknown (hub offline)")
        self.assertNotIn("Online", " ".join(cells))
        self.assertNotIn("s ago", cells[1])
        self.assertGreater(os.path.getsize(screenshot), 1000)

        yield node.start()

        def back(_chromium):
            expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=45000)
            expect(page.locator("#click")).to_be_enabled()
            expect(page.locator(row)).not_to_have_attribute("data-live", "unknown", timeout=WAIT)
            return page.locator("#sources").get_attribute("data-state")

        self.assertEqual((yield browser.run(back)), "known")


class DatabaseDownTests(BrowserTestCase):
    """The dashboard while the hub runs and its database is down."""

    @defer.inlineCallbacks
    def test_click_failure_in_generic_words(self):
        """A click with the database stopped says the database is unavailable, not which server or port."""
        cluster = PostgresCluster()
        self.addCleanup(cluster.destroy)
        yield cluster.start()
        node = yield private_web_node(self, env={"DATABASE_URL": cluster.url})
        browser, context = yield self.browser_context()
        page = yield browser.run(lambda _chromium: log_in(context.new_page(), node.http, "alice", PASSWORD))
        yield cluster.stop()

        def click(_chromium):
            expect(page.locator("#click")).to_be_enabled()
            page.click("#click")
            expect(page.locator("#click-error")).not_to_be_empty(timeout=WAIT)
            return page.text_content("#click-error")

        shown = yield browser.run(click)
        self.assertEqual(shown, "Click failed: The hub's database is unavailable; try again shortly. "
                                "Nothing was changed.")
        yield node.logged("port {}".format(cluster.port))


class SignedOutReasonTests(BrowserTestCase):
    """A user the hub signs out learns why on the login page."""

    @defer.inlineCallbacks
    def test_deactivated_user_reads_why(self):
        """Deactivated while signed in: the session ends (revoked) and the login page says why."""
        node = yield shared_web_node()
        username = "gone-" + uuid.uuid4().hex[:8]
        yield add_users(node, [(username, "Gone", False)], PASSWORD)
        browser, context = yield self.browser_context()

        def signed_in(_chromium):
            page = log_in(context.new_page(), node.http, username, PASSWORD)
            return page, page.locator("#login-reason").is_visible()

        page, reason_before = yield browser.run(signed_in)
        self.assertFalse(reason_before)
        master = Database("sqlite:///" + os.path.join(node.directory, "master.db"))
        try:
            yield master.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (False, username))
        finally:
            master.close()

        def signed_out(_chromium):
            expect(page.locator("#login-form")).to_be_visible(timeout=WAIT)
            expect(page.locator("#login-reason")).to_be_visible()
            return page.text_content("#login-reason"), page.text_content("#status")

        reason, status = yield browser.run(signed_out)
        self.assertEqual(reason, SIGNED_OUT_BY_HUB)
        self.assertEqual(status, "Signed out")

    @defer.inlineCallbacks
    def test_logout_shows_no_reason(self):
        """A user who logs out (or never logged in) sees the login form with no reason line."""
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            page = log_in(context.new_page(), node.http, "alice", PASSWORD)
            page.click("#logout")
            expect(page.locator("#login-form")).to_be_visible()
            return page.locator("#login-reason").is_visible()

        self.assertFalse((yield browser.run(script)))


class BackoffTests(BrowserTestCase):
    """web/js/backoff.js, run as a module in Chromium: the rule of components/core/backoff.py."""

    @defer.inlineCallbacks
    def test_full_jitter_capped_exponential(self):
        """Ceilings double from 0.5 s up to 15 s; each delay is random between 0 and the ceiling; reset starts over."""
        result = yield self.evaluate_on_hub_page(BACKOFF_CHECK)
        self.assertEqual(result["top"], [0.5, 1, 2, 4, 8, 15, 15, 15])
        self.assertEqual(result["low"], [0, 0, 0])
        self.assertEqual(result["mid"], [0.25, 0.5, 1])
        self.assertEqual(result["afterReset"], 0.25)
        # at the 15 s ceiling, 200 draws: spread over the whole range, never above it (not +/-10 % around it)
        self.assertLess(result["min"], 5)
        self.assertGreater(result["max"], 10)
        self.assertLessEqual(result["max"], 15)
