"""
The request checks of ``POST /apps/publish`` without a node: the Basic
header, the body's shape and the application's prefix, private
applications, and when plain HTTP is allowed.
"""

import base64
import ipaddress

from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from components.applications import component, http_api
from components.core import errors


def body(text):
    return text.encode("utf-8")


class CredentialsTests(SynchronousTestCase):

    def test_basic(self):
        header = b"Basic " + base64.b64encode(b"ak01:s3cr:et")
        self.assertEqual(http_api.basic_credentials(header), ("ak01", "s3cr:et"))
        self.assertEqual(http_api.basic_credentials(b"basic " + base64.b64encode(b"k:s")), ("k", "s"))
        for wrong in (None, b"", b"Bearer x", b"Basic !!", b"Basic " + base64.b64encode(b"nocolon"),
                      b"Basic " + base64.b64encode(b":secret"), b"Basic " + base64.b64encode(b"key:")):
            self.assertIsNone(http_api.basic_credentials(wrong), wrong)


class PublicationTests(SynchronousTestCase):

    def test_valid(self):
        self.assertEqual(http_api.publication(body('{"topic": "app.shop.orders"}'), "shop", False),
                         ("app.shop.orders", [], {}, None))
        self.assertEqual(http_api.publication(
            body('{"topic": "app.shop.a.b", "args": [1], "kwargs": {"k": 2}, "to_users": ["b", "a", "b"]}'),
            "shop", True), ("app.shop.a.b", [1], {"k": 2}, ["a", "b"]))

    def test_malformed(self):
        for text in ('nope', '[]', '{}', '{"topic": "app.shop.x", "other": 1}', '{"topic": 7}',
                     '{"topic": "app.shop.x", "args": 1}', '{"topic": "app.shop.x", "kwargs": []}',
                     '{"topic": "app.shop.x", "kwargs": {"options": 1}}', '{"topic": "app.shop.X"}',
                     '{"topic": "app.shop.x", "kwargs": {"topic": 1}}', '{"topic": "app.shop.x", "kwargs": {"self": 1}}',
                     '{"topic": "app.shop.x", "args": [NaN]}', '{"topic": "app.shop.x", "kwargs": {"v": Infinity}}',
                     '{"topic": "app.shop.x", "args": [-Infinity]}',
                     '{"topic": "app.shop.x", "to_users": [""]}', '{"topic": "app.shop.x", "to_users": [1]}',
                     '{"topic": "app.shop.' + "x" * 300 + '"}'):
            with self.assertRaises(errors.InvalidArgument, msg=text):
                http_api.publication(body(text), "shop", False)
        with self.assertRaises(errors.InvalidArgument):
            http_api.publication(body('{"topic": "app.shop.x", "to_users": ["a", "b"]}'), "shop", False,
                                 max_users=1)
        with self.assertRaises(errors.InvalidArgument):
            http_api.publication(b"\xff", "shop", False)

    def test_prefix(self):
        """Only app.<name>.* of the application itself: not another's, not a prefix of its name, not the bare
        prefix."""
        for topic in ("app.shopping.x", "app.other.x", "iot.device.x", "app.shop"):
            with self.assertRaises(errors.NotAuthorized, msg=topic):
                http_api.publication(body('{"topic": "%s"}' % topic), "shop", False)

    def test_private_needs_users(self):
        with self.assertRaises(errors.InvalidArgument):
            http_api.publication(body('{"topic": "app.pay.x"}'), "pay", True)


class PlainHTTPTests(SynchronousTestCase):

    def request(self, host, secure=False):
        request = DummyRequest([b"publish"])
        request.client = IPv4Address("TCP", host, 40000)
        request.isSecure = lambda: secure
        return request

    def test_plain_allowed(self):
        proxies = [ipaddress.ip_network("10.0.0.0/8")]
        self.assertTrue(http_api.plain_allowed(self.request("203.0.113.5"), False, ()))
        self.assertTrue(http_api.plain_allowed(self.request("203.0.113.5", secure=True), True, ()))
        self.assertTrue(http_api.plain_allowed(self.request("127.0.0.1"), True, ()))
        self.assertTrue(http_api.plain_allowed(self.request("10.1.2.3"), True, proxies))
        self.assertFalse(http_api.plain_allowed(self.request("203.0.113.5"), True, proxies))


class RelayMessageTests(SynchronousTestCase):
    """What the bridges of linked nodes accept on apps.relay: only a well-formed event on an app topic."""

    def test_round_trip(self):
        message = component.relay_message("app.shop.x", [1], {"k": 2}, ["alice"])
        self.assertEqual(component.relayed(message), ("app.shop.x", [1], {"k": 2}, ["alice"], None))
        feed = {"publication": 7, "ts": 1, "args": [1], "kwargs": {"k": 2}}
        message = component.relay_message("app.shop.x", [1], {"k": 2}, ["alice"], feed)
        self.assertEqual(component.relayed(message), ("app.shop.x", [1], {"k": 2}, ["alice"], feed))

    def test_refused(self):
        good = component.relay_message("app.shop.x", [], {}, ["alice"])
        for wrong in (None, [], dict(good, extra=1), dict(good, topic="users.changed"), dict(good, to_users=[]),
                      dict(good, to_users=[""]), dict(good, to_users="alice"), dict(good, args={}),
                      dict(good, kwargs={"options": 1}), dict(good, kwargs={"topic": 1}),
                      dict(good, kwargs={"self": 1}), dict(good, feed={"publication": 1}),
                      dict(good, feed={"publication": "1", "ts": 1, "args": [], "kwargs": {}})):
            self.assertIsNone(component.relayed(wrong), wrong)
