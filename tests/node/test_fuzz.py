"""
Bad input against a real router, generated with hypothesis: every public
RPC (``time.get``, ``counter.get``, ``counter.click``, ``iot.serial.get``,
``iot.odata.get``, ``users.me``, and ``master.users.save/delete/list`` as an
admin) and every HTTP endpoint (``/auth/login``, ``/auth/token``,
``/auth/logout``, ``/publish``, ``/health``) gets a few dozen generated
inputs each (wrong arity, unknown keywords, wrong types, huge and nested
values, control characters, forged cookies and signatures), and answers each
with a documented result: a WAMP error under ``reactive.error.`` (never
``wamp.error.runtime_error``, never ``reactive.error.internal``, never a
traceback or a Python exception text), an HTTP answer below 500 (or a 503 of
an unready dependency) with a JSON body; afterwards the hub still serves
another session.

The examples are derandomized (the same every run, no example database), so
a failure is reproducible; hypothesis prints the falsifying example. The
properties run in a thread and reach the reactor through
``blockingCallFromThread``, so hypothesis drives real network calls.
"""

import datetime
import json
import random
from urllib.parse import quote, urlencode

import treq
import txaio
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.request import CallRequest
from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet import defer, threads
from twisted.internet.threads import blockingCallFromThread
from twisted.trial import unittest

from components.auth.directory import ADMIN_FIELDS
from components.iot import request_signing
from tests.support.clients import connect, post_json
from tests.support.devices import register
from tests.support.node import free_port, shared_node
from tests.support.users import add_users

EXAMPLES = 40  # per target: 14 targets, some 560 inputs in all
SETTINGS = settings(max_examples=EXAMPLES, deadline=datetime.timedelta(seconds=5), derandomize=True,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
CALL_TIMEOUT = 5
ADMIN = "fuzz-admin"
USER = "fuzz-user"
PASSWORD = "fuzz-password-1"
DEVICE = "fuzz-device"  # registered on the fuzz node: posts are signed with its key and secret
# what Python's own errors say (a traceback, an exception name, a signature mismatch)
TRACES = ("Traceback", 'File "', "TypeError", "KeyError", "AttributeError", "ValueError", "has no attribute",
          "were given", "was given", "required positional argument", "got multiple values",
          "unexpected keyword argument")

# --- generated values --------------------------------------------------------------------------------

NASTY = ["", " ", "\x00", "a\x00b", "\x01\x1f", "line\nbreak", "\t", "default", "x" * 65, "x" * 5000,
         "<script>alert(1)</script>", "../../etc/passwd", "ünï", "\u202e", "\ufeff", "Robert'); DROP TABLE",
         "%s%n", "counter.changed", "a.b", "*", "null", "true", "1", "-1", "1e400", "NaN"]
KEYS = ["n", "name", "profile", "username", "limit", "offset", "details", "call_details", "password",
        "value", "args", "kwargs", "procedure", "options", "__class__", "self", "fun", "f"]
# keywords that autobahn's session.call() takes for itself: such calls are sent by raw_call()
RESERVED = frozenset(("procedure", "options", "self"))
# "self", "fun" and "f" reach the procedures too: components/node/patches/callkwargs.py
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=24))
texts = st.one_of(st.text(max_size=60), st.sampled_from(NASTY))
usernames = st.one_of(texts, st.from_regex(r"fz_[a-z0-9_.@+-]{1,12}", fullmatch=True))
integers = st.one_of(st.integers(-2 ** 70, 2 ** 70),
                     st.sampled_from([0, 1, -1, 100, 101, 1000, 1001, 2 ** 31, 2 ** 53 + 1, 2 ** 63, 2 ** 64]))
scalars = st.one_of(st.none(), st.booleans(), integers, st.floats(allow_nan=False, allow_infinity=False), texts)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=4)),
                      max_leaves=8)
profiles = st.one_of(
    st.fixed_dictionaries({"username": usernames}, optional={field: st.one_of(texts, values)
                                                         for field in ADMIN_FIELDS[1:] + ("password",)}),
    st.dictionaries(st.one_of(st.sampled_from(ADMIN_FIELDS + ("password",)), keys), values, max_size=5))


def calls(*argument):
    """(args, kwargs) of a call: up to 3 positional values (drawn from ``argument`` or anything) and keywords."""
    positional = st.one_of(*argument, values) if argument else values
    return st.tuples(st.lists(positional, max_size=3), st.dictionaries(keys, positional, max_size=3))


def shaped(*parameters):
    """(args, kwargs) with the right number of positional arguments, each drawn from its strategy."""
    return st.tuples(*parameters).map(lambda args: (list(args), {}))


WAMP_TARGETS = {
    "time.get": ("user", calls()),
    "counter.get": ("user", st.one_of(calls(texts), shaped(texts))),
    "counter.click": ("user", st.one_of(calls(integers, texts), shaped(integers, texts))),
    "iot.serial.get": ("user", calls()),
    "iot.odata.get": ("user", calls()),
    "users.me": ("user", calls()),
    "master.users.save": ("admin", st.one_of(calls(profiles), shaped(profiles))),
    "master.users.delete": ("admin", st.one_of(calls(usernames), shaped(usernames))),
    "master.users.list": ("admin", st.one_of(calls(integers), shaped(integers, integers))),
}

# the methods each endpoint documents; any other one gets Twisted's own answer (see HttpOtherMethodTests)
DOCUMENTED = {"/auth/login": ("POST", "GET"), "/auth/token": ("POST", "GET"), "/auth/logout": ("POST", "GET"),
              "/publish": ("POST", "OPTIONS"), "/health": ("GET",)}
OTHER_METHODS = ("PUT", "DELETE", "PATCH", "POST", "GET", "OPTIONS")
content_types = st.one_of(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "",
                                           "text/plain", "application/json; charset=latin-1", "multipart/form-data"]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
origins = st.one_of(st.none(), st.sampled_from(["null", "http://evil.example", "SAME"]),
                    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
cookies = st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                                              exclude_characters=";,="), max_size=80),
                    st.just("VALID"))
bodies = st.one_of(
    st.binary(max_size=300),
    values.map(lambda value: json.dumps(value).encode("utf-8")),
    st.dictionaries(st.sampled_from(["username", "password", "topic", "args"]) | keys, values, max_size=4).map(
        lambda value: json.dumps(value).encode("utf-8")),
    st.dictionaries(keys, texts, max_size=4).map(lambda value: urlencode(value).encode("utf-8")),
    st.just(b"{" * 5000), st.just(b"x" * 20000))
device_events = st.one_of(
    values,
    st.fixed_dictionaries({"topic": st.one_of(texts, st.sampled_from(["iot.device.a", "iot.device.", "iot.x",
                                                                       "time.tic", "iot.device.a b",
                                                                       "iot.device." + DEVICE, "iot.device.reading"])),
                           "args": st.one_of(values, st.lists(st.dictionaries(
                               st.sampled_from(["device", "value", "extra"]), values, max_size=3), max_size=2))}))
query_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2ff), max_size=40)


def http_requests(methods):
    """A request's parts with one of ``methods``."""
    return st.fixed_dictionaries({
        "method": st.sampled_from(methods), "content_type": content_types, "origin": origins, "cookie": cookies,
        "body": bodies, "suffix": st.one_of(st.sampled_from(["", "live", "ready"]), st.text(max_size=20)),
        "query": st.dictionaries(st.sampled_from(["key", "timestamp", "seq", "nonce", "signature"]) | keys,
                                 query_values, max_size=5),
        "event": device_events, "signed": st.booleans(),
    })


# --- the hub -----------------------------------------------------------------------------------------

@defer.inlineCallbacks
def fuzz_node():
    """One node for the module: every source on (serial on loop://, OData on a closed port), fast login limits."""
    env = {"SERIAL_URL": "loop://", "ODATA_URL": "http://127.0.0.1:{}/odata.svc/T_IOT".format(free_port()),
           "ODATA_INTERVAL": "60", "LOGIN_RATE": "100000", "LOGIN_BURST": "100000"}
    node = yield shared_node("fuzz", env=env)
    if not getattr(node, "fuzz_users", False):
        yield add_users(node, [(ADMIN, "Admin", True), (USER, "User", False)], PASSWORD)
        node.fuzz_users = True
    if not getattr(node, "fuzz_device", None):
        node.fuzz_device = yield register(None, node, DEVICE)
    return node


def raw_call(session, procedure, args, kwargs):
    """
    ``session.call`` for keywords it cannot pass on (``self``, ``procedure``,
    ``options``), which other clients (autobahn.js) send freely: the CALL
    message built and sent as ``ApplicationSession.call`` does it.
    """
    request_id = session._request_id_gen.next()
    answer = txaio.create_future()
    session._call_reqs[request_id] = CallRequest(request_id, procedure, answer, None)
    session._transport.send(message.Call(request_id, procedure, args=list(args), kwargs=kwargs))
    return answer


def call_from_thread(session, procedure, args, kwargs):
    """``session.call`` from the hypothesis thread; the result, or the ApplicationError it failed with."""
    def call():
        if RESERVED & set(kwargs):
            d = raw_call(session, procedure, args, kwargs)
        else:
            d = session.call(procedure, *args, **kwargs)
        return d.addTimeout(CALL_TIMEOUT, reactor())
    try:
        return blockingCallFromThread(reactor(), call)
    except ApplicationError as error:
        return error


def reactor():
    from twisted.internet import reactor
    return reactor


def request_from_thread(method, url, body, headers):
    """An HTTP request from the hypothesis thread; ``(status, body bytes, content type)``."""
    @defer.inlineCallbacks
    def send():
        response = yield treq.request(method, url, data=body, headers=headers, persistent=False,
                                      timeout=CALL_TIMEOUT)
        content = yield response.content()
        kind = (response.headers.getRawHeaders(b"content-type") or [b""])[0].decode("latin-1")
        return response.code, content, kind
    return blockingCallFromThread(reactor(), send)


class FuzzTestCase(unittest.TestCase):
    timeout = 180

    @defer.inlineCallbacks
    def run_property(self, property, seen):
        """Run the hypothesis ``property`` (off the reactor thread); it must have tried EXAMPLES cases, and the hub
        must still serve another session afterwards. Fires with ``seen``, what the property collected."""
        yield threads.deferToThread(property)
        self.assertGreaterEqual(len(seen), EXAMPLES)
        yield self.assert_still_serving()
        return seen

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield fuzz_node()
        self.sessions = {
            "user": (yield connect(self, self.node, sub=USER)).session,
            "admin": (yield connect(self, self.node, sub=ADMIN, role="admin")).session,
        }
        self.bystander = (yield connect(self, self.node, sub="bystander")).session
        status, answer, response = yield post_json(self.node.http + "/auth/login",
                                                   {"username": USER, "password": PASSWORD})
        self.assertEqual(status, 200, answer)
        self.cookie = {cookie.name: cookie.value for cookie in response.cookies()}["hub_session"]

    def assertDocumented(self, procedure, args, kwargs, outcome):
        """An answer, or a reactive.error.* refusal with a short message that shows no Python internals."""
        if not isinstance(outcome, ApplicationError):
            return
        message = outcome.args[0] if outcome.args else ""
        case = "{}(*{!r}, **{!r}) -> {} {!r}".format(procedure, args, kwargs, outcome.error, message)[:2000]
        self.assertTrue(outcome.error.startswith("reactive.error."), case)
        self.assertNotEqual(outcome.error, "reactive.error.internal", case)
        self.assertIsInstance(message, str, case)
        self.assertLess(len(message), 600, case)
        for trace in TRACES:
            self.assertNotIn(trace, message, case)
        self.assertNotIn("traceback", outcome.kwargs or {}, case)

    @defer.inlineCallbacks
    def assert_still_serving(self):
        """The bystander's time.get answers, and the fuzzing sessions are still joined."""
        state = yield self.bystander.call("time.get")
        self.assertIn("value", state)
        for role, session in self.sessions.items():
            self.assertTrue(session.is_attached(), "the {} session was dropped".format(role))
        self.assertIsNone(self.node.process.poll(), "the hub exited")

    @defer.inlineCallbacks
    def fuzz_rpc(self, procedure):
        role, strategy = WAMP_TARGETS[procedure]
        session = self.sessions[role]
        outcomes = []

        @SETTINGS
        @given(strategy)
        def property(call):
            args, kwargs = call
            outcome = call_from_thread(session, procedure, args, kwargs)
            outcomes.append(getattr(outcome, "error", "answer"))
            self.assertDocumented(procedure, args, kwargs, outcome)

        return (yield self.run_property(property, outcomes))

    def send_http(self, path, request):
        """Send the generated ``request`` to ``path``; ``(status, content, content type, case text)``."""
        headers = {}
        if request["content_type"]:
            headers["Content-Type"] = [request["content_type"]]
        if request["origin"] is not None:
            headers["Origin"] = ["http://127.0.0.1:{}".format(self.node.port)
                                 if request["origin"] == "SAME" else request["origin"]]
        if request["cookie"] is not None:
            headers["Cookie"] = ["hub_session=" + (self.cookie if request["cookie"] == "VALID" else request["cookie"])]
        body = request["body"]
        query = dict(request["query"])
        if path == "/health" and request["suffix"]:
            path += "/" + quote(request["suffix"])
        if path == "/publish" and request["signed"]:
            # correctly signed, so the generated event reaches the hub's own checks
            body = json.dumps(request["event"]).encode("utf-8")
            stamp = request_signing.timestamp()
            seq, nonce = random.Random(body).randrange(1, 2 ** 31), random.Random(stamp).randrange(1, 2 ** 53)
            key, secret = self.node.fuzz_device
            query.update(key=key, timestamp=stamp, seq=str(seq), nonce=str(nonce),
                         signature=request_signing.sign(secret, key, stamp, seq, nonce, body))
            headers["Content-Type"] = ["application/json"]
        url = self.node.http + path + ("?" + urlencode(query) if query else "")
        status, content, kind = request_from_thread(request["method"], url, body, headers)
        case = "{} {} {!r} {!r} -> {} {!r}".format(request["method"], url[:300], headers, body[:200], status,
                                                   content[:300])
        self.assertNotEqual(status, 500, case)
        for trace in TRACES[:2]:
            self.assertNotIn(trace.encode(), content, case)
        return status, content, kind, case

    @defer.inlineCallbacks
    def fuzz_http(self, path):
        """
        Documented methods: below 500 (503 for an unready dependency); every
        4xx/503 a JSON object; the hub's own refusals carry a reactive.error.*
        URI (Crossbar's signature checks of /publish answer {"error": text}).
        """
        statuses = []

        @SETTINGS
        @given(http_requests(DOCUMENTED[path]))
        def property(request):
            status, content, kind, case = self.send_http(path, request)
            statuses.append(status)
            self.assertTrue(status < 500 or status == 503, case)
            if request["method"] == "OPTIONS" and status < 300:
                return  # a preflight answer has no body
            if status < 400:
                return
            if status == 400 and not content and request["content_type"].startswith("multipart/form-data"):
                return  # Twisted parses a multipart body before any resource sees it: a malformed one, bare 400
            self.assertIn("json", kind, case)
            answer = json.loads(content.decode("utf-8"))
            self.assertIsInstance(answer, dict, case)
            if path.startswith("/auth/"):
                self.assertTrue(str(answer.get("error", "")).startswith("reactive.error."), case)
            if path == "/publish":
                self.assertIsInstance(answer.get("error"), str, case)
            self.assertNotEqual(answer.get("error"), "reactive.error.internal", case)

        return (yield self.run_property(property, statuses))


def fuzzes_rpc(procedure, doc):
    """A test method fuzzing ``procedure`` (its docstring ``doc``)."""
    def test(self):
        return self.fuzz_rpc(procedure)
    test.__doc__ = doc
    return test


def fuzzes_http(path, doc):
    """A test method fuzzing the HTTP endpoint ``path`` (its docstring ``doc``)."""
    def test(self):
        return self.fuzz_http(path)
    test.__doc__ = doc
    return test


class RpcFuzzTests(FuzzTestCase):
    """Generated calls of every public procedure get an answer or a reactive.error.* refusal."""


class HttpFuzzTests(FuzzTestCase):
    """Generated requests to every HTTP endpoint get an answer below 500 (or 503) with a JSON body."""


# one test method per procedure and per endpoint: (method name, target, docstring)
RPC_TESTS = [
    ('test_time_get', 'time.get',
     'time.get with generated arguments: the state or invalid_argument.'),
    ('test_counter_get', 'counter.get',
     'counter.get with generated arguments: a state or invalid_argument.'),
    ('test_counter_click', 'counter.click',
     'counter.click with generated arguments: a state, invalid_argument or rate_limited.'),
    ('test_iot_serial_get', 'iot.serial.get',
     'iot.serial.get with generated arguments: the state or invalid_argument.'),
    ('test_iot_odata_get', 'iot.odata.get',
     'iot.odata.get with generated arguments: the state or invalid_argument.'),
    ('test_users_me', 'users.me',
     'users.me with generated arguments: the profile or invalid_argument.'),
    ('test_master_users_save', 'master.users.save',
     'master.users.save as admin with generated profiles and arguments: a saved user or invalid_argument.'),
    ('test_master_users_delete', 'master.users.delete',
     'master.users.delete as admin with generated arguments: deleted, not_found or invalid_argument.'),
    ('test_master_users_list', 'master.users.list',
     'master.users.list as admin with generated arguments: a list or invalid_argument.'),
]
HTTP_TESTS = [
    ('test_auth_login', '/auth/login',
     '/auth/login with generated methods, bodies, content types, origins and cookies.'),
    ('test_auth_token', '/auth/token',
     '/auth/token with generated requests and forged cookies (and the real one).'),
    ('test_auth_logout', '/auth/logout',
     '/auth/logout with generated requests and cookies.'),
    ('test_publish', '/publish',
     '/publish with generated requests, unsigned or correctly signed with generated events.'),
    ('test_health', '/health',
     '/health, /health/live, /health/ready and generated sub-paths with generated requests.'),
]
for _name, _target, _doc in RPC_TESTS:
    setattr(RpcFuzzTests, _name, fuzzes_rpc(_target, _doc))
for _name, _target, _doc in HTTP_TESTS:
    setattr(HttpFuzzTests, _name, fuzzes_http(_target, _doc))


class HttpOtherMethodTests(FuzzTestCase):
    """
    Methods an endpoint does not document (PUT, DELETE, PATCH, POST to /health,
    GET to /publish, ...). These reach Twisted's own answers, an HTML 405 or
    501 page rather than a JSON error: that is what the endpoints' resources
    answer today (not code of this test's component), so this property asks
    only for what must hold whatever the resource: never a 500, never a
    traceback, and the hub keeps serving.
    """

    @defer.inlineCallbacks
    def test_other_methods(self):
        """Every endpoint with methods it does not document: a JSON 405 (or the body limit's 413), never Twisted's HTML page; the hub serves on."""
        paths = sorted(DOCUMENTED)
        statuses = []

        @SETTINGS
        @given(st.sampled_from(paths).flatmap(lambda path: st.tuples(st.just(path), http_requests(
            tuple(method for method in OTHER_METHODS if method not in DOCUMENTED[path])))))
        def property(target):
            path, request = target
            status, content, kind, case = self.send_http(path, request)
            statuses.append(status)
            self.assertIn(status, (405, 413), case)   # 413: the body limit answers first
            self.assertIn("json", kind, case)
            self.assertEqual(json.loads(content)["error"], "reactive.error.invalid_argument", case)

        return (yield self.run_property(property, statuses))


class MeasuredCaseTests(FuzzTestCase):
    """The bad calls measured before the hardening, each with its exact refusal."""

    @defer.inlineCallbacks
    def assertInvalid(self, role, procedure, args=(), kwargs=None, field=None):
        with self.assertRaises(ApplicationError) as caught:
            session, kwargs = self.sessions[role], kwargs or {}
            if RESERVED & set(kwargs):
                yield raw_call(session, procedure, args, kwargs).addTimeout(CALL_TIMEOUT, reactor())
            else:
                yield session.call(procedure, *args, **kwargs)
        self.assertEqual((caught.exception.error, caught.exception.kwargs.get("field")),
                         ("reactive.error.invalid_argument", field), caught.exception.args)
        self.assertDocumented(procedure, args, kwargs, caught.exception)

    @defer.inlineCallbacks
    def test_users_me_takes_no_arguments(self):
        """users.me("bob") and users.me(details=...) are invalid_argument (was runtime_error: 'got multiple values')."""
        yield self.assertInvalid("user", "users.me", ["bob"])
        yield self.assertInvalid("user", "users.me", kwargs={"details": "bob"}, field="details")
        with self.assertRaises(ApplicationError) as caught:
            yield raw_call(self.sessions["user"], "users.me", [], {"procedure": "users.me"})
        self.assertEqual((caught.exception.error, caught.exception.kwargs.get("field")),
                         ("reactive.error.invalid_argument", "procedure"))
        me = yield self.sessions["user"].call("users.me")
        self.assertIn("seq", me)

    @defer.inlineCallbacks
    def test_master_users_save_arity(self):
        """master.users.save with no or two profiles is invalid_argument (was a TypeError text)."""
        yield self.assertInvalid("admin", "master.users.save", field="profile")
        yield self.assertInvalid("admin", "master.users.save", [{"username": "a1"}, {"username": "a2"}])
        yield self.assertInvalid("admin", "master.users.save", [{"username": "a3"}], {"profile": {}}, field="profile")
        yield self.assertInvalid("admin", "master.users.save", kwargs={"user": {"username": "a4"}}, field="user")
        yield self.assertInvalid("admin", "master.users.delete", field="username")
        yield self.assertInvalid("admin", "master.users.delete", ["a", "b"])
        yield self.assertInvalid("admin", "master.users.list", ["ten"], field="limit")
        yield self.assertInvalid("admin", "master.users.list", [10, 0, 1])

    @defer.inlineCallbacks
    def test_control_characters_in_a_profile(self):
        """A NUL (or another control character) in any profile field is invalid_argument naming the field."""
        for field in ("first_name", "last_name", "email", "username"):
            profile = {"username": "nul-user", field: "a\x00b"}
            yield self.assertInvalid("admin", "master.users.save", [profile], field=field)
        yield self.assertInvalid("admin", "master.users.save", [{"username": "nul-user", "first_name": "a\nb"}],
                                 field="first_name")
        saved = yield self.sessions["admin"].call("master.users.save", {"username": "nul-user", "first_name": "a\tb"})
        self.assertEqual(saved["first_name"], "a\tb")

    @defer.inlineCallbacks
    def test_keywords_named_like_autobahns_own_arguments(self):
        """fun=, f= and self= reach the procedures and get invalid_argument (they used to hang the call forever)."""
        for key in ("fun", "f", "self"):
            yield self.assertInvalid("user", "time.get", kwargs={key: 1}, field=key)
            yield self.assertInvalid("user", "counter.get", kwargs={key: 1}, field=key)
            yield self.assertInvalid("admin", "master.users.list", kwargs={key: 1}, field=key)

    @defer.inlineCallbacks
    def test_getters_take_no_arguments(self):
        """time.get, iot.serial.get and iot.odata.get refuse arguments with invalid_argument (was runtime_error)."""
        for procedure in ("time.get", "iot.serial.get", "iot.odata.get"):
            yield self.assertInvalid("user", procedure, [1])
            yield self.assertInvalid("user", procedure, kwargs={"x": 1}, field="x")
        yield self.sessions["user"].call("time.get")
