"""
The node's operational view, from inside the router worker:

- readiness (``/health/ready``): the realm routes and logins work (the
  authenticator's procedure is registered), the database answers
  ``SELECT 1``, and the SQS queue answers when ``SQS_QUEUE_URL`` is set;
- metrics (``/metrics``, Prometheus text): sessions, subscriptions and
  subscribers per topic (WAMP meta API), WAMP messages routed by type and
  events delivered per second (the router's own counters), the SQS queue
  depth, the user-sync outbox backlog, and the worker's CPU and memory.

``MonitorComponent`` is a router component with the role ``monitor`` (may
call the ``wamp.session.``, ``wamp.subscription.`` and ``wamp.registration.``
meta procedures only). The web resources of the same worker
(``components.health``, ``MetricsResource``) find it with
:func:`current_monitor`.
"""

import json
import os
import resource
import time

from twisted.internet import defer, task, threads
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from components import promtext
from components.base import HubComponent
from components.settings import as_bool, as_float, database_url

AUTHENTICATE_URI = "reactive.auth.authenticate"
CHECK_TIMEOUT = 3.0
MAX_TOPICS = 200
_monitors = []


def current_monitor():
    """The joined monitor of this worker process, or None."""
    for monitor in _monitors:
        if monitor.is_attached():
            return monitor
    return None


class RateMeter:
    """Per-second rates of growing counters between samples (``sample(now, counters)``)."""

    def __init__(self):
        self.previous = None
        self.rates = {}

    def sample(self, now, counters):
        if self.previous is not None:
            then, old = self.previous
            elapsed = now - then
            if elapsed > 0:
                self.rates = {key: max(0.0, (value - old.get(key, 0)) / elapsed) for key, value in counters.items()}
        self.previous = (now, dict(counters))
        return self.rates


def _process_families():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = promtext.Family("hub_process_cpu_seconds_total", "counter", "CPU time of the router worker process")
    cpu.add(usage.ru_utime, mode="user").add(usage.ru_stime, mode="system")
    rss = promtext.Family("hub_process_resident_memory_bytes", "gauge", "Resident memory of the router worker")
    rss.add(_resident_bytes())
    return [cpu, rss]


def _resident_bytes():
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MonitorComponent(HubComponent):
    """Samples the router's counters every ``METRICS_INTERVAL`` seconds; answers readiness and metrics."""

    def start(self):
        self.interval = as_float({"v": self.setting("METRICS_INTERVAL")}, "v", 5.0, minimum=0.1, maximum=3600)
        self.outbox = as_bool({"v": self.setting("outbox")}, "v", False)
        kind = self.setting("database", "client")
        variable = "MASTER_DATABASE_URL" if kind == "master" else "DATABASE_URL"
        self.database_url = self.setting(variable) or database_url(kind, directory=self.node_directory)
        self.outbox_url = self.setting("MASTER_DATABASE_URL") or database_url("master", directory=self.node_directory)
        self.queue_url = self.setting("SQS_QUEUE_URL")
        self.endpoint_url = self.setting("AWS_ENDPOINT_URL")
        self._databases = {}
        self._sqs = None
        self.meter = RateMeter()
        self.sampler = task.LoopingCall(self._sample)
        self.sampler.clock = self.reactor
        self.sampler.start(self.interval, now=True)
        _monitors.append(self)
        self.log.info("monitor ready (database {kind}, queue {queue})", kind=kind,
                      queue="on" if self.queue_url else "off")

    def onLeave(self, details):
        if self in _monitors:
            _monitors.remove(self)
        if getattr(self, "sampler", None) is not None and self.sampler.running:
            self.sampler.stop()
        for db in getattr(self, "_databases", {}).values():
            db.close()
        HubComponent.onLeave(self, details)

    # -- router counters ---------------------------------------------------------------------------------------

    def router_stats(self):
        """The router's message counters ``{"sent": {type: n}, "received": {type: n}}`` (empty if not in-process)."""
        router = getattr(self._transport, "_router", None)
        if router is None or not hasattr(router, "stats"):
            return {"sent": {}, "received": {}}
        messages = router.stats().get("messages", {})
        return {"sent": dict(messages.get("sent", {})), "received": dict(messages.get("received", {}))}

    def _sample(self):
        stats = self.router_stats()
        self.meter.sample(self.reactor.seconds(), {"event": stats["sent"].get("event", 0),
                                                   "publish": stats["received"].get("publish", 0)})

    # -- readiness ---------------------------------------------------------------------------------------------

    def _database(self, url):
        if url not in self._databases:
            from components.storage import Database
            self._databases[url] = Database(url, pool_size=1, connect_timeout=2)
        return self._databases[url]

    def _timed(self, d):
        d.addTimeout(CHECK_TIMEOUT, self.reactor)
        return d

    def _check(self, name, d):
        started = time.monotonic()

        def ok(detail):
            return name, {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1), "detail": detail}

        def failed(failure):
            return name, {"ok": False, "error": "{}: {}".format(type(failure.value).__name__, failure.value)}
        return self._timed(d).addCallbacks(ok, failed)

    def _router_check(self):
        d = self.call("wamp.registration.lookup", AUTHENTICATE_URI)

        def registered(registration):
            if registration is None:
                raise RuntimeError("no authenticator registered: logins would fail")
            return "authenticator registered"
        return d.addCallback(registered)

    def _database_check(self):
        return self._database(self.database_url).query("SELECT 1").addCallback(lambda rows: "SELECT 1")

    def _queue_attributes(self):
        if self._sqs is None:
            self._sqs = _sqs_client(self.endpoint_url, self.queue_url)
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        return self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]

    def _queue_check(self):
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._queue_attributes)
        return d.addCallback(lambda attributes: "{} messages waiting".format(
            attributes.get("ApproximateNumberOfMessages", "?")))

    def readiness(self):
        """Fires with ``{"status": "ready"|"not ready", "checks": {name: {"ok", ...}}}``."""
        checks = [self._check("router", defer.maybeDeferred(self._router_check)),
                  self._check("database", defer.maybeDeferred(self._database_check))]
        if self.queue_url:
            checks.append(self._check("queue", defer.maybeDeferred(self._queue_check)))

        def summary(results):
            found = dict(results)
            ready = all(item["ok"] for item in found.values())
            return {"status": "ready" if ready else "not ready", "checks": found}
        return defer.gatherResults(checks).addCallback(summary)

    # -- metrics -----------------------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def collect(self):
        """Fires with the metric families (see the module docstring)."""
        families = []
        sessions = yield self.call("wamp.session.count")
        families.append(promtext.Family("hub_sessions", "gauge", "WAMP sessions joined on the realm").add(sessions))
        families.extend((yield self._subscription_families()))
        registrations = yield self.call("wamp.registration.list")
        families.append(promtext.Family("hub_registrations", "gauge", "Registered procedures").add(
            sum(len(ids) for ids in registrations.values())))
        stats = self.router_stats()
        messages = promtext.Family("hub_wamp_messages_total", "counter", "WAMP messages routed, by direction and type")
        for direction in ("sent", "received"):
            for kind, count in sorted(stats[direction].items()):
                messages.add(count, direction=direction, type=kind)
        families.append(messages)
        rates = promtext.Family("hub_rate_per_second", "gauge",
                                "Events delivered and publications received per second over the last interval")
        for key, value in sorted(self.meter.rates.items()):
            rates.add(round(value, 3), kind=key)
        families.append(rates)
        families.extend((yield self._queue_families()))
        families.extend((yield self._outbox_families()))
        families.extend(_process_families())
        return families

    @defer.inlineCallbacks
    def _subscription_families(self):
        listing = yield self.call("wamp.subscription.list")
        subscriptions = promtext.Family("hub_subscriptions", "gauge", "Topics with at least one subscriber, by match")
        for match in sorted(listing):
            subscriptions.add(len(listing[match]), match=match)
        subscribers = promtext.Family("hub_topic_subscribers", "gauge", "Subscribers per topic (first 200 topics)")
        for subscription_id in listing.get("exact", [])[:MAX_TOPICS]:
            try:
                detail = yield self.call("wamp.subscription.get", subscription_id)
                count = yield self.call("wamp.subscription.count_subscribers", subscription_id)
            except Exception:
                continue  # gone between list and get
            if detail and not detail["uri"].startswith("wamp."):
                subscribers.add(count, topic=detail["uri"])
        return [subscriptions, subscribers]

    @defer.inlineCallbacks
    def _queue_families(self):
        if not self.queue_url:
            return []
        family = promtext.Family("hub_queue_messages", "gauge", "Messages in this node's SQS queue (queue lag)")
        try:
            d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self._queue_attributes)
            attributes = yield self._timed(d)
        except Exception:
            family.add(float("nan"), state="visible")
            return [family]
        family.add(int(attributes.get("ApproximateNumberOfMessages", 0)), state="visible")
        family.add(int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)), state="in_flight")
        return [family]

    @defer.inlineCallbacks
    def _outbox_families(self):
        if not self.outbox:
            return []
        family = promtext.Family("hub_outbox_backlog", "gauge", "User changes in the outbox not yet sent to SNS")
        try:
            rows = yield self._timed(self._database(self.outbox_url).query(
                "SELECT COUNT(*) FROM usersync_outbox WHERE sent_ms IS NULL"))
        except Exception:
            return []  # no outbox table (user sync not migrated) or database down: readiness reports the latter
        family.add(rows[0][0])
        return [family]


def _sqs_client(endpoint_url, queue_url):
    import boto3
    from botocore.config import Config
    session = boto3.session.Session()
    options = {}
    if endpoint_url and session.get_credentials() is None:
        options = {"aws_access_key_id": "emulator", "aws_secret_access_key": "emulator"}
    region = session.region_name or _region_of(queue_url) or "us-east-1"
    config = Config(connect_timeout=2, read_timeout=CHECK_TIMEOUT, retries={"max_attempts": 1})
    return session.client("sqs", endpoint_url=endpoint_url or None, region_name=region, config=config, **options)


def _region_of(queue_url):
    # https://sqs.<region>.amazonaws.com/<account>/<name>
    parts = (queue_url or "").split("//", 1)[-1].split(".")
    return parts[1] if len(parts) > 3 and parts[0] == "sqs" else None


class MetricsResource(Resource):
    """``/metrics``: the Prometheus text of this worker's monitor (503 when it is not running)."""

    isLeaf = True

    def __init__(self, extra=None):
        Resource.__init__(self)

    def render_GET(self, request):
        monitor = current_monitor()
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


def finish(request, code, content_type, body):
    """Complete a deferred response unless the client has gone."""
    if getattr(request, "_disconnected", False) or request.finished:
        return
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Cache-Control", b"no-store")
    request.write(body)
    request.finish()


def finish_json(request, code, body):
    finish(request, code, b"application/json", json.dumps(body).encode("utf-8"))
