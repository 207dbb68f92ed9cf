"""
The dashboard's alarm banner in a real Chromium against a real hub: an
alarm raised while the page is open shows in the banner and marks its
source's chart; after a page reload it is still there; an admin
acknowledges it from the banner, and a user has no button for it.
"""

import uuid

from twisted.internet import defer

from components.iot import ALARMS, DEVICE_PUBLISH, device_topic
from tests.iot.test_alarm_router import FAST, alarm_command
from tests.support.browser import log_in
from tests.support.clients import connect
from tests.support.devices import register
from tests.support.polling import eventually
from tests.web.test_web_ui import PASSWORD, BrowserTestCase, expect, private_web_node

WAIT = 30000  # ms: iot.sources refreshes every 10 s, the machine may be loaded


class AlarmBannerTests(BrowserTestCase):

    timeout = 180

    @defer.inlineCallbacks
    def test_banner_shows_survives_reload_and_is_acknowledged(self):
        node = yield private_web_node(self, env=FAST)
        name = "tank-" + uuid.uuid4().hex[:8]
        source = device_topic(name)
        yield register(self, node, name)
        device = yield connect(self, node, sub=name, role="device")
        yield device.session.call(DEVICE_PUBLISH, 20)
        code, rule = yield alarm_command(node, "add", name, "--above", "50")
        self.assertEqual(code, 0, rule)
        item = '#alarms li.alarm[data-rule="{}"]'.format(rule["id"])
        figure = 'figure.chart-card[data-source="{}"]'.format(source)
        browser, context = yield self.browser_context()

        def open_page(_chromium):
            page = log_in(context.new_page(), node.http, "root", PASSWORD)
            expect(page.locator(figure)).to_be_visible(timeout=WAIT)
            expect(page.locator("#alarms")).to_be_hidden()
            return page

        page = yield browser.run(open_page)
        user = yield connect(self, node, sub="alice", role="user")

        @defer.inlineCallbacks
        def raised():
            yield device.session.call(DEVICE_PUBLISH, 75)
            listed = yield user.session.call(ALARMS)
            return any(alarm["rule"] == rule["id"] for alarm in listed["value"])
        yield eventually(raised, message="the rule never raised its alarm", details=node.log_tail)

        def shown(_chromium):
            expect(page.locator(item)).to_have_attribute("data-state", "raised", timeout=WAIT)
            expect(page.locator("#alarms")).to_be_visible()
            expect(page.locator(item)).to_contain_text("{} above 50".format(name))
            expect(page.locator(figure)).to_have_attribute("data-alarm", "raised", timeout=WAIT)
            expect(page.locator(figure + " svg line.chart-alarm")).to_have_count(1)
            page.reload()
            expect(page.locator(item)).to_have_attribute("data-state", "raised", timeout=WAIT)
            expect(page.locator(item)).to_have_attribute("data-acked", "false")
            expect(page.locator(figure)).to_have_attribute("data-alarm", "raised", timeout=WAIT)
            page.locator(item + " button.alarm-ack").click()
            expect(page.locator(item)).to_have_attribute("data-acked", "true", timeout=WAIT)
            expect(page.locator(item)).to_contain_text("acknowledged by root")
            expect(page.locator(item + " button.alarm-ack")).to_have_count(0)

        yield browser.run(shown)

        # a user sees the alarm and has no Acknowledge button
        _, user_context = yield self.browser_context()

        def user_page(_chromium):
            other = log_in(user_context.new_page(), node.http, "alice", PASSWORD)
            expect(other.locator(item)).to_have_attribute("data-state", "raised", timeout=WAIT)
            expect(other.locator(item + " button.alarm-ack")).to_have_count(0)

        yield browser.run(user_page)

        # cleared after the ack: no longer listed, the banner hides and the chart mark goes
        yield device.session.call(DEVICE_PUBLISH, 10)

        def cleared(_chromium):
            expect(page.locator(item)).to_have_count(0, timeout=WAIT)
            expect(page.locator("#alarms")).to_be_hidden()
            expect(page.locator(figure)).to_have_attribute("data-alarm", "none", timeout=WAIT)

        yield browser.run(cleared)
