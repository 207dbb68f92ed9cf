"""
``/metrics``: the monitor's metric families as Prometheus text.
"""

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from components.core.httpjson import finish
from components.ops import promtext


class MetricsResource(Resource):
    """``/metrics``: the Prometheus text of the monitor ``monitor_source()`` gives (503 while there is none)."""

    isLeaf = True

    def __init__(self, monitor_source):
        Resource.__init__(self)
        self.monitor_source = monitor_source

    def render_GET(self, request):
        monitor = self.monitor_source()
        request.setHeader(b"Cache-Control", b"no-store")
        if monitor is None:
            request.setResponseCode(503)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"monitor component not running\n"
        d = monitor.collect()

        def done(families):
            finish(request, 200, promtext.CONTENT_TYPE, promtext.render(families).encode("utf-8"))

        def failed(failure):
            finish(request, 503, b"text/plain; charset=utf-8",
                   "metrics unavailable: {}\n".format(failure.value).encode("utf-8"))
        d.addCallbacks(done, failed)
        return NOT_DONE_YET
