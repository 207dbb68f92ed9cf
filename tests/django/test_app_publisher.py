"""
:class:`components.django_hub.app_publisher.AppPublisher` with a fake
opener and sleep: what it posts, which failures it retries (no answer, 5xx,
429 after Retry-After) and which not (4xx), that it gives up after its
retries, and that the push path imports neither Twisted nor Crossbar.
"""

import base64
import email.message
import io
import json
import subprocess
import sys
import urllib.error

from twisted.trial import unittest

from components.django_hub.app_publisher import FAILED, REFUSED, SENT, AppPublisher
from tests.support.node import REPO


def http_error(code, retry_after=None):
    headers = email.message.Message()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body = io.BytesIO(b'{"error": "x"}')
    return urllib.error.HTTPError("http://hub/apps/publish", code, "x", headers, body)


class FakeOpener:
    """Answers with the next of ``outcomes`` (an exception is raised); records requests and timeouts."""

    def __init__(self, outcomes):
        self.outcomes, self.requests = list(outcomes), []

    def __call__(self, request, timeout):
        self.requests.append((request, timeout))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return io.BytesIO(b'{"publication": 1}')


class AppPublisherTests(unittest.SynchronousTestCase):

    def publisher(self, outcomes, retries=3):
        self.opener, self.slept = FakeOpener(outcomes), []
        return AppPublisher("http://hub:8080/", "ak1", "s3cret", timeout=2.5, retries=retries,
                            opener=self.opener,
                            sleep=self.slept.append)

    def test_request(self):
        """One POST to /apps/publish with HTTP Basic key:secret, the JSON event and the timeout."""
        publisher = self.publisher([None])
        body = publisher.body("app.shop.orders", (1,), {"n": 2}, ["alice"])
        self.assertEqual(publisher.send("app.shop.orders", body), SENT)
        request, timeout = self.opener.requests[0]
        self.assertEqual((request.full_url, request.get_method(), timeout),
                         ("http://hub:8080/apps/publish", "POST", 2.5))
        basic = "Basic " + base64.b64encode(b"ak1:s3cret").decode()
        self.assertEqual(request.get_header("Authorization"), basic)
        self.assertEqual(json.loads(request.data), {"topic": "app.shop.orders", "args": [1],
                                                    "kwargs": {"n": 2},
                                                    "to_users": ["alice"]})
        self.assertEqual(json.loads(publisher.body("app.shop.x", (), {}, None)),
                         {"topic": "app.shop.x", "args": [], "kwargs": {}})
        self.assertRaises(TypeError, publisher.body, "app.shop.x", (object(),), {}, None)

    def test_retries_with_backoff(self):
        """No answer, 503 and 429 are retried after 0.5 s, 1 s, 2 s (429: at least its Retry-After)."""
        publisher = self.publisher([OSError("refused"), http_error(503), http_error(429, "3"), None])
        with self.assertLogs("components.django_hub.app_publisher", "WARNING"):
            self.assertEqual(publisher.send("app.shop.x", b"{}"), SENT)
        self.assertEqual(self.slept, [0.5, 1.0, 3.0])
        self.assertEqual(len(self.opener.requests), 4)

    def test_gives_up(self):
        """After its retries it answers FAILED and logs it, never with the secret."""
        publisher = self.publisher([OSError("down")] * 3, retries=2)
        with self.assertLogs("components.django_hub.app_publisher", "WARNING") as logs:
            self.assertEqual(publisher.send("app.shop.x", b"{}"), FAILED)
        self.assertEqual(self.slept, [0.5, 1.0])
        self.assertIn("did not take it after 3 attempts", logs.output[-1])
        self.assertNotIn("s3cret", "".join(logs.output))

    def test_refusal_not_retried(self):
        """403 (a topic outside the application's prefix) and 401 are logged once and not retried."""
        for code in (401, 403):
            publisher = self.publisher([http_error(code)])
            with self.assertLogs("components.django_hub.app_publisher", "ERROR"):
                self.assertEqual(publisher.send("app.other.x", b"{}"), REFUSED)
            self.assertEqual((self.slept, len(self.opener.requests)), ([], 1))

    def test_light_import(self):
        """``from components.django_hub import push`` loads neither Twisted, Autobahn nor Crossbar."""
        code = ("import sys\nfrom components.django_hub import push\n"
                "print(sorted(m for m in sys.modules\n"
                "             if m.split('.')[0] in ('twisted', 'autobahn', 'crossbar')))")
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                              timeout=60,
                              check=True)
        self.assertEqual(done.stdout.strip(), "[]")
