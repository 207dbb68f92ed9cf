"""
End-to-end data keys follow one person's one identity (issue 20, item 3):
a password change, a deactivation and a deletion retire the user's keys (a
new key id at the next token, the old keys never handed out again), and a
username created again never gets a former holder's keys nor opens what was
sealed for them.

Two levels: the key store against a real master database (its user-table
triggers move the credential generation), on SQLite and PostgreSQL; and the
whole path over the wire (a real node: ``/auth/login``, ``/auth/token``,
the user sync through the SNS/SQS emulator into the client database, and
``users.me`` sealed by the client for the identity it knows).
"""

import os
import uuid

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer, task
from twisted.trial import unittest

from components.auth import credentials
from components.auth.directory import Directory
from components.db.database import Database
from components.db.migrations import migrate, migrate_all
from components.e2e import envelope
from components.e2e.keys import MIGRATIONS, KeysBehind, UserKeys, unwrap
from components.e2e.service import PrivatePayloads
from components.core.settings import KeyConfigError
from components.node import schema_registry
from components.usersync import provision
from tests.support.clients import connect, post_json
from tests.support.databases import postgres_url, sqlite_url
from tests.support.emulator import ENV, blocking, shared_moto
from tests.django.support import DjangoProject
from tests.support.browser import log_in, poll
from tests.support.node import RouterNode
from tests.support.polling import eventually
from tests.e2e.test_e2e_browser import PASSWORD, E2EBrowserTestCase, expect, profile, sealed_node

TOPIC = "users.changed"


def identity(cursor, username):
    return credentials.version_of(cursor, username)[0]


class KeyIdentityMixin:
    """The key store on a master database: the user table's triggers decide the identity."""

    timeout = 180

    @defer.inlineCallbacks
    def make(self):
        db = Database(self.url(self))
        self.addCleanup(db.close)
        yield migrate_all(db, schema_registry.master())
        yield migrate(db, "e2e_keys", MIGRATIONS)
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.db = db
        self.directory = Directory(db, iterations=1000)
        self.keys = UserKeys(db, b"\x07" * 32, grace=3600, clock=self.clock.seconds, generation_of=identity)
        self.payloads = PrivatePayloads(self.keys, enabled=True)

    @defer.inlineCallbacks
    def assert_retired(self, username, old_kid, old_state):
        """A new current key; the old one neither handed out, nor found, nor opening what it sealed."""
        usable = yield self.keys.usable(username)
        self.assertNotEqual(usable["current"], old_kid)
        self.assertEqual(list(usable["keys"]), [usable["current"]])
        self.assertIsNone((yield self.keys.key(username, old_kid)))
        with self.assertRaises(envelope.EnvelopeError) as caught:
            yield self.payloads.open_state(username, TOPIC, old_state)
        self.assertEqual(caught.exception.code, "unknown_key")
        rows = yield self.db.query("SELECT kid FROM e2e_user_key WHERE username = ?", (username,))
        self.assertEqual([kid for (kid,) in rows], [usable["current"]], "the old identity's keys are deleted")
        return usable

    @defer.inlineCallbacks
    def sealed(self, username, value, seq=1):
        state = yield self.payloads.seal_state(username, TOPIC, {"value": value, "seq": seq, "ts": 0})
        return envelope.parse(state["value"])[0], state

    @defer.inlineCallbacks
    def test_password_change_retires_keys(self):
        """A password change gives a new key id; the old key is gone, even inside the rotation grace."""
        yield self.make()
        yield self.directory.create_user("alice", "password-1")
        old_kid, old_state = yield self.sealed("alice", {"first_name": "A"})
        yield self.directory.set_password("alice", "password-2")
        usable = yield self.assert_retired("alice", old_kid, old_state)
        new_kid, _ = yield self.sealed("alice", {"first_name": "A"}, seq=2)
        self.assertEqual(new_kid, usable["current"])

    @defer.inlineCallbacks
    def test_deactivation_retires_keys(self):
        """Deactivating (and reactivating) a user gives a new identity each time."""
        yield self.make()
        yield self.directory.create_user("dora", "password-1")
        old_kid, old_state = yield self.sealed("dora", {"v": 1})
        yield self.db.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (False, "dora"))
        usable = yield self.assert_retired("dora", old_kid, old_state)
        yield self.db.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (True, "dora"))
        again = yield self.keys.usable("dora")
        self.assertNotIn(usable["current"], again["keys"])

    @defer.inlineCallbacks
    def test_recreated_username_gets_new_keys(self):
        """carol deleted and created again: new keys; the former holder's sealed history does not open."""
        yield self.make()
        yield self.directory.create_user("carol", "password-1", first_name="Former")
        old_kid, old_state = yield self.sealed("carol", {"first_name": "Former"})
        old_key = yield self.keys.key("carol", old_kid)
        yield self.db.execute("DELETE FROM auth_user WHERE username = ?", ("carol",))
        yield self.directory.create_user("carol", "password-2", first_name="Next")
        yield self.assert_retired("carol", old_kid, old_state)
        new_kid, new_state = yield self.sealed("carol", {"first_name": "Next"}, seq=2)
        new_key = yield self.keys.key("carol", new_kid)
        with self.assertRaises(envelope.EnvelopeError):   # the former holder's key on the new holder's data
            envelope.open_envelope(old_key, TOPIC, 2, dict(new_state["value"], kid=old_kid))
        with self.assertRaises(envelope.EnvelopeError):   # the new holder's key on the former holder's data
            envelope.open_envelope(new_key, TOPIC, 1, dict(old_state["value"], kid=new_kid))

    @defer.inlineCallbacks
    def test_rotation_within_an_identity_keeps_grace(self):
        """A manual rotation (same identity) lets the previous key open envelopes for the grace period."""
        yield self.make()
        yield self.directory.create_user("erin", "password-1")
        old_kid, old_state = yield self.sealed("erin", {"v": 1})
        new_kid = yield self.keys.rotate("erin")
        usable = yield self.keys.usable("erin")
        self.assertEqual((usable["current"], set(usable["keys"])), (new_kid, {old_kid, new_kid}))
        self.assertEqual((yield self.payloads.open_state("erin", TOPIC, old_state))["value"], {"v": 1})

    @defer.inlineCallbacks
    def test_behind_seals_nothing(self):
        """A sealer whose generation is older than keys already handed out refuses (unavailable)."""
        yield self.make()
        yield self.keys.usable("fred", generation=3)   # the master handed out keys of a newer identity
        with self.assertRaises(KeysBehind) as caught:
            yield self.payloads.seal_state("fred", TOPIC, {"value": {"v": 1}, "seq": 1, "ts": 0})
        self.assertEqual(caught.exception.uri, "reactive.error.unavailable")

    @defer.inlineCallbacks
    def test_wrapped_key_bound_to_identity(self):
        """A wrapped key unwraps only for its username, generation and kid."""
        yield self.make()
        usable = yield self.keys.usable("gail", generation=4)
        [(kid, wrapped)] = yield self.db.query("SELECT kid, wrapped FROM e2e_user_key WHERE username = ?",
                                               ("gail",))
        self.assertEqual(unwrap(b"\x07" * 32, "gail", 4, kid, wrapped), usable["keys"][kid])
        with self.assertRaises(KeyConfigError):
            unwrap(b"\x07" * 32, "gail", 5, kid, wrapped)


    @defer.inlineCallbacks
    def test_concurrent_first_uses_create_one_key(self):
        """
        A token's keys and a sealed state asked for at once, many times, for a
        user with no key yet: one active key, the one both hand out (on
        PostgreSQL each transaction found none and created its own before the
        per-user lock; a browser then got a token without the key its profile
        was sealed with).
        """
        yield self.make()
        names = ["erin{}".format(index) for index in range(8)]
        for username in names:
            yield self.directory.create_user(username, "password-1")
        asked = []
        for username in names:
            asked += [self.keys.usable(username), self.keys.current(username), self.keys.usable(username)]
        answers = yield defer.gatherResults(asked, consumeErrors=True)
        for index, username in enumerate(names):
            first, (kid, _), second = answers[3 * index:3 * index + 3]
            self.assertEqual((first["current"], second["current"]), (kid, kid), username)
        rows = yield self.db.query("SELECT username, COUNT(*) FROM e2e_user_key GROUP BY username")
        self.assertEqual(sorted(rows), [(username, 1) for username in names])


class SQLiteKeyIdentityTests(KeyIdentityMixin, unittest.TestCase):
    url = staticmethod(sqlite_url)


class PostgreSQLKeyIdentityTests(KeyIdentityMixin, unittest.TestCase):
    url = staticmethod(postgres_url)


def session_id_of(response):
    for header in response.headers.getRawHeaders(b"set-cookie", []):
        name, _, rest = header.decode().partition("=")
        if name == "hub_session":
            return rest.split(";")[0]
    return None


class WireKeyRotationMixin:
    """
    The real path: login and token over HTTP, sealing by the client node
    after the user sync. Subclasses say how the master's user table is
    written (``create``, ``set_password``, ``set_active``, ``delete``).
    """

    timeout = 240

    @defer.inlineCallbacks
    def start_node(self, master_url, **env):
        moto = yield shared_moto()
        plan = provision.Plan("keys-" + uuid.uuid4().hex[:8], ["a"], max_receives=3, visibility_timeout=5)
        aws = yield blocking(provision.provision, moto.client("sns"), moto.client("sqs"), plan)
        env = dict(ENV, E2E_ENCRYPTION="on", SNS_TOPIC_ARN=aws["topic_arn"], AWS_ENDPOINT_URL=moto.url,
                   SQS_QUEUE_URL=aws["clients"]["a"]["queue_url"], USERSYNC_WAIT="1",
                   MASTER_DATABASE_URL=master_url, DATABASE_URL=self.url(self), LOGIN_BURST="50", **env)
        self.node = RouterNode(name="key-rotation", env=env)
        self.addCleanup(self.node.cleanup)
        yield self.node.start()

    @defer.inlineCallbacks
    def token(self, username, password):
        """Log in and fetch a token: ``(answer of /auth/token, session cookie)``."""
        code, body, response = yield post_json(self.node.http + "/auth/login",
                                               {"username": username, "password": password})
        self.assertEqual(code, 200, body)
        cookie = session_id_of(response)
        code, body, _ = yield post_json(self.node.http + "/auth/token", cookies={"hub_session": cookie})
        self.assertEqual(code, 200, body)
        return body, cookie

    @defer.inlineCallbacks
    def sealed_profile(self, answer, first_name, timeout=60.0):
        """
        ``users.me`` of the token's user, once the client node answers
        ``first_name`` sealed under a key of that token (the sync is asynchronous).
        """
        client = yield connect(self, self.node, ticket=answer["token"])
        keys = {kid: envelope.b64decode(raw, "key") for kid, raw in answer["e2e"]["keys"].items()}

        @defer.inlineCallbacks
        def me():
            try:
                return (yield client.session.call("users.me"))
            except ApplicationError as error:   # the client has not heard of the new identity yet
                self.assertEqual(error.error, "reactive.error.unavailable")

        def sealed_as_expected(state):
            kid = state and envelope.parse(state["value"])[0]
            if kid not in keys:
                return False
            profile = envelope.open_envelope(keys[kid], TOPIC, state["seq"], state["value"])
            return bool(profile) and profile["first_name"] == first_name
        state = yield eventually(me, check=sealed_as_expected, timeout=timeout, interval=0.1,
                                 message="users.me never answered {!r} under the token's key".format(first_name),
                                 details=lambda: "node log:\n" + self.node.log_tail(30))
        return state

    @defer.inlineCallbacks
    def test_keys_follow_the_identity(self):
        """
        Password change, deactivation, deletion and re-creation each give a
        new key id at the next token; old keys are never handed out again;
        the re-created username cannot open the former holder's sealed profile.
        """
        yield self.start()
        yield self.create("carol", "password-1", "Former")
        first, cookie = yield self.token("carol", "password-1")
        former = yield self.sealed_profile(first, "Former")
        seen = set(first["e2e"]["keys"])

        yield self.set_password("carol", "password-2")
        code, _, _ = yield post_json(self.node.http + "/auth/token", cookies={"hub_session": cookie})
        self.assertEqual(code, 401, "the old login ends with the password change")
        second, cookie = yield self.token("carol", "password-2")
        self.assertFalse(seen & set(second["e2e"]["keys"]), "a key from before the password change")
        yield self.sealed_profile(second, "Former")
        seen |= set(second["e2e"]["keys"])

        yield self.set_active("carol", False)
        code, _, _ = yield post_json(self.node.http + "/auth/token", cookies={"hub_session": cookie})
        self.assertEqual(code, 401)
        yield self.set_active("carol", True)
        third, _ = yield self.token("carol", "password-2")
        self.assertFalse(seen & set(third["e2e"]["keys"]), "a key from before the deactivation")
        seen |= set(third["e2e"]["keys"])

        yield self.delete("carol")
        yield self.create("carol", "password-3", "Next")
        fourth, _ = yield self.token("carol", "password-3")
        self.assertFalse(seen & set(fourth["e2e"]["keys"]), "the re-created username got a former key")
        current = yield self.sealed_profile(fourth, "Next")
        new_keys = [envelope.b64decode(raw, "key") for raw in fourth["e2e"]["keys"].values()]
        for key in new_keys:   # the former holder's sealed profile, whatever kid it is relabelled with
            with self.assertRaises(envelope.EnvelopeError):
                envelope.open_envelope(key, TOPIC, former["seq"], former["value"])
        old_key = envelope.b64decode(first["e2e"]["keys"][envelope.parse(former["value"])[0]], "key")
        with self.assertRaises(envelope.EnvelopeError):
            envelope.open_envelope(old_key, TOPIC, current["seq"], current["value"])


class HubDirectoryWrites(WireKeyRotationMixin):
    """The master's user table written by the hub's directory and plain SQL."""

    @defer.inlineCallbacks
    def start(self):
        master_url = self.url(self)
        yield self.start_node(master_url)
        self.db = Database(master_url)
        self.addCleanup(self.db.close)
        yield migrate_all(self.db, schema_registry.master())
        self.directory = Directory(self.db, iterations=1000)

    def create(self, username, password, first_name):
        return self.directory.create_user(username, password, first_name=first_name)

    def set_password(self, username, password):
        return self.directory.set_password(username, password)

    def set_active(self, username, active):
        return self.db.execute("UPDATE auth_user SET is_active = ? WHERE username = ?", (active, username))

    def delete(self, username):
        return self.db.execute("DELETE FROM auth_user WHERE username = ?", (username,))


class SQLiteWireKeyRotationTests(HubDirectoryWrites, unittest.TestCase):
    url = staticmethod(sqlite_url)


class PostgreSQLWireKeyRotationTests(HubDirectoryWrites, unittest.TestCase):
    url = staticmethod(postgres_url)


class DjangoWireKeyRotationTests(WireKeyRotationMixin, unittest.TestCase):
    """A real Django project on PostgreSQL is the master: its ORM changes, deletes and re-creates the user."""

    url = staticmethod(sqlite_url)   # the client database

    @defer.inlineCallbacks
    def start(self):
        master_url = postgres_url(self)
        self.project = DjangoProject(master_url)
        yield self.project.manage("migrate", "--noinput")
        yield self.start_node(master_url, AUTH_USER_TABLE_OWNER="django")

    def create(self, username, password, first_name):
        return self.project.orm("User.objects.create_user({!r}, password={!r}, first_name={!r})".format(
            username, password, first_name))

    def set_password(self, username, password):
        return self.project.orm("user = User.objects.get(username={!r})\nuser.set_password({!r})\nuser.save()"
                                .format(username, password))

    def set_active(self, username, active):
        return self.project.orm("User.objects.filter(username={!r}).update(is_active={!r})".format(
            username, active))

    def delete(self, username):
        return self.project.orm("User.objects.filter(username={!r}).delete()".format(username))


E2E_INFO = "async () => (await hub.info()).e2e"


class IdentityChangeInBrowserTests(E2EBrowserTestCase):
    """The browser engine across a key change mid-session (real Chromium, the real router)."""

    @defer.inlineCallbacks
    def test_rejoin_brings_the_new_identity_keys(self):
        """
        A change that keeps the login (promotion to staff) moves the
        identity: the session is revoked, the engine rejoins at once with a
        fresh token whose keys are new, drops the old ones, and opens what is
        sealed afterwards under the new key without a refusal.
        """
        node = yield sealed_node()
        username = "kim_" + uuid.uuid4().hex[:6]
        master = Database("sqlite:///" + os.path.join(node.directory, "master.db"))
        self.addCleanup(master.close)
        yield Directory(master, iterations=1000).create_user(username, PASSWORD, first_name="Kim")
        profiles, keys = yield self.publisher(node)
        browser, context = yield self.browser_context()

        @defer.inlineCallbacks
        def send(value):
            sealed = yield profiles.seal(username, profiles.plain(username, value))
            yield profiles.publish(username, sealed)
            return sealed
        first = yield send(profile(username, first_name="Before"))

        def open_page(_chromium):
            page = log_in(context.new_page(), node.http, username, PASSWORD)
            poll(page, lambda: page.evaluate(E2E_INFO)["current"] is not None, message="no keys")
            return page, page.evaluate(E2E_INFO)["current"]
        page, old_kid = yield browser.run(open_page)
        self.assertEqual(envelope.parse(first["value"])[0], old_kid)

        yield master.execute("UPDATE auth_user SET is_staff = ? WHERE username = ?", (True, username))

        def rejoined(_chromium):
            poll(page, lambda: page.evaluate(E2E_INFO)["current"] not in (None, old_kid),
                 message="the engine did not come back with new keys")
            return page.evaluate(E2E_INFO)
        info = yield browser.run(rejoined)
        self.assertNotIn(old_kid, info["kids"])
        after = yield send(profile(username, first_name="After", version=2))
        self.assertEqual(envelope.parse(after["value"])[0], info["current"])

        def shown_after(_chromium):
            expect(page.locator("#profile")).to_contain_text("After")
            return page.evaluate(E2E_INFO)
        info = yield browser.run(shown_after)
        self.assertEqual(info["refused"], {})
