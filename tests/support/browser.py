"""
A real headless Chromium (Debian's ``/usr/bin/chromium``) driven by
Playwright's sync API for tests and benchmarks.

Playwright's sync objects belong to the thread that made them and block, so
they never run on the reactor thread: ``BrowserThread`` owns one thread on
which every browser function runs, and hands results back as Deferreds::

    browser = yield shared_browser()
    title = yield browser.run(lambda chromium: ...)   # runs on the browser thread

One Chromium is launched per test process and reused (each test opens its
own context: own cookies, own SharedWorker), like ``shared_node``.
"""

import atexit
import os
import queue
import threading

from twisted.internet import defer
from twisted.python.failure import Failure

from tests.support.polling import INTERVAL, TIMEOUT, blocking_eventually

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


class BrowserThread:
    """One thread holding Playwright and a launched Chromium; ``run(fn)`` calls ``fn(browser)`` there."""

    def __init__(self, executable=CHROMIUM, args=ARGS):
        self.executable = executable
        self.args = list(args)
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="chromium", daemon=True)
        self._playwright = None
        self.browser = None
        self._thread.start()

    def _loop(self):
        from twisted.internet import reactor
        while True:
            job = self._jobs.get()
            if job is None:
                break
            fn, args, kwargs, d = job
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                failure = Failure()
                reactor.callFromThread(d.errback, failure)
            else:
                reactor.callFromThread(d.callback, result)
        self._close()

    def _launch(self):
        from playwright.sync_api import sync_playwright
        if not os.path.exists(self.executable):
            raise RuntimeError("{} is missing: run scripts/install-test-deps.sh".format(self.executable))
        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(executable_path=self.executable, args=self.args)
        return self.browser

    def _close(self):
        try:
            if self.browser is not None:
                self.browser.close()
        finally:
            self.browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None

    def start(self):
        return self._submit(self._launch)

    def _submit(self, fn, *args, **kwargs):
        d = defer.Deferred()
        self._jobs.put((fn, args, kwargs, d))
        return d

    def run(self, fn, *args, **kwargs):
        """Fire with ``fn(browser, *args, **kwargs)`` run on the browser thread."""
        return self._submit(lambda: fn(self.browser, *args, **kwargs))

    def stop(self, timeout=20):
        """Close Chromium and end the thread (blocking; for atexit and benchmarks)."""
        self._jobs.put(None)
        self._thread.join(timeout)


_shared = {}


@defer.inlineCallbacks
def shared_browser():
    """The test process's Chromium, launched on first use and closed at exit."""
    browser = _shared.get("chromium")
    if browser is None:
        browser = BrowserThread()
        yield browser.start()
        _shared["chromium"] = browser
    return browser


@atexit.register
def _close_shared():
    for browser in _shared.values():
        browser.stop()
    _shared.clear()


def poll(page, predicate, timeout=TIMEOUT, interval=INTERVAL, message="condition not met"):
    """On the browser thread: re-check ``predicate()`` (using the page) until true; AssertionError after ``timeout``."""
    return blocking_eventually(predicate, timeout, interval, message,
                               wait=lambda seconds: page.wait_for_timeout(seconds * 1000))


# loading a page is a wait, not a measurement: generous, for a shared machine under a full suite (a fresh-clone
# run timed out once at the context's 15 s while the hub was busy)
NAVIGATION_TIMEOUT = 60000


def log_in(page, base_url, username, password, path="/", timeout=15000):
    """On the browser thread: open ``path``, fill the login form, wait for the signed-in view."""
    from playwright.sync_api import expect
    page.goto(base_url + path, timeout=NAVIGATION_TIMEOUT)
    expect(page.locator("#login-form")).to_be_visible(timeout=timeout)
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#app")).to_be_visible(timeout=timeout)
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=timeout)
    return page


def open_signed_in(context, base_url, path="/", timeout=15000):
    """On the browser thread: a new tab of an already signed-in context, online."""
    from playwright.sync_api import expect
    page = context.new_page()
    page.goto(base_url + path, timeout=NAVIGATION_TIMEOUT)
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=timeout)
    return page
