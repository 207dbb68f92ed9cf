"""
Health probes of the web transport:

- ``/health`` and ``/health/live``: 200 ``{"status": "ok"}`` while the web
  transport (and so the worker serving it) answers -- liveness; restart the
  node when it fails.
- ``/health/ready``: 200 ``{"status": "ready", "checks": {...}}`` when the
  realm routes and logins work, the database answers and the SQS queue
  answers (when configured); 503 ``{"status": "not ready", ...}`` otherwise
  -- readiness; take the node out of the load balancer while it fails. The
  checks run in :class:`components.ops.monitor.MonitorComponent` of the same
  router worker (handed in as ``monitor_source``); without it the node is
  not ready. They include, where a user-sync bridge runs, ``usersync``: not
  ready while the client database is ``converging`` (its first sync not
  complete), ready with a ``warning`` while ``behind`` the master's messages (:mod:`components.usersync.convergence`), and where a
  relay runs, ``relay``: the events refused because no client could store
  them (informative).
- the user-sync capture: while the master's watchdog
  (:mod:`components.usersync.watchdog`) finds the user table or a hub
  trigger on it missing, it keeps ``<node dir>/usersync-capture.json``;
  ``/health/ready`` then answers 503 with a ``capture`` check naming the
  table and the triggers (``{"ok": false, "table": ..., "missing": [...],
  "error": ...}``), whatever the other checks say;
- draining: while the file ``<node dir>/draining`` exists (a Kubernetes
  ``preStop`` hook creates it), ``/health/ready`` answers 503
  ``{"status": "draining"}`` so the load balancer stops sending new
  connections before the node closes its WebSockets.
- any other path: 404 with the hub's one error body (``{"error":
  "reactive.error.not_found", "message", "details": {"probes"}}``).

A check's ``error`` never carries a database's own words (the log does).
"""

import json
import os

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from components.core import errors
from components.core.httpjson import HTTPError, JSONMethods, finish_json, write_error
from components.usersync import watchdog

DRAIN_FILE = "draining"


class HealthResource(JSONMethods, Resource):
    """Crossbar ``resource`` web service answering liveness and readiness probes."""

    isLeaf = True
    log = Logger()

    def __init__(self, node_directory, monitor_source):
        Resource.__init__(self)
        self.drain_file = os.path.join(node_directory, DRAIN_FILE)
        self.capture_file = os.path.join(node_directory, watchdog.STATE_FILE)
        self.monitor_source = monitor_source

    def with_capture(self, body):
        """``body`` (the monitor's readiness) with the capture check when the watchdog reports a loss."""
        state = watchdog.read_state(self.capture_file)
        if state is None:
            return body
        table = state.get("table")
        missing = state.get("missing") or []
        if state.get("table_missing"):
            error = "user table {} is missing: its changes are not captured".format(table)
        else:
            error = "triggers {} missing on user table {}: being reinstalled".format(
                ", ".join(missing), table)
        checks = dict(body.get("checks") or {})
        checks["capture"] = {"ok": False, "table": table, "missing": missing, "error": error}
        return dict(body, status="not ready", checks=checks)

    def _failed(self, failure, request):
        """Readiness could not be read: not ready, in generic words (the failure logged)."""
        error = errors.public(failure, self.log, "readiness probe")
        finish_json(request, 503, {"status": "not ready", "error": error.message})

    def render_GET(self, request):
        path = [segment for segment in request.postpath if segment]
        if path in ([], [b"live"]):
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"Cache-Control", b"no-store")
            return json.dumps({"status": "ok"}).encode("utf-8")
        if path != [b"ready"]:
            return write_error(request, HTTPError(404, errors.NOT_FOUND, "unknown probe: use /health/live or "
                                                  "/health/ready", probes=["live", "ready"]))
        if os.path.exists(self.drain_file):
            finish_json(request, 503, {"status": "draining"})
            return NOT_DONE_YET
        monitor = self.monitor_source()
        if monitor is None:
            finish_json(request, 503, {"status": "not ready",
                                       "checks": {"router": {"ok": False, "error": "monitor component not running"}}})
            return NOT_DONE_YET
        d = monitor.readiness()
        d.addCallback(self.with_capture)
        d.addCallback(lambda body: finish_json(request, 200 if body["status"] == "ready" else 503, body))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET
