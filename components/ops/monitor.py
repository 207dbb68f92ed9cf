"""
The node's operational view, from inside the router worker:

- readiness (``/health/ready``): the realm routes and logins work (the
  authenticator's procedure is registered), the database answers
  ``SELECT 1``, and the SQS queue answers when ``SQS_QUEUE_URL`` is set;
  where a user-sync bridge runs, the ``usersync`` check fails while the
  client database is ``converging`` (its first sync not complete) and holds
  with a ``warning`` while it is ``behind`` (a later hole being healed,
  :mod:`components.usersync.convergence`); where a
  relay runs, the ``relay`` check counts the events it refused to relay
  because no client could store them (informative: it stays ok);
- metrics (``/metrics``, Prometheus text): sessions, subscriptions and
  subscribers per topic (WAMP meta API), WAMP messages routed by type and
  events delivered per second (the router's own counters), the SQS queue
  depth, the user-sync outbox backlog and refused events, a client's place
  in the master's sequence, and the worker's CPU and memory.
  The families are collected and rendered once per ``METRICS_INTERVAL`` on
  the sampling loop (``latest`` holds the newest :class:`Rendered`); the
  resource serves that text, so scrapes cost the router nothing extra.
  Topic labels are bounded: the contract's topics (``TOPICS``) by name,
  every other topic summed under ``topic="other"``.

``MonitorComponent`` is a router component with the role ``monitor`` (may
call the ``wamp.session.``, ``wamp.subscription.`` and ``wamp.registration.``
meta procedures only). The web resources of the same worker
(:mod:`components.ops.health`, :mod:`components.ops.metrics`) are handed it
by the node assembly (:mod:`components.node.assembly`).
"""

import time

from twisted.internet import defer, task, threads

from components import clock, counter, iot, usersync
from components.auth import AUTHENTICATE
from components.core import errors
from components.core.component import HubComponent
from components.db import db_settings
from components.db.database import Database
from components.ops import meters, ops_settings, promtext
from components.usersync import aws, convergence, outbox, sequence, usersync_settings

CHECK_TIMEOUT = 3.0
# the contract's topics get a label value each; subscribers of every other topic are summed under OTHER
TOPICS = (clock.TOPIC, counter.TOPIC, iot.SERIAL_TOPIC, iot.ODATA_TOPIC, iot.DEVICE_TOPIC, usersync.CHANGED)
OTHER = "other"
# other topics counted per collection (two meta calls each), so a flood of topics cannot make collections slow
MAX_OTHER_TOPICS = 200


class Rendered:
    """One rendering of the metric families: ``body`` (Prometheus text, bytes), ``at`` (reactor seconds)."""

    def __init__(self, body, at):
        self.body = body
        self.at = at


class MonitorComponent(HubComponent):
    """Samples the router's counters every ``METRICS_INTERVAL`` seconds; answers readiness and metrics."""

    def start(self):
        settings = self.settings
        self.interval = settings.get(ops_settings.METRICS_INTERVAL)
        self.outbox = settings.get(ops_settings.MONITOR_OUTBOX)
        kind = settings.get(ops_settings.MONITOR_DATABASE)
        self.database_url = db_settings.url_of(settings, kind)
        self.client_url = settings.get(db_settings.DATABASE_URL)
        self.outbox_url = settings.get(db_settings.MASTER_DATABASE_URL)
        self.queue_url = settings.get(usersync_settings.SQS_QUEUE_URL)
        self.endpoint_url = settings.get(usersync_settings.AWS_ENDPOINT_URL)
        self._databases = {}
        self._sqs = None
        self.meter = meters.RateMeter()
        self.latest = None
        self.collections = 0
        self.collect_seconds = None
        self._waiting = []
        self.sampler = task.LoopingCall(self._sample)
        self.sampler.clock = self.reactor
        self.sampler.start(self.interval, now=True)
        self.log.info("monitor ready (database {kind}, queue {queue})", kind=kind,
                      queue="on" if self.queue_url else "off")

    def onLeave(self, details):
        if getattr(self, "sampler", None) is not None and self.sampler.running:
            self.sampler.stop()
        waiting, self._waiting = getattr(self, "_waiting", []), []
        for d in waiting:
            d.errback(RuntimeError("monitor left the realm"))
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
        """One tick of the sampling loop: the router's counters, then a fresh rendering (the loop waits for it)."""
        stats = self.router_stats()
        self.meter.sample(self.reactor.seconds(), {"event": stats["sent"].get("event", 0),
                                                   "publish": stats["received"].get("publish", 0)})
        return self.refresh()

    def refresh(self):
        """Collect and render the families into ``latest``; a failed collection keeps the previous one."""
        def store(families):
            self.latest = Rendered(promtext.render(families).encode("utf-8"), self.reactor.seconds())
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(self.latest)

        def failed(failure):
            self.log.warn("metrics collection failed: {error} (serving the previous one)", error=failure.value)
        return defer.maybeDeferred(self.collect).addCallbacks(store, failed)

    def rendered(self):
        """Fires with ``latest`` now, or with the first rendering when there is none yet."""
        if self.latest is not None:
            return defer.succeed(self.latest)
        d = defer.Deferred(canceller=self._waiting.remove)
        self._waiting.append(d)
        return d

    # -- readiness ---------------------------------------------------------------------------------------------

    def _database(self, url):
        if url not in self._databases:
            self._databases[url] = Database(url)
        return self._databases[url]

    def _timed(self, d):
        d.addTimeout(CHECK_TIMEOUT, self.reactor)
        return d

    def _check(self, name, d):
        started = time.monotonic()

        def ok(detail):
            return name, {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1), "detail": detail}

        def failed(failure):
            # /health is public: a database's words (which server, which port) go to the log only
            if failure.check(errors.HubError):
                if failure.value.detail is not None:
                    self.log.warn("readiness check {name}: {error}", name=name, error=failure.value)
                return name, {"ok": False, "error": failure.value.message}
            return name, {"ok": False, "error": "{}: {}".format(type(failure.value).__name__, failure.value)}
        return self._timed(d).addCallbacks(ok, failed)

    def _router_check(self):
        d = self.call("wamp.registration.lookup", AUTHENTICATE)

        def registered(registration):
            if registration is None:
                raise RuntimeError("no authenticator registered: logins would fail")
            return "authenticator registered"
        return d.addCallback(registered)

    def _database_check(self):
        return self._database(self.database_url).query("SELECT 1").addCallback(lambda rows: "SELECT 1")

    def _queue_attributes(self):
        if self._sqs is None:
            self._sqs = aws.make_client("sqs", self.endpoint_url or None, aws.region_for(self.queue_url, settings=self.settings),
                                        read_timeout=CHECK_TIMEOUT, pool=2, attempts=1)
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        return self._sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)["Attributes"]

    def _queue_depth(self):
        """Fires with the queue's attributes (read in a thread), or fails after CHECK_TIMEOUT."""
        return self._timed(threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                                     self._queue_attributes))

    def _queue_check(self):
        return self._queue_depth().addCallback(lambda attributes: "{} messages waiting".format(
            attributes.get("ApproximateNumberOfMessages", "?")))

    def _sync_status(self):
        """
        The user-sync client's place in the master's sequence
        (:func:`components.usersync.convergence.status`), or None when no
        bridge runs on the client database (or it cannot be read now: the
        database check says so).
        """
        now_ms = int(self.reactor.seconds() * 1000)
        return self._or_none(self._timed(self._database(self.client_url).run(convergence.status, now_ms)))

    def _relay_refusals(self):
        """The master's refused events (``sequence.refusals``), or None without a relay (or no answer)."""
        if not self.outbox:
            return defer.succeed(None)
        return self._or_none(self._timed(self._database(self.outbox_url).run(sequence.refusals)))

    @staticmethod
    def _usersync_checks(status, refusals):
        """The ``usersync`` check of a client (not ok while converging, a warning while behind) and the master's ``relay`` check."""
        checks = {}
        if status is not None:
            detail = dict(status)
            if not status["ok"]:
                text = "user sync {}: {} of the master's messages missing (held up to {}, {} sent){}".format(
                    status["state"], status["missing"], status["mark"], status["high"],
                    "; snapshot requested" if status["requested"] else "")
                # a client that never completed a sync cannot serve its users; one that lost a message after
                # that keeps serving (all clients would leave the balancer while the master is away) and says so
                if status["state"] == "behind":
                    detail.update(ok=True, warning=text)
                else:
                    detail["error"] = text
            checks["usersync"] = detail
        if refusals is not None:
            total, kept, newest = refusals
            # informative: an event no client could store is refused on the master, which stays ready
            checks["relay"] = {"ok": True, "dead_letters": kept, "refused_total": total,
                               "last_refused": None if newest is None else
                               "{} of {!r}: {}".format(newest[1], newest[0], newest[2])}
        return checks

    def readiness(self):
        """Fires with ``{"status": "ready"|"not ready", "checks": {name: {"ok", ...}}}``."""
        checks = [self._check("router", defer.maybeDeferred(self._router_check)),
                  self._check("database", defer.maybeDeferred(self._database_check))]
        if self.queue_url:
            checks.append(self._check("queue", defer.maybeDeferred(self._queue_check)))
        sync = defer.gatherResults([self._sync_status(), self._relay_refusals()])

        def summary(results):
            found = dict(results[0])
            found.update(self._usersync_checks(*results[1]))
            ready = all(item["ok"] for item in found.values())
            return {"status": "ready" if ready else "not ready", "checks": found}
        return defer.gatherResults([defer.gatherResults(checks), sync]).addCallback(summary)

    # -- metrics -----------------------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def collect(self):
        """Fires with the metric families (see the module docstring); counted in ``collections``."""
        self.collections += 1
        started = time.monotonic()
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
        families.extend((yield self._sync_families()))
        families.extend(meters.process_families())
        families.append(promtext.Family("hub_metrics_collections_total", "counter",
                                        "Collections of these metrics (one per METRICS_INTERVAL)").add(self.collections))
        if self.collect_seconds is not None:
            families.append(promtext.Family("hub_metrics_collect_seconds", "gauge",
                                            "Wall time of the previous collection").add(round(self.collect_seconds, 4)))
        self.collect_seconds = time.monotonic() - started
        return families

    @defer.inlineCallbacks
    def _subscription_families(self):
        listing = yield self.call("wamp.subscription.list")
        subscriptions = promtext.Family("hub_subscriptions", "gauge", "Topics with at least one subscriber, by match")
        for match in sorted(listing):
            subscriptions.add(len(listing[match]), match=match)
        subscribers = promtext.Family(
            "hub_topic_subscribers", "gauge", "Subscribers per contract topic; topic=\"other\" sums every other "
            "exact topic (the first {} of them)".format(MAX_OTHER_TOPICS))
        known = set()
        for uri in TOPICS:
            subscription_id = yield self.call("wamp.subscription.lookup", uri)
            if subscription_id is None:
                continue
            known.add(subscription_id)
            count = yield self._subscriber_count(subscription_id)
            if count is not None:
                subscribers.add(count, topic=uri)
        other = 0
        for subscription_id in [item for item in listing.get("exact", []) if item not in known][:MAX_OTHER_TOPICS]:
            try:
                detail = yield self.call("wamp.subscription.get", subscription_id)
            except Exception:
                continue  # gone between list and get
            if detail and not detail["uri"].startswith("wamp."):
                other += (yield self._subscriber_count(subscription_id)) or 0
        subscribers.add(other, topic=OTHER)
        return [subscriptions, subscribers]

    def _subscriber_count(self, subscription_id):
        """Fires with the subscription's subscriber count, or None when it has gone meanwhile."""
        return self.call("wamp.subscription.count_subscribers", subscription_id).addErrback(lambda failure: None)

    @defer.inlineCallbacks
    def _queue_families(self):
        if not self.queue_url:
            return []
        family = promtext.Family("hub_queue_messages", "gauge", "Messages in this node's SQS queue (queue lag)")
        attributes = yield self._or_none(self._queue_depth())
        if attributes is None:
            return [family.add(float("nan"), state="visible")]
        family.add(int(attributes.get("ApproximateNumberOfMessages", 0)), state="visible")
        family.add(int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)), state="in_flight")
        return [family]

    @defer.inlineCallbacks
    def _outbox_families(self):
        if not self.outbox:
            return []
        # None: no outbox table (user sync not migrated) or database down (readiness reports the latter)
        backlog = yield self._or_none(self._timed(self._database(self.outbox_url).run(outbox.pending_count)))
        if backlog is None:
            return []
        families = [promtext.Family("hub_outbox_backlog", "gauge",
                                    "User changes in the outbox not yet sent to SNS").add(backlog)]
        refusals = yield self._relay_refusals()
        if refusals is not None:
            families.append(promtext.Family(
                "hub_usersync_refused_total", "counter",
                "User changes the master refused to relay because no client could store them").add(refusals[0]))
            families.append(promtext.Family(
                "hub_usersync_dead_letters", "gauge",
                "Refused user changes kept in the master's outbox (a day)").add(refusals[1]))
        return families

    @defer.inlineCallbacks
    def _sync_families(self):
        status = yield self._sync_status()
        if status is None:
            return []
        family = promtext.Family("hub_usersync_sequence", "gauge",
                                 "This client's place in the master's message sequence")
        for kind in ("mark", "high", "missing"):
            family.add(status[kind], kind=kind)
        return [family, promtext.Family("hub_usersync_in_sync", "gauge",
                                        "1 when this client holds every message of the master").add(int(status["ok"]))]

    @staticmethod
    def _or_none(d):
        """``d``'s result, or None when it failed (a metric that cannot be read now is left out)."""
        return d.addErrback(lambda failure: None)
