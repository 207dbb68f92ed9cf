"""
The device bridge's parts without a router: the signature, the replay
guard, where the key and secret come from, and the answers of a disabled or
not yet joined bridge.
"""

import base64
import hashlib
import hmac
import os
import stat
import tempfile

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from components.iot import device, signing
from components.iot.bridge import DevicePublishResource, ReplayGuard, device_credentials
from components.core.settings import Settings, SettingsError


class SignatureTests(SynchronousTestCase):
    """device.sign follows Crossbar's scheme: base64url(HMAC-SHA256(secret, key|timestamp|seq|nonce|body))."""

    def test_signature(self):
        """The signature is the HMAC of the concatenated fields, base64url with padding."""
        payload = device.body("nodemcu-1", 42)
        self.assertEqual(payload,
                         b'{"topic":"iot.device.reading","args":[{"device":"nodemcu-1","value":42}]}')
        stamp = signing.timestamp(1_700_000_000.7)
        self.assertEqual(stamp, "2023-11-14T22:13:20.000Z")
        expected = base64.urlsafe_b64encode(hmac.new(
            b"secret", b"key" + stamp.encode() + b"7" + b"99" + payload, hashlib.sha256).digest()).decode()
        self.assertEqual(signing.sign("secret", "key", stamp, 7, 99, payload), expected)

    def test_request_quotes_padding(self):
        """The request carries the fields in the query, the '=' of the signature quoted, and the body."""
        payload = device.body("d", 1)
        stamp = "2023-11-14T22:13:20.000Z"
        raw = device.request_bytes("hub:8080", "/publish", "k", "s", stamp, 1, 2, payload)
        head, _, sent = raw.partition(b"\r\n\r\n")
        self.assertEqual(sent, payload)
        self.assertIn(b"Content-Length: %d\r\n" % len(payload), head)
        self.assertTrue(head.startswith(
            b"POST /publish?key=k&timestamp=2023-11-14T22:13:20.000Z&seq=1&nonce=2&signature="))
        self.assertTrue(head.split(b" ")[1].endswith(b"%3D"))


class ReplayGuardTests(SynchronousTestCase):
    """ReplayGuard accepts a signature once within its window."""

    def test_once_per_window(self):
        """A repeat inside the window is seen; after the window it is forgotten."""
        clock = task.Clock()
        guard = ReplayGuard(10, clock=clock.seconds)
        self.assertFalse(guard.seen(b"a"))
        self.assertTrue(guard.seen(b"a"))
        self.assertFalse(guard.seen(b"b"))
        clock.advance(10)
        self.assertFalse(guard.seen(b"a"))
        self.assertEqual(list(guard.expiry), [b"a"])


class CredentialTests(SynchronousTestCase):
    """Key and secret come from the settings, else from dev files; half a setting is an error."""

    def setUp(self):
        self.directory = tempfile.mkdtemp()

    def test_from_settings(self):
        """DEVICE_KEY and DEVICE_SECRET are used as given."""
        found = device_credentials(Settings({"DEVICE_KEY": "k-1", "DEVICE_SECRET": "x" * 16}, {}), self.directory)
        self.assertEqual(found, ("k-1", "x" * 16))

    def test_dev_files(self):
        """Unset: random credentials are created once in <node dir>/secrets (mode 0600) and reused."""
        first = device_credentials(Settings({}, {}), self.directory)
        self.assertEqual(device_credentials(Settings({}, {}), self.directory), first)
        mode = os.stat(os.path.join(self.directory, signing.SECRET_FILE)).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        self.assertEqual(device.credentials(environ={}, directory=self.directory), first)

    def test_refused_settings(self):
        """Half set, a key with characters needing quoting, or a short secret are SettingsErrors."""
        for settings in ({"DEVICE_KEY": "k"}, {"DEVICE_SECRET": "x" * 16},
                         {"DEVICE_KEY": "a&b", "DEVICE_SECRET": "x" * 16},
                         {"DEVICE_KEY": "k", "DEVICE_SECRET": "x"}):
            self.assertRaises(SettingsError, device_credentials, Settings(settings, {}), self.directory)


class UnavailableBridgeTests(SynchronousTestCase):
    """The resource answers 503, and publishes nothing, when it cannot work."""

    def render(self, resource):
        request = DummyRequest([b""])
        request.method = b"POST"
        body = resource.render(request)
        return request.responseCode, body

    def test_half_configured(self):
        """Only DEVICE_KEY set: every post gets 503 naming the problem."""
        resource = DevicePublishResource(Settings({"DEVICE_KEY": "k", "node_dir": tempfile.mkdtemp()}, {}),
                                         session_source=lambda: self.fail("no session expected"))
        code, body = self.render(resource)
        self.assertEqual(code, 503)
        self.assertIn(b"DEVICE_SECRET", body)

    def test_no_session_yet(self):
        """Before the bridge session has joined, posts get 503."""
        resource = DevicePublishResource(Settings({"node_dir": tempfile.mkdtemp()}, {}), session_source=lambda: None)
        code, body = self.render(resource)
        self.assertEqual(code, 503)
        self.assertIn(b"reactive.error.unavailable", body)


class DechunkTests(SynchronousTestCase):
    """device.dechunk joins the chunks of a chunked HTTP answer."""

    def test_chunks(self):
        """Two chunks and the final zero chunk give the joined body."""
        self.assertEqual(device.dechunk(b"3\r\n{\"a\r\n5\r\n\":1}\n\r\n0\r\n\r\n"), b'{"a":1}\n')
