"""
The device bridge's parts without a router: the signature, the body check
(a registered device's own topic only, the deprecated shared key's
iot.device.reading), where the shared key and secret come from, the CORS and
TLS settings, the per-topic seq, and the answers of a disabled or not yet
joined bridge. (The replay memory and the registry are in
test_device_replays.py and test_registry.py: they need a database.)
"""

import base64
import hashlib
import hmac
import io
import json
import os
import stat
import tempfile

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from components.core import devsecrets, errors
from components.iot import (DEVICE_PREFIX, DEVICE_PUBLISH, DEVICE_TOPIC, device_simulator, device_topic, http_publish,
                            request_signing)
from components.iot.http_publish import (DeviceBridgeSession, DevicePublishResource, cors_origins, device_credentials,
                                   device_reading, reading_body, shared_reading)
from components.core.settings import Settings, SettingsError


class SignatureTests(SynchronousTestCase):
    """device_simulator.sign follows Crossbar's scheme: base64url(HMAC-SHA256(secret, key + timestamp + seq + nonce + body))."""

    def test_signature(self):
        """The signature is the HMAC of the concatenated fields, base64url with padding."""
        payload = device_simulator.body("nodemcu-1", 42)
        self.assertEqual(payload, b'{"topic":"iot.device.nodemcu-1","args":[{"value":42}]}')
        self.assertEqual(device_simulator.shared_body("nodemcu-1", 42),
                         b'{"topic":"iot.device.reading","args":[{"device":"nodemcu-1","value":42}]}')
        stamp = request_signing.timestamp(1_700_000_000.7)
        self.assertEqual(stamp, "2023-11-14T22:13:20.000Z")
        expected = base64.urlsafe_b64encode(hmac.new(
            b"secret", b"key" + stamp.encode() + b"7" + b"99" + payload, hashlib.sha256).digest()).decode()
        self.assertEqual(request_signing.sign("secret", "key", stamp, 7, 99, payload), expected)

    def test_request_quotes_padding(self):
        """The request carries the fields in the query, the '=' of the signature quoted, and the body."""
        payload = device_simulator.body("d", 1)
        stamp = "2023-11-14T22:13:20.000Z"
        raw = device_simulator.request_bytes("hub:8080", "/publish", "k", "s", stamp, 1, 2, payload)
        head, _, sent = raw.partition(b"\r\n\r\n")
        self.assertEqual(sent, payload)
        self.assertIn(b"Content-Length: %d\r\n" % len(payload), head)
        self.assertTrue(head.startswith(
            b"POST /publish?key=k&timestamp=2023-11-14T22:13:20.000Z&seq=1&nonce=2&signature="))
        self.assertTrue(head.split(b" ")[1].endswith(b"%3D"))


class CredentialTests(SynchronousTestCase):
    """The shared key and secret come from the settings, else from dev files; half a setting is an error."""

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
        mode = os.stat(os.path.join(self.directory, request_signing.SECRET_FILE)).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        self.assertEqual(device_simulator.credentials(environ={}, directory=self.directory, shared=True), first)

    def test_production_refuses_generated_credentials(self):
        """On a production node (HUB_ENV or its config's marker) the shared key is never generated: set both."""
        for environ in ({"HUB_ENV": "production"}, {devsecrets.CONFIG_MARKER: "production"}):
            with self.assertRaises(devsecrets.DevelopmentSecretRefused) as refused:
                device_credentials(Settings({}, environ), self.directory)
            self.assertIn("DEVICE_KEY and DEVICE_SECRET", refused.exception.fix)
        self.assertEqual(os.listdir(self.directory), [])
        given = {"DEVICE_KEY": "k-1", "DEVICE_SECRET": "x" * 16, "HUB_ENV": "production"}
        self.assertEqual(device_credentials(Settings(given, {}), self.directory), ("k-1", "x" * 16))

    def test_simulator_needs_device_credentials(self):
        """Without --shared the simulator takes no dev file: a device's own key and secret or a clear exit."""
        device_credentials(Settings({}, {}), self.directory)
        with self.assertRaises(SystemExit) as ended:
            device_simulator.credentials(environ={}, directory=self.directory)
        self.assertIn("device add", str(ended.exception))
        found = device_simulator.credentials(environ={"DEVICE_KEY": "dk1", "DEVICE_SECRET": "s" * 20}, directory=self.directory)
        self.assertEqual(found, ("dk1", "s" * 20))

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
        """DEVICE_SHARED_KEY on and only DEVICE_KEY set: every post gets 503 in generic words; the log (the
        reason kept in ``disabled``) names the problem."""
        resource = DevicePublishResource(Settings({"DEVICE_SHARED_KEY": "on", "DEVICE_KEY": "k",
                                                   "node_dir": tempfile.mkdtemp()}, {}),
                                         session_source=lambda: self.fail("no session expected"), database=None)
        code, body = self.render(resource)
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body), {"error": errors.UNAVAILABLE, "message": http_publish.PUBLISH_UNAVAILABLE})
        self.assertIn("DEVICE_SECRET", resource.disabled)

    def test_shared_key_off_by_default(self):
        """Without DEVICE_SHARED_KEY the bridge makes no shared dev credentials and ignores DEVICE_KEY."""
        directory = tempfile.mkdtemp()
        resource = DevicePublishResource(Settings({"DEVICE_KEY": "k", "DEVICE_SECRET": "x" * 16,
                                                   "node_dir": directory}, {}),
                                         session_source=lambda: None, database=None)
        self.assertIsNone(resource.disabled)
        self.assertIsNone(resource.shared)
        self.assertFalse(os.path.exists(os.path.join(directory, request_signing.SECRET_FILE)))
        on = DevicePublishResource(Settings({"DEVICE_SHARED_KEY": "on", "node_dir": directory}, {}),
                                   session_source=lambda: None, database=None)
        self.assertEqual(on.shared, device_credentials(Settings({}, {}), directory))

    def test_unreadable_kek(self):
        """An E2E_KEK_FILE that does not exist, or a malformed E2E_KEK, disables the bridge: 503 naming it."""
        for settings in ({"E2E_KEK_FILE": "/nonexistent/kek"}, {"E2E_KEK": "short"}):
            resource = DevicePublishResource(Settings(dict(settings, node_dir=tempfile.mkdtemp()), {}),
                                             session_source=lambda: self.fail("no session expected"), database=None)
            code, body = self.render(resource)
            self.assertEqual(code, 503, settings)
            self.assertIn(b"reactive.error.unavailable", body)
        self.assertIn("E2E_KEK", resource.disabled)

    def test_no_session_yet(self):
        """Before the bridge session has joined, posts get 503."""
        resource = DevicePublishResource(Settings({"node_dir": tempfile.mkdtemp()}, {}), session_source=lambda: None,
                                         database=None)
        code, body = self.render(resource)
        self.assertEqual(code, 503)
        self.assertIn(b"reactive.error.unavailable", body)


class DechunkTests(SynchronousTestCase):
    """device_simulator.dechunk joins the chunks of a chunked HTTP answer."""

    def test_chunks(self):
        """Two chunks and the final zero chunk give the joined body."""
        self.assertEqual(device_simulator.dechunk(b"3\r\n{\"a\r\n5\r\n\":1}\n\r\n0\r\n\r\n"), b'{"a":1}\n')


class ReadingShapeTests(SynchronousTestCase):
    """
    A registered device's post publishes on its own topic only (another
    device's topic or name is not_authorized); the shared key's on
    iot.device.reading naming its device; everything else is refused with a
    clear error.
    """

    def reading(self, value=42, device_name="nodemcu-1", topic=None):
        return {"topic": topic or device_topic("nodemcu-1"), "args": [{"device": device_name, "value": value}]}

    def refused(self, event, check=reading_body):
        with self.assertRaises(errors.HubError) as raised:
            check(event)
        return raised.exception.uri

    def test_sketch_body(self):
        """The simulator's (and the sketch's) body gives the device's topic and the value."""
        import json
        event = json.loads(device_simulator.body("nodemcu-1", 42))
        self.assertEqual(device_reading(event, "nodemcu-1"), ("iot.device.nodemcu-1", 42))
        self.assertEqual(reading_body(event), ("iot.device.nodemcu-1", None, 42))
        for value in (None, True, -7, 2.5, "42", "x" * 256, 2 ** 53 - 1):
            self.assertEqual(device_reading(self.reading(value), "nodemcu-1")[1], value)

    def test_other_device_not_authorized(self):
        """Signed by nodemcu-1, a body on another device's topic, naming another device, or on the shared
        topic is not_authorized."""
        for event in (self.reading(topic=device_topic("kitchen")), self.reading(device_name="kitchen"),
                      self.reading(topic=DEVICE_TOPIC), self.reading(topic=DEVICE_PREFIX + "nodemcu-1.x"),
                      json_body(device_simulator.shared_body("nodemcu-1", 1))):
            self.assertEqual(self.refused(event, lambda e: device_reading(e, "nodemcu-1")), errors.NOT_AUTHORIZED,
                             event)

    def test_shared_key_body(self):
        """The shared key's post names its device and goes on iot.device.reading only."""
        self.assertEqual(shared_reading(json_body(device_simulator.shared_body("old-1", 5))), (DEVICE_TOPIC, "old-1", 5))
        self.assertEqual(self.refused(json_body(device_simulator.body("old-1", 5)), shared_reading), errors.NOT_AUTHORIZED)
        self.assertEqual(self.refused({"topic": DEVICE_TOPIC, "args": [{"value": 1}]}, shared_reading),
                         errors.INVALID_ARGUMENT)

    def test_bad_topics(self):
        """A topic that is no WAMP URI (iot., iot..x, blanks, #) is invalid_argument, whatever its prefix."""
        for topic in ("iot.", "iot..x", "iot.device.", "iot.device..x", ".iot.device.x", "iot.device.a b",
                      "iot.device.a#b", "iot.device.x\n", "iot.device." + "x" * 250, 7, ["iot.device.x"]):
            self.assertEqual(self.refused(self.reading(topic=topic)), errors.INVALID_ARGUMENT, topic)

    def test_component_topics_not_authorized(self):
        """Valid URIs outside iot.device. (the components' topics, others) are not_authorized."""
        for topic in ("iot.serial.reader", "iot.odata.value", "iot.serial.get", "iot.devicex", "time.tic",
                      "counter.changed", "iot"):
            self.assertEqual(self.refused(self.reading(topic=topic)), errors.NOT_AUTHORIZED, topic)

    def test_bad_shapes(self):
        """Other keys (a client seq, ts, kwargs, options), other args, names and values are invalid_argument."""
        topic = device_topic("nodemcu-1")
        forged_seq = self.reading()
        forged_seq["args"][0]["seq"] = 9007199254740991
        with_options = dict(self.reading(), options={"eligible": [1]})
        with_kwargs = dict(self.reading(), kwargs={"seq": 1})
        bad = [forged_seq, with_options, with_kwargs, {"topic": topic}, {"args": []}, [], "x",
               {"topic": topic, "args": []},
               {"topic": topic, "args": [{"value": 1}, {"value": 2}]},
               {"topic": topic, "args": [{"device": "nodemcu-1"}]},
               {"topic": topic, "args": [42]},
               {"topic": topic, "args": {"value": 1}}]
        bad += [self.reading(value) for value in ([1], {"v": 1}, "x" * 257, 2 ** 53, float("nan"), float("inf"),
                                                  "\ud800")]  # a lone surrogate no subscriber's serializer takes
        bad += [self.reading(device_name=name) for name in ("", "a b", 'a"b', "a\n", "x" * 65, 7, None)]
        for event in bad:
            self.assertEqual(self.refused(event), errors.INVALID_ARGUMENT, event)


def json_body(raw):
    import json
    return json.loads(raw)


class DeviceStateTests(SynchronousTestCase):
    """The bridge session keeps one seq per device topic: strictly increasing there, whatever other topics do."""

    def test_seq_per_topic(self):
        """Readings in the same millisecond still get increasing seqs per topic; the state names the device."""
        session = DeviceBridgeSession()
        clock = task.Clock()
        clock.advance(1_700_000_000)
        session.reactor = clock
        session.states = {}
        first = session.next_state("iot.device.a", "a", 1)
        other = session.next_state("iot.device.b", "b", 7)
        second = session.next_state("iot.device.a", "a", 2)
        self.assertEqual(first, {"value": 1, "seq": 1_700_000_000_000, "ts": 1_700_000_000_000, "device": "a"})
        self.assertEqual(other["seq"], 1_700_000_000_000)
        self.assertEqual((second["seq"], second["value"], second["device"]), (1_700_000_000_001, 2, "a"))


class DeviceRoleConfigTests(SynchronousTestCase):
    """Devices publish nothing themselves: the bridge's own role publishes under DEVICE_PREFIX, in every node config."""

    def roles(self):
        import json
        from tests.support.node import REPO
        for name in ("config.json", "master.json", "client.json"):
            with open(os.path.join(REPO, ".crossbar", name)) as handle:
                config = json.load(handle)
            # a role with a dynamic authorizer (app) lists no static permissions
            found = {role["name"]: [(item["uri"], item["match"], item["allow"]) for item in role.get("permissions", [])]
                     for worker in config["workers"] for realm in worker.get("realms", []) for role in realm["roles"]}
            yield name, found

    def test_device_role(self):
        """Role device may only call iot.device.publish; role device_bridge publishes iot.device.* and registers it."""
        for name, roles in self.roles():
            self.assertEqual(roles["device"], [(DEVICE_PUBLISH, "exact", {"call": True, "register": False,
                                                                          "publish": False, "subscribe": False})], name)
            self.assertEqual(roles["device_bridge"], [
                (DEVICE_PREFIX, "prefix", {"call": False, "register": False, "publish": True, "subscribe": False}),
                (DEVICE_PUBLISH, "exact", {"call": False, "register": True, "publish": False, "subscribe": False})],
                name)

    def test_pages_subscribe_every_device(self):
        """Roles user and admin may subscribe every device topic (prefix iot.device.), never publish there."""
        for name, roles in self.roles():
            for role in ("user", "admin"):
                found = [(match, allow) for uri, match, allow in roles[role] if uri.startswith(DEVICE_PREFIX)]
                self.assertEqual(found, [("prefix", {"call": False, "register": False, "publish": False,
                                                     "subscribe": True})], (name, role))


class SecureRequest(DummyRequest):
    """A DummyRequest that knows whether it came over TLS."""

    def __init__(self, secure=False, method=b"POST", origin=None):
        DummyRequest.__init__(self, [b""])
        self.method = method
        self.path = b"/publish"
        self.content = io.BytesIO(b"{}")
        self.secure = secure
        if origin is not None:
            self.requestHeaders.setRawHeaders(b"origin", [origin])

    def isSecure(self):
        return self.secure


class HeaderTests(SynchronousTestCase):
    """CORS headers only for configured origins; DEVICE_REQUIRE_TLS honours a TLS proxy (PUBLIC_URL)."""

    def resource(self, **settings):
        settings.setdefault("node_dir", tempfile.mkdtemp())
        return DevicePublishResource(Settings(settings, {}), session_source=lambda: object(), database=None)

    def cors_headers(self, resource, method=b"OPTIONS", origin=b"https://evil.example"):
        request = SecureRequest(method=method, origin=origin)
        resource.render(request)
        return {name.lower(): values for name, values in request.responseHeaders.getAllRawHeaders()
                if name.lower().startswith(b"access-control-")}

    def test_no_cors_by_default(self):
        """Unset DEVICE_CORS_ORIGINS: neither a preflight nor a post gets any Access-Control header."""
        resource = self.resource()
        self.assertEqual(self.cors_headers(resource), {})
        self.assertEqual(self.cors_headers(resource, method=b"POST"), {})

    def test_configured_origin_only(self):
        """A listed origin is echoed (never with credentials); any other origin gets nothing."""
        resource = self.resource(DEVICE_CORS_ORIGINS="https://app.example.org, http://localhost:3000")
        allowed = self.cors_headers(resource, origin=b"https://app.example.org")
        self.assertEqual(allowed[b"access-control-allow-origin"], [b"https://app.example.org"])
        self.assertNotIn(b"access-control-allow-credentials", allowed)
        self.assertEqual(self.cors_headers(resource, origin=b"https://evil.example"), {})
        self.assertEqual(self.cors_headers(resource, origin=None), {})

    def test_cors_origins_setting(self):
        """Origins are scheme://host[:port] or *; a path or a bare host is a SettingsError (bridge disabled)."""
        self.assertEqual(cors_origins(Settings({"DEVICE_CORS_ORIGINS": "*"}, {})), frozenset([b"*"]))
        self.assertEqual(cors_origins(Settings({}, {})), frozenset())
        for bad in ("app.example.org", "https://app.example.org/", "https://a.example/x", "ftp://a.example",
                    "https://b\u00fccher.example"):
            self.assertRaises(SettingsError, cors_origins, Settings({"DEVICE_CORS_ORIGINS": bad}, {}))
        self.assertIn("DEVICE_CORS_ORIGINS", self.resource(DEVICE_CORS_ORIGINS="nope").disabled)

    def test_require_tls(self):
        """DEVICE_REQUIRE_TLS refuses plain HTTP, unless PUBLIC_URL is https:// (TLS ends at a proxy)."""
        plain = self.resource(DEVICE_REQUIRE_TLS="on")
        refusal = plain._refusal(SecureRequest(secure=False))
        self.assertEqual(refusal.uri, errors.INVALID_ARGUMENT)
        self.assertIsNone(plain._refusal(SecureRequest(secure=True)))
        proxied = self.resource(DEVICE_REQUIRE_TLS="on", PUBLIC_URL="https://hub.example.org")
        self.assertIsNone(proxied._refusal(SecureRequest(secure=False)))
        not_tls = self.resource(DEVICE_REQUIRE_TLS="on", PUBLIC_URL="http://hub.example.org")
        self.assertIsNotNone(not_tls._refusal(SecureRequest(secure=False)))
        self.assertIsNone(self.resource()._refusal(SecureRequest(secure=False)))
