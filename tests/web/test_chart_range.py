"""
The dashboard's chart range in a real headless Chromium against a real hub:
a source with 30 days of history (written through the store, so its
rollups are built by the same incremental code as on a live hub) is drawn
from the raw readings for 10 minutes, from the 1-minute rollups for a day
and from the 1-hour rollups for 30 days, each as the hub answered it; the
page asks ``iot.history`` for the resolution the range needs.
"""

import math
import time

from twisted.internet import defer

from components.db.database import Database
from components.iot.history import HistoryStore
from components.iot.history_rollup import WIDTHS
from tests.support.browser import log_in
from tests.support.databases import sqlite_url
from tests.web.test_web_ui import PASSWORD, BrowserTestCase, expect, private_web_node

SOURCE = "iot.device.range-demo"
DAY = 86_400_000
CARD = 'figure[data-source="{}"]'.format(SOURCE)
# records the page's iot.history calls (the rollup ranges call it from the page; raw goes through hub.series)
SPY = """() => {
  window.__historyCalls = [];
  const call = hub.call.bind(hub);
  hub.call = (procedure, args, kwargs) => {
    if (procedure === "iot.history") window.__historyCalls.push(Object.assign({}, kwargs || {}));
    return call(procedure, args, kwargs);
  };
}"""


def seeded_states(now_ms):
    """30 days of readings: one every 10 minutes, and one every 10 s in the last 90 minutes (a daily wave)."""
    start = now_ms - 30 * DAY
    dense = now_ms - 90 * 60_000
    stamps = list(range(start, dense, 600_000)) + list(range(dense, now_ms, 10_000))
    return [{"value": round(50 + 30 * math.sin(ts / DAY * 2 * math.pi) + (seq * 37) % 21 - 10, 2),
             "seq": seq + 1, "ts": ts} for seq, ts in enumerate(stamps)]


def buckets_in(states, width, minutes, now_ms):
    """How many rollup rows of ``width`` reach into the last ``minutes`` (what the chart should draw)."""
    since = now_ms - minutes * 60_000
    return len({s["ts"] - s["ts"] % width for s in states if s["ts"] - s["ts"] % width > since - width})


class ChartRangeTests(BrowserTestCase):
    """The range picker switches the resolution the chart is read in."""

    timeout = 180

    @defer.inlineCallbacks
    def test_range_switches_resolution(self):
        """10 min: raw readings; 1 day: 1-minute rollups; 30 days: 1-hour rollups; back to raw."""
        url = sqlite_url(self)
        now_ms = int(time.time() * 1000)
        states = seeded_states(now_ms)
        db = Database(url)
        store = HistoryStore(db)
        for start in range(0, len(states), 1000):
            yield store.insert([(SOURCE, state) for state in states[start:start + 1000]])
        yield db.close()
        node = yield private_web_node(self, env={"DATABASE_URL": url})
        browser, context = yield self.browser_context()
        screenshot = self.screenshot_path("chart-30-days.png")
        problems = []

        def pick(page, minutes, resolution):
            page.locator(CARD + " select.chart-range").select_option(str(minutes))
            expect(page.locator(CARD)).to_have_attribute("data-range", str(minutes))
            expect(page.locator(CARD)).to_have_attribute("data-resolution", resolution, timeout=20000)
            expect(page.locator(CARD)).not_to_have_attribute("data-loading", "true")
            # raw readings come through hub.series after the range is picked (no loading mark): wait for them
            expect(page.locator(CARD + " polyline.chart-line")).not_to_have_attribute("data-count", "0",
                                                                                     timeout=20000)
            return (int(page.locator(CARD + " polyline.chart-line").get_attribute("data-count")),
                    int(page.locator(CARD + " polygon.chart-band").get_attribute("data-count")),
                    page.locator(CARD + " .chart-summary").text_content(),
                    page.locator(CARD + " .chart-start").text_content())

        def run(_chromium):
            page = context.new_page()
            page.on("console",
                    lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            log_in(page, node.http, "alice", PASSWORD)
            expect(page.locator(CARD)).to_have_attribute("data-resolution", "raw")
            expect(page.locator(CARD)).not_to_have_attribute("data-count", "0", timeout=20000)
            page.evaluate(SPY)
            raw = (int(page.locator(CARD).get_attribute("data-count")),
                   int(page.locator(CARD + " polygon.chart-band").get_attribute("data-count")))
            day = pick(page, 1440, "1m")
            month = pick(page, 43200, "1h")
            page.screenshot(path=screenshot, full_page=True)
            calls = page.evaluate("window.__historyCalls")
            back = pick(page, 10, "raw")
            return raw, day, month, back, calls

        raw, day, month, back, calls = yield browser.run(run)
        self.assertEqual(problems, [])
        checked_ms = int(time.time() * 1000)
        # 10 minutes of readings every 10 s, raw: no band
        self.assertTrue(55 <= raw[0] <= 61, raw)
        self.assertEqual(raw[1], 0)
        # a day of minutes: one row per minute with readings (90 dense minutes + one per 10 minutes before)
        expected_day = buckets_in(states, WIDTHS["1m"], 1440, checked_ms)
        self.assertTrue(expected_day - 1 <= day[0] <= expected_day + 1, (day, expected_day))
        self.assertEqual(day[1], day[0])
        self.assertIn("average per minute", day[2])
        self.assertEqual(day[3], "−24 h")
        # a month of hours: 720 rows or so, from one call
        expected_month = buckets_in(states, WIDTHS["1h"], 43200, checked_ms)
        self.assertTrue(expected_month - 1 <= month[0] <= expected_month + 1, (month, expected_month))
        self.assertGreater(month[0], 700)
        self.assertEqual(month[1], month[0])
        self.assertRegex(month[2], r"over \d+ readings in the last 30 days \(average per hour\)")
        self.assertEqual(month[3], "−30 d")
        self.assertEqual([(call.get("resolution"), call.get("minutes")) for call in calls
                          if "after_seq" not in call][:2], [("1m", 1440), ("1h", 43200)])
        self.assertEqual(back[2].split(";")[0][:7], "Latest ")
        self.assertTrue(55 <= back[0] <= 61, back)
        self.assertEqual(back[1], 0)
