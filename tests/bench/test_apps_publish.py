"""
bench/apps_publish.py's pure helpers: the keep-alive request it writes, the
response head it reads, the event bodies of the three latency runs, the
deliveries each must make, the native clients' merged histogram and the
split of browser sessions over pages.
"""

import base64
import json

from twisted.trial.unittest import SynchronousTestCase

from bench import apps_publish


class RequestTests(SynchronousTestCase):

    def test_basic_header(self):
        header = apps_publish.basic_header("ak123", "s:e:cret")
        self.assertTrue(header.startswith("Basic "))
        self.assertEqual(base64.b64decode(header[6:]), b"ak123:s:e:cret")

    def test_post_request(self):
        """One keep-alive POST with the exact Content-Length of the compact JSON body."""
        raw = apps_publish.post_request("127.0.0.1:8080", "Basic eA==", {"topic": "app.bench.x", "args": [1]})
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("ascii").split("\r\n")
        self.assertEqual(lines[0], "POST /apps/publish HTTP/1.1")
        self.assertIn("Host: 127.0.0.1:8080", lines)
        self.assertIn("Authorization: Basic eA==", lines)
        self.assertIn("Content-Length: {}".format(len(body)), lines)
        self.assertNotIn("Connection: close", lines)
        self.assertEqual(json.loads(body), {"topic": "app.bench.x", "args": [1]})

    def test_response_head(self):
        head = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                b"content-length:  57\r\nRetry-After: 1\r\n\r\n")
        self.assertEqual(apps_publish.response_head(head), (429, 57))
        self.assertEqual(apps_publish.response_head(b"HTTP/1.1 204 No Content\r\n\r\n"), (204, 0))


class RunTests(SynchronousTestCase):
    users = ["u0", "u1", "u2"]

    def test_event_bodies(self):
        """public: no to_users; one user: a different user per seq; all users: every user."""
        public = apps_publish.event_body("public", 7, 1.5, self.users)
        self.assertEqual(public, {"topic": apps_publish.TOPIC, "args": [{"seq": 7, "ts": 1.5}]})
        one = [apps_publish.event_body("one user", seq, 0, self.users)["to_users"] for seq in (3, 4, 5)]
        self.assertEqual(one, [["u0"], ["u1"], ["u2"]])
        self.assertEqual(apps_publish.event_body("all users", 1, 0, self.users)["to_users"], self.users)
        self.assertRaises(ValueError, apps_publish.event_body, "nobody", 1, 0, self.users)

    def test_expected_deliveries(self):
        self.assertEqual(apps_publish.expected_deliveries("public", 300, 200), 60000)
        self.assertEqual(apps_publish.expected_deliveries("all users", 300, 200), 60000)
        self.assertEqual(apps_publish.expected_deliveries("one user", 300, 200), 300)

    def test_merged_histogram(self):
        """The clients' histograms (JSON string buckets) add up per bucket."""
        results = [{"hist": {"3": 2, "10": 1}}, {"hist": {"3": 1}}, {"hist": {}}]
        merged = apps_publish.merged_histogram(results)
        self.assertEqual(merged, {3: 3, 10: 1})

    def test_pages_of(self):
        """At most per_page sessions a page, spread evenly, every session placed."""
        self.assertEqual(apps_publish.pages_of(300, 50), [50] * 6)
        self.assertEqual(apps_publish.pages_of(101, 50), [34, 34, 33])
        self.assertEqual(apps_publish.pages_of(7, 50), [7])
        self.assertEqual(sum(apps_publish.pages_of(299, 40)), 299)
