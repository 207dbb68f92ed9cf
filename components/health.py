"""
``/health``: 200 with ``{"status": "ok"}`` while the web transport (and so
the router worker) answers.
"""

import json

from twisted.web.resource import Resource


class HealthResource(Resource):
    """Crossbar ``resource`` web service answering liveness probes."""

    isLeaf = True

    def __init__(self, extra=None):
        Resource.__init__(self)

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps({"status": "ok"}).encode("utf-8")
