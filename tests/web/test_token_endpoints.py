"""
The Hub's token endpoints are a page option (``tokenUrl``, ``logoutUrl``,
``csrfToken``): a Django site using components.django_hub points the engine at
its own view, through the SharedWorker and the direct transport alike.
"""

from twisted.internet import defer

from tests.support.browser import log_in, poll
from tests.web.test_web_ui import PASSWORD, BrowserTestCase, shared_web_node

OWN_HUB = """async ([transport, tokenUrl]) => {
    const {createHub} = await import("/js/hub.js");
    window.__other = createHub({transport, tokenUrl, logoutUrl: "/auth/logout?via=page", csrfToken: "csrf-123"});
    window.__other.connect();
    return window.__other.mode;
}"""


class TokenEndpointTests(BrowserTestCase):

    @defer.inlineCallbacks
    def check(self, transport):
        node = yield shared_web_node()
        browser, context = yield self.browser_context()

        def script(_chromium):
            page = log_in(context.new_page(), node.http, "alice", PASSWORD, path="/?transport=" + transport)
            seen = []
            context.on("request", lambda request: seen.append(
                (request.url, request.headers.get("x-csrftoken"))) if "/auth/" in request.url else None)
            mode = page.evaluate(OWN_HUB, [transport, "/auth/token?via=page"])
            poll(page, lambda: page.evaluate("window.__other.status.state") == "online",
                 message="the hub with its own token URL did not come online")
            # a foreign URL is never taken: the engine keeps same-origin paths only
            page.evaluate("""() => window.__other.channel.post({op: "configure", tokenUrl: "https://evil.example/t"})""")
            endpoints = page.evaluate("async () => (await window.__other.info()).endpoints")
            return mode, seen, endpoints
        mode, seen, endpoints = yield browser.run(script)
        self.assertEqual(mode, transport)
        self.assertEqual(endpoints, {"tokenUrl": "/auth/token?via=page", "logoutUrl": "/auth/logout?via=page",
                                     "headers": ["X-CSRFToken"]})
        if transport == "direct":
            # the page's own engine fetched its token there, with the CSRF header (a SharedWorker's requests are
            # not visible to the page; it was online already and fetches at its next join)
            tokens = [(url, header) for url, header in seen if "/auth/token" in url]
            self.assertIn((node.http + "/auth/token?via=page", "csrf-123"), tokens)
        self.assertFalse([url for url, _ in seen if "evil" in url])

    def test_shared_worker(self):
        return self.check("shared")

    def test_direct(self):
        return self.check("direct")
