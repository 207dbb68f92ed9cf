"""
Development without a proxy: a page served on its own port (as Django's
``runserver`` serves it, with its own same-origin ``/hub/token``) uses
hub.js against a hub on another port that lists the page's origin in
``ALLOWED_ORIGINS``, through the SharedWorker and the direct transport.
"""

import json
import os

from twisted.internet import defer, reactor
from twisted.web import resource, server, static

from tests.support.browser import poll
from tests.support.clients import token
from tests.support.node import RouterNode
from tests.web.test_web_ui import BrowserTestCase

WEB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "web")
PAGE = b"<!doctype html><title>other origin</title>"
OPEN_HUB = """async ([transport, url]) => {
    const {createHub} = await import("/js/hub.js");
    window.__hub = createHub({transport, url, tokenUrl: "/hub/token"});
    window.__hub.connect();
    return window.__hub.mode;
}"""


class TokenView(resource.Resource):
    """``POST /hub/token`` of the page's own server: a hub token for alice (what the Django view answers)."""
    isLeaf = True

    def render_POST(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"token": token(sub="alice"), "username": "alice", "role": "user"}).encode()


def page_site():
    """The other origin: the UI files (hub.js and its modules), a page, and /hub/token."""
    root = static.File(WEB)
    root.putChild(b"page.html", static.Data(PAGE, "text/html"))
    hub = resource.Resource()
    hub.putChild(b"token", TokenView())
    root.putChild(b"hub", hub)
    return server.Site(root)


class CrossOriginTests(BrowserTestCase):
    timeout = 240

    @defer.inlineCallbacks
    def test_page_on_another_port(self):
        """The page's hub comes online and answers a call, with the shared and the direct transport."""
        listening = reactor.listenTCP(0, page_site(), interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        origin = "http://127.0.0.1:{}".format(listening.getHost().port)
        node = RouterNode(name="cross-origin", env={"ALLOWED_ORIGINS": origin})
        self.addCleanup(node.cleanup)
        yield node.start()
        browser, context = yield self.browser_context()

        def script(_chromium):
            found = {}
            for transport in ("shared", "direct"):
                page = context.new_page()
                page.goto(origin + "/page.html")
                mode = page.evaluate(OPEN_HUB, [transport, node.url])
                poll(page, lambda: page.evaluate("window.__hub.status.state") == "online",
                     message="the {} hub on another origin did not come online".format(transport))
                found[transport] = mode
                page.close()
            return found

        found = yield browser.run(script)
        # online proves the engine used `url`: the page's own origin has no /ws
        self.assertEqual(found, {"shared": "shared", "direct": "direct"})
