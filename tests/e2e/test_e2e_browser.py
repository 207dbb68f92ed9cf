"""
End-to-end encrypted payloads in a real headless Chromium (WebCrypto):
the shared test vectors, browser-sealed envelopes opened by Python and
Python-sealed profiles shown by the browser through the real router,
tampered / moved / wrongly keyed / plaintext states refused with an error
state, what router-side subscribers see (only ciphertext), key rotation
during a stream of changes, and the keys staying out of browser storage.

The publisher is ``tests.support.sealed.SealedProfiles``: it seals with the
node's own per-user keys and publishes like the user sync does (through
``users.relay`` and ``components.usersync.user_event_relay``).
"""

import json
import os
import subprocess
import sys

from autobahn.wamp.types import RegisterOptions
from twisted.internet import defer, threads
from twisted.trial import unittest

from components.auth.directory import Directory
from components.e2e import envelope
from components.db.database import Database
from components.db.migrations import migrate_all
from tests.support.browser import log_in, poll, shared_browser
from tests.support.clients import connect
from tests.support.node import shared_node
from tests.support.polling import eventually
from tests.support.sealed import (CHANGED, RELAY, SEALED_NODE_ENV, UPLOAD, SealedProfiles,
                                  allow_sealed_publisher, node_keys, sealed_with)

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors", "e2e_v1.json")
PASSWORD = "sealed-password-1"
USERS = ("erin", "frank", "gwen", "hugo", "ivy")
WAIT = 15000


def load_vectors():
    with open(VECTORS, encoding="utf-8") as handle:
        return json.load(handle)


def expect(locator):
    from playwright.sync_api import expect as playwright_expect
    return playwright_expect(locator)


@defer.inlineCallbacks
def sealed_node():
    """The test process's node with E2E_ENCRYPTION=on and the test-only sealed publisher allowed."""
    node = yield shared_node("e2e-web", env=SEALED_NODE_ENV, transform=allow_sealed_publisher)
    if not getattr(node, "sealed_users", False):
        from components.node import schema_registry
        db = Database("sqlite:///" + os.path.join(node.directory, "master.db"))
        try:
            yield migrate_all(db, schema_registry.master())
            directory = Directory(db, iterations=1000)
            for username in USERS:
                yield directory.create_user(username, PASSWORD, first_name=username.title())
        finally:
            db.close()
        node.sealed_users = True
    return node


def profile(username, **fields):
    value = {"username": username, "first_name": username.title() + " Ünïcode <b>", "last_name": "Secretson",
             "email": username + ".private@example.com", "is_active": True, "action": "update", "version": 1}
    value.update(fields)
    return value


def shown(value):
    return "{} {} · {}".format(value["first_name"], value["last_name"], value["email"])


class E2EBrowserTestCase(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def browser_context(self):
        browser = yield shared_browser()
        context = yield browser.run(lambda chromium: chromium.new_context())
        context.set_default_timeout(WAIT)
        self.addCleanup(browser.run, lambda _chromium: context.close())
        return browser, context

    @defer.inlineCallbacks
    def publisher(self, node):
        """A sealed publisher on ``node`` (role device, test-only permissions), and the node's key store."""
        db, keys = node_keys(node)
        self.addCleanup(db.close)
        client = yield connect(self, node, sub="sealer", role="device")
        profiles = yield SealedProfiles.attach(client, keys)
        return profiles, keys


# ---- in the browser, no router needed --------------------------------------------------------------------

VECTOR_CHECK = """async (vectors) => {
    const e2e = await import('/js/e2e.js');
    const key = vectors.key_b64url;
    const valid = [];
    for (const v of vectors.valid) {
        const value = await e2e.open(key, v.topic, v.seq, v.envelope);
        const again = await e2e.seal(key, v.kid, v.topic, v.seq, v.value, e2e.b64urlDecode(v.envelope.nonce));
        valid.push({value, again});
    }
    const invalid = [];
    for (const v of vectors.invalid) {
        try {
            await e2e.open(key, v.topic, v.seq, v.envelope);
            invalid.push({why: v.why, code: null});
        } catch (err) {
            invalid.push({why: v.why, code: err.code});
        }
    }
    return {valid, invalid};
}"""

BROWSER_SEAL = """async ({key, cases}) => {
    const e2e = await import('/js/e2e.js');
    const sealed = [];
    for (const c of cases) sealed.push(await e2e.seal(key, c.kid, c.topic, c.seq, c.value));
    return sealed;
}"""

# The engine's rules for private states, with a fake token endpoint (counts fetches, answers the given keys).
ENGINE_RULES = """async () => {
    const e2e = await import('/js/e2e.js');
    const {Engine} = await import('/js/engine.js');
    const raw = (byte) => e2e.b64urlEncode(new Uint8Array(32).fill(byte));
    let answer = {token: 't', username: 'u', role: 'user',
                  e2e: {current: 'k1', keys: {k1: raw(1), k2: raw(2)}}};
    let fetches = 0;
    const fetch = async () => { fetches++; return {ok: true, status: 200, json: async () => answer}; };
    const engine = new Engine({autobahn: {}, url: 'ws://unused.invalid/ws', fetch});
    await engine.e2e.setKeys({current: 'k1', keys: {k1: raw(1)}});
    const got = [];
    const client = {post: (m) => got.push(m)};
    engine.attach(client);
    engine.watch(client, 'users.changed', 'users.me');
    engine.watch(client, 'counter.changed', 'counter.get');
    const entry = engine.topics.get('users.changed');
    const nonce = new Uint8Array(12).fill(9);
    const sealed = async (byte, kid, seq, value, topic = 'users.changed', n = undefined) =>
        ({value: await e2e.seal(e2e.b64urlDecode(raw(byte)), kid, topic, seq, value, n), seq, ts: 0});
    const log = [];
    const step = async (name, state) => {
        const before = got.length;
        engine.receive('users.changed', entry, state);
        await entry.opening;
        const posted = got.slice(before).map((m) => m.op === 'state'
            ? {op: 'state', seq: m.state.seq, value: m.state.value, kid: m.state.e2e && m.state.e2e.kid}
            : {op: m.op, code: m.error.kwargs.code, error: m.error.error});
        log.push({name, posted, fetches});
    };
    const first = await sealed(1, 'k1', 10, {n: 10}, 'users.changed', nonce);
    await step('k1 opens', first);
    await step('plaintext refused', {value: {n: 11}, seq: 11, ts: 0});
    await step('k2 fetched on demand', await sealed(2, 'k2', 12, {n: 12}));
    await step('unknown kid: one refetch', await sealed(3, 'k9', 13, {n: 13}));
    await step('unknown kid again: no refetch', await sealed(3, 'k9', 14, {n: 14}));
    await step('replay dropped', first);
    const tampered = {...first.value, ct: 'A' + first.value.ct.slice(1)};
    await step('older tampered dropped', {...first, value: tampered});
    await step('nonce reuse refused', await sealed(1, 'k1', 15, {n: 15}, 'users.changed', nonce));
    await step('moved from another topic', await sealed(1, 'k1', 16, {n: 16}, 'counter.changed'));
    await step('bad seq', {...(await sealed(1, 'k1', 17, {n: 17})), seq: '17'});
    await step('recovers', await sealed(1, 'k1', 18, {n: 18}));
    const publicBefore = got.length;
    engine.receive('counter.changed', engine.topics.get('counter.changed'), {value: 5, seq: 1, ts: 0});
    const publicPassed = got.slice(publicBefore).map((m) => m.op);   // synchronous, plain
    const extractable = [...engine.e2e.keys.values()].map((k) => k.extractable);
    const info = engine.info().e2e;
    engine.signOut();
    const afterSignOut = {enabled: engine.e2e.enabled, kids: engine.e2e.info().kids};
    // encryption off (no keys in the token answer): plaintext passes, envelopes are refused
    answer = {token: 't', username: 'u', role: 'user'};
    const off = new Engine({autobahn: {}, url: 'ws://unused.invalid/ws', fetch});
    const offGot = [];
    const offClient = {post: (m) => offGot.push(m)};
    off.attach(offClient);
    off.watch(offClient, 'users.changed', 'users.me');
    const offEntry = off.topics.get('users.changed');
    off.receive('users.changed', offEntry, {value: {plain: true}, seq: 1, ts: 0});
    off.receive('users.changed', offEntry, await sealed(1, 'k1', 2, {n: 2}));
    await offEntry.opening;
    const offPosted = offGot.filter((m) => m.op !== 'status')
        .map((m) => m.op === 'state' ? m.state.value : m.error.kwargs.code);
    return {log, publicPassed, extractable, info, afterSignOut, offPosted};
}"""


class BrowserEnvelopeTests(E2EBrowserTestCase):
    """The envelope module and the engine's rules, run in Chromium (WebCrypto)."""

    @defer.inlineCallbacks
    def page(self):
        node = yield sealed_node()
        browser, context = yield self.browser_context()
        page = yield browser.run(lambda _chromium: context.new_page())
        yield browser.run(lambda _chromium: page.goto(node.http + "/"))
        return browser, page

    @defer.inlineCallbacks
    def test_shared_vectors(self):
        """Valid vectors open and re-seal byte for byte; invalid ones are refused with their code."""
        browser, page = yield self.page()
        vectors = load_vectors()
        result = yield browser.run(lambda _chromium: page.evaluate(VECTOR_CHECK, vectors))
        valid, invalid = vectors["valid"], vectors["invalid"]
        self.assertEqual([item["value"] for item in result["valid"]], [v["value"] for v in valid])
        self.assertEqual([item["again"] for item in result["valid"]], [v["envelope"] for v in valid])
        self.assertEqual(result["invalid"], [{"why": v["why"], "code": v["code"]} for v in invalid])

    @defer.inlineCallbacks
    def test_browser_seals_python_opens(self):
        """WebCrypto-sealed envelopes open in Python, with fresh nonces, only for their topic and seq."""
        browser, page = yield self.page()
        key = bytes(range(32, 64))
        cases = [{"kid": "kb", "topic": "users.changed", "seq": 1,
                  "value": {"first_name": "Zoë", "n": [1, 2.5, None]}},
                 {"kid": "kb", "topic": "users.changed", "seq": 1700000000123, "value": "x" * 200},
                 {"kid": "kb", "topic": "e2e.test.upload", "seq": 0, "value": {"big": "é" * 10000}}]
        sealed = yield browser.run(lambda _chromium: page.evaluate(
            BROWSER_SEAL, {"key": envelope.b64encode(key), "cases": cases}))
        for case, item in zip(cases, sealed):
            self.assertEqual(envelope.open_envelope(key, case["topic"], case["seq"], item), case["value"])
            with self.assertRaises(envelope.EnvelopeError) as caught:
                envelope.open_envelope(key, case["topic"], case["seq"] + 1, item)
            self.assertEqual(caught.exception.code, "auth_failed")
        self.assertEqual(len({item["nonce"] for item in sealed}), len(cases))

    @defer.inlineCallbacks
    def test_engine_rules(self):
        """Unknown kid: one refetch, then retry; refusals claiming newer show, older ones are dropped.

        Replay and nonce reuse are caught; plaintext is refused on a private
        topic while encryption is on and passed when off; keys are not extractable.
        """
        browser, page = yield self.page()
        result = yield browser.run(lambda _chromium: page.evaluate(ENGINE_RULES))
        steps = {item["name"]: item for item in result["log"]}

        def refused(name):
            return [(p["op"], p.get("code")) for p in steps[name]["posted"]]
        self.assertEqual(steps["k1 opens"]["posted"],
                         [{"op": "state", "seq": 10, "value": {"n": 10}, "kid": "k1"}])
        self.assertEqual(refused("plaintext refused"), [("unavailable", "not_encrypted")])
        self.assertEqual(steps["plaintext refused"]["posted"][0]["error"], "reactive.error.e2e.refused")
        self.assertEqual(steps["k2 fetched on demand"]["posted"],
                         [{"op": "state", "seq": 12, "value": {"n": 12}, "kid": "k2"}])
        self.assertEqual(steps["k2 fetched on demand"]["fetches"], 1)
        self.assertEqual(refused("unknown kid: one refetch"), [("unavailable", "unknown_key")])
        self.assertEqual(steps["unknown kid: one refetch"]["fetches"], 2)
        self.assertEqual(refused("unknown kid again: no refetch"), [("unavailable", "unknown_key")])
        self.assertEqual(steps["unknown kid again: no refetch"]["fetches"], 2)
        self.assertEqual(steps["replay dropped"]["posted"], [])
        self.assertEqual(steps["older tampered dropped"]["posted"], [])
        self.assertEqual(refused("nonce reuse refused"), [("unavailable", "nonce_reuse")])
        self.assertEqual(refused("moved from another topic"), [("unavailable", "auth_failed")])
        self.assertEqual(refused("bad seq"), [("unavailable", "malformed")])
        self.assertEqual(steps["recovers"]["posted"],
                         [{"op": "state", "seq": 18, "value": {"n": 18}, "kid": "k1"}])
        self.assertEqual(result["publicPassed"], ["state"])
        self.assertEqual(result["extractable"], [False, False])
        self.assertEqual(result["info"]["refused"], {"not_encrypted": 1, "unknown_key": 2, "replayed": 1,
                                                     "auth_failed": 2, "nonce_reuse": 1, "malformed": 1})
        self.assertEqual((result["info"]["opened"], result["info"]["refetches"]), (3, 2))
        self.assertEqual(result["afterSignOut"], {"enabled": False, "kids": []})
        self.assertEqual(result["offPosted"], [{"plain": True}, "unknown_key"])


# ---- through the real router -----------------------------------------------------------------------------

STORAGE_CHECK = """async () => ({
    local: localStorage.length, session: sessionStorage.length,
    indexeddb: (await indexedDB.databases()).length, caches: (await caches.keys()).length,
    cookie: document.cookie})"""


class SealedProfileTests(E2EBrowserTestCase):
    """Python seals, the router carries, the browser opens (or refuses) and shows."""

    @defer.inlineCallbacks
    def test_sealed_profile_reaches_browser_router_sees_ciphertext(self):
        """A sealed profile shows in the panel; the relay, the user's sessions and the log see no plaintext.

        Both transports (SharedWorker and direct) open it; a raw WAMP session
        of that user and a subscriber of users.relay get only the envelope;
        the keys are in no browser storage.
        """
        node = yield sealed_node()
        profiles, keys = yield self.publisher(node)
        relay_spy = yield connect(self, node, sub="relay-spy", role="device")
        user_spy = yield connect(self, node, sub="erin", role="user")
        relayed, delivered = [], []
        yield relay_spy.session.subscribe(lambda message: relayed.append(message), RELAY)
        yield user_spy.session.subscribe(lambda event: delivered.append(event), CHANGED)
        browser, context = yield self.browser_context()

        def open_page(_chromium):
            page = log_in(context.new_page(), node.http, "erin", PASSWORD)
            expect(page.locator("#profile")).to_have_text("no profile on this hub yet")
            expect(page.locator("#profile")).to_have_attribute("data-sealed", "true")
            return page

        page = yield browser.run(open_page)
        value = profile("erin")
        state = yield profiles.change("erin", value)

        def check(_chromium):
            expect(page.locator("#profile")).to_have_text(shown(value))
            expect(page.locator("#profile")).to_have_attribute("data-seq", str(state["seq"]))
            expect(page.locator("#profile")).to_have_attribute("data-sealed", "true")
            expect(page.locator(".lock-mark")).to_be_visible()
            expect(page.locator("#greeting")).to_have_text("Hello " + value["first_name"])
            direct = context.new_page()
            direct.goto(node.http + "/?transport=direct")
            expect(direct.locator("#profile")).to_have_text(shown(value))
            return page.evaluate("hub.mode"), direct.evaluate("hub.mode"), page.evaluate(STORAGE_CHECK), \
                direct.evaluate(STORAGE_CHECK), page.evaluate("hub.info()")["e2e"]

        mode, direct_mode, stored, stored_direct, info = yield browser.run(check)
        self.assertEqual((mode, direct_mode), ("shared", "direct"))
        empty = {"local": 0, "session": 0, "indexeddb": 0, "caches": 0, "cookie": ""}
        self.assertEqual((stored, stored_direct), (empty, empty))
        self.assertTrue(info["enabled"])
        self.assertNotIn("keys", json.dumps(info))
        yield eventually(lambda: relayed and delivered, message="spies got nothing")
        secrets = [value["email"], value["first_name"], value["last_name"]]
        kid, key = yield keys.current("erin")
        for carried in (relayed[0]["event"], delivered[0]):
            text = json.dumps(carried, ensure_ascii=False)
            self.assertEqual([secret for secret in secrets if secret in text], [])
            self.assertTrue(envelope.is_envelope(carried["value"]))
            self.assertEqual(carried["seq"], state["seq"])
            self.assertEqual(envelope.open_envelope(key, CHANGED, carried["seq"], carried["value"]), value)
        self.assertNotIn(value["email"], node.log_text())

    @defer.inlineCallbacks
    def test_refused_states_show_error_state(self):
        """Bad states through the router put the panel into its refused state; the next genuine one shows.

        Tampered, wrongly keyed, moved, re-sequenced, plaintext and truncated
        states each show "Refused: ..." with their code, never a value.
        """
        node = yield sealed_node()
        profiles, keys = yield self.publisher(node)
        other_kid, other_key = yield keys.current("frank")   # another user's key
        browser, context = yield self.browser_context()
        page = yield browser.run(lambda _chromium: log_in(context.new_page(), node.http, "gwen", PASSWORD))
        panel = page.locator("#profile")

        @defer.inlineCallbacks
        def genuine(number):
            value = profile("gwen", first_name="Gwen{}".format(number),
                            email="gwen{}@example.com".format(number))
            state = yield profiles.change("gwen", value)

            def shows(_chromium):
                expect(panel).to_have_text(shown(value))
                expect(panel).to_have_attribute("data-seq", str(state["seq"]))
            yield browser.run(shows)
            return value

        def tamper_ct(state):
            ct = state["value"]["ct"]
            return dict(state, value=dict(state["value"], ct=("A" if ct[0] != "A" else "B") + ct[1:]))

        def truncate(state):
            return dict(state, value=dict(state["value"], ct=state["value"]["ct"][:10]))

        cases = [
            ("tampered ciphertext", "auth_failed",
             lambda state: profiles.seal("gwen", state).addCallback(tamper_ct)),
            ("another user's key", "unknown_key",
             lambda state: defer.succeed(sealed_with(other_key, other_kid, CHANGED, state))),
            ("unknown key id", "unknown_key",
             lambda state: defer.succeed(sealed_with(os.urandom(32), "no-such-kid", CHANGED, state))),
            ("moved from another topic", "auth_failed",
             lambda state: profiles.seal("gwen", state, topic=UPLOAD)),
            ("replayed as a newer state", "auth_failed",
             lambda state: profiles.seal("gwen", dict(state, seq=state["seq"] - 1)).addCallback(
                 lambda sealed: dict(sealed, seq=state["seq"]))),
            ("plaintext", "not_encrypted", lambda state: defer.succeed(state)),
            ("truncated", "malformed", lambda state: profiles.seal("gwen", state).addCallback(truncate)),
        ]
        yield genuine(0)
        info = yield browser.run(lambda _chromium: page.evaluate("hub.info()"))
        refetches_before = info["e2e"]["refetches"]
        for number, (why, code, make) in enumerate(cases, start=1):
            secret = profile("gwen", first_name="Forged{}".format(number),
                             email="forged{}@example.com".format(number))
            bad = yield make(profiles.plain("gwen", secret, remember=False))
            yield profiles.publish("gwen", bad)

            def refused(_chromium):
                expect(panel).to_have_attribute("data-state", "refused")
                expect(panel).to_have_attribute("data-code", code)
                expect(page.locator("#greeting")).to_have_text("Hello Gwen")   # the login's name, no profile
                return panel.text_content()

            text = yield browser.run(refused)
            self.assertTrue(text.startswith("Refused: "), (why, text))
            self.assertNotIn("example.com", text, why)
            yield genuine(number)
        info = (yield browser.run(lambda _chromium: page.evaluate("hub.info()")))["e2e"]
        # each unknown kid was looked up with exactly one fresh /auth/token
        self.assertEqual(info["refetches"] - refetches_before, 2)
        self.assertEqual(info["refused"],
                         {"auth_failed": 3, "unknown_key": 2, "not_encrypted": 1, "malformed": 1})


class UploadTests(E2EBrowserTestCase):
    """The other way: the browser seals, the router carries, Python opens."""

    @defer.inlineCallbacks
    def test_browser_sealed_call_opens_in_python(self):
        """A value sealed in the SharedWorker crosses the router as ciphertext and opens in Python.

        It is sealed with the user's current key, travels as an RPC argument
        and opens with that user's key only, for its topic and seq only.
        """
        node = yield sealed_node()
        profiles, keys = yield self.publisher(node)
        received = []

        def upload(state, details=None):
            received.append((details.caller_authid, state))
            return profiles.payloads.open_state(details.caller_authid, UPLOAD, state).addCallback(
                lambda opened: opened["value"])
        yield profiles.session.register(upload, UPLOAD, options=RegisterOptions(details_arg="details"))
        browser, context = yield self.browser_context()
        secret = {"note": "only Hugo and the hub may read this", "pin": "4711", "emoji": "🔐"}

        def script(_chromium):
            page = log_in(context.new_page(), node.http, "hugo", PASSWORD)
            return page.evaluate("""async (value) => {
                const sealed = await hub.seal('e2e.test.upload', 77, value);
                const echoed = await hub.call('e2e.test.upload', [{value: sealed, seq: 77, ts: 0}]);
                return {sealed, echoed};
            }""", secret)

        result = yield browser.run(script)
        self.assertEqual(result["echoed"], secret)
        caller, state = received[0]
        self.assertEqual(caller, "hugo")
        self.assertNotIn("4711", json.dumps(state))
        current_kid, _ = yield keys.current("hugo")
        self.assertEqual(state["value"]["kid"], current_kid)
        with self.assertRaises(envelope.EnvelopeError) as caught:
            yield profiles.payloads.open_state("hugo", UPLOAD, dict(state, seq=78))
        self.assertEqual(caught.exception.code, "auth_failed")
        with self.assertRaises(envelope.EnvelopeError) as caught:   # not openable as another user's
            yield profiles.payloads.open_state("ivy", UPLOAD, state)
        self.assertEqual(caught.exception.code, "unknown_key")


class RotationTests(E2EBrowserTestCase):
    """Key rotation while changes stream to the browser."""

    @defer.inlineCallbacks
    def test_rotation_during_stream_loses_nothing(self):
        """Rotating the user's key (the CLI) in the middle of a stream of changes loses none.

        Envelopes in flight under the old key still open (grace), the new key
        is fetched once on demand, every seq reaches the page in order.
        """
        node = yield sealed_node()
        profiles, keys = yield self.publisher(node)
        browser, context = yield self.browser_context()

        def open_page(_chromium):
            page = log_in(context.new_page(), node.http, "ivy", PASSWORD)
            expect(page.locator("#profile")).to_have_attribute("data-sealed", "true")
            page.evaluate("""() => {
                window.__seen = []; window.__refused = [];
                hub.state('users.changed', 'users.me', (s) => window.__seen.push([s.seq, s.e2e && s.e2e.kid]),
                          (e) => window.__refused.push(e.kwargs));
            }""")
            return page

        page = yield browser.run(open_page)
        old_kid, _ = yield keys.current("ivy")
        published = []

        @defer.inlineCallbacks
        def send(count, sealed_ahead=()):
            for state in sealed_ahead:
                yield profiles.publish("ivy", state)
                published.append(state["seq"])
            for number in range(count):
                state = yield profiles.change("ivy", profile("ivy", version=len(published)))
                published.append(state["seq"])

        yield send(10)
        # three changes sealed under the old key, still in flight while the key rotates
        in_flight = []
        for _ in range(3):
            in_flight.append((yield profiles.seal("ivy", profiles.plain("ivy", profile("ivy")))))
        env = dict(os.environ, DATABASE_URL="sqlite:///" + os.path.join(node.directory, "client.db"),
                   CROSSBAR_DIR=node.directory)
        env.pop("E2E_KEK", None)
        env.pop("E2E_KEK_FILE", None)
        rotated = yield threads.deferToThread(
            subprocess.run, [sys.executable, "-m", "components.e2e", "rotate", "--user", "ivy"],
            capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(rotated.returncode, 0, rotated.stderr)
        new_kid, _ = yield keys.current("ivy")
        self.assertNotEqual(new_kid, old_kid)
        self.assertIn(new_kid, rotated.stdout)
        yield send(17, sealed_ahead=in_flight)

        def wait_all(_chromium):
            last = "window.__seen.length && window.__seen.at(-1)[0]"
            poll(page, lambda: page.evaluate(last) == published[-1], message="last change not shown")
            return [page.evaluate(name) for name in ("window.__seen", "window.__refused", "hub.info()")]

        seen, refused, info = yield browser.run(wait_all)
        seen_after = [(seq, kid) for seq, kid in seen if seq >= published[0]]
        self.assertEqual([seq for seq, _ in seen_after], published)
        self.assertEqual([kid for _, kid in seen_after], [old_kid] * 13 + [new_kid] * 17)
        self.assertEqual(refused, [])
        self.assertEqual(info["e2e"]["refetches"], 1)
        self.assertEqual(sorted(info["e2e"]["kids"]), sorted([old_kid, new_kid]))
        self.assertEqual(info["e2e"]["refused"], {})
