"""
One event to the hub's ``POST /apps/publish`` over stdlib HTTP (no Twisted,
no Crossbar: Django processes import it): HTTP Basic ``key:secret``, a
timeout per request, and retries after 0.5 s, 1 s, 2 s ... for what may pass
(no answer, 5xx, 429 after its ``Retry-After``). A refusal that will not pass
(400, 401, 403, 413) is not retried. Never raises: ``send`` answers
``SENT``, ``REFUSED`` (for good) or ``FAILED`` (every attempt), and logs the
last two with the topic (never the secret).
"""

import base64
import json
import logging
import time
import urllib.error
import urllib.request

log = logging.getLogger(__name__)
PUBLISH_PATH = "/apps/publish"
FIRST_BACKOFF = 0.5
MAX_RETRY_AFTER = 30.0
SENT, REFUSED, FAILED = "sent", "refused", "failed"


class AppPublisher:
    """
    Publishes as the application ``key``/``secret`` on the hub at ``url``;
    ``opener(request, timeout)`` and ``sleep(seconds)`` are urllib's and
    time's unless a test passes others.
    """

    def __init__(self, url, key, secret, timeout=5.0, retries=3, opener=urllib.request.urlopen,
                 sleep=time.sleep):
        self.url = url.rstrip("/") + PUBLISH_PATH
        credentials = base64.b64encode("{}:{}".format(key, secret).encode("utf-8")).decode("ascii")
        self.authorization = "Basic " + credentials
        self.timeout, self.retries = timeout, retries
        self.opener, self.sleep = opener, sleep

    def body(self, topic, args, kwargs, to_users):
        """The request body (bytes) of one event; TypeError/ValueError when it is not JSON."""
        event = {"topic": topic, "args": list(args), "kwargs": dict(kwargs)}
        if to_users is not None:
            event["to_users"] = list(to_users)
        return json.dumps(event).encode("utf-8")

    def send(self, topic, body):
        """Post ``body`` (``topic`` names it in logs): SENT once the hub answered 200, REFUSED or FAILED."""
        for attempt in range(self.retries + 1):
            delay = FIRST_BACKOFF * 2 ** attempt
            try:
                with self.opener(self.request(body), timeout=self.timeout) as answer:
                    answer.read()
                log.debug("push %s: published", topic)
                return SENT
            except urllib.error.HTTPError as error:
                detail = error.read(500).decode("utf-8", "replace")
                if error.code != 429 and error.code < 500:
                    log.error("push %s: the hub refused it (%s %s); not retried, the event is dropped",
                              topic, error.code, detail)
                    return REFUSED
                if error.code == 429:
                    delay = max(delay, min(float(error.headers.get("Retry-After") or 0), MAX_RETRY_AFTER))
                problem = "{} {}".format(error.code, detail)
            except (OSError, ValueError) as error:
                problem = "{}: {}".format(type(error).__name__, error)
            if attempt < self.retries:
                log.warning("push %s: attempt %d of %d failed (%s); retrying in %.1f s", topic, attempt + 1,
                            self.retries + 1, problem, delay)
                self.sleep(delay)
        log.error("push %s: the hub at %s did not take it after %d attempts (%s)",
                  topic, self.url, self.retries + 1, problem)
        return FAILED

    def request(self, body):
        """The ``POST /apps/publish`` request of ``body`` with the application's credentials."""
        return urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": self.authorization})
