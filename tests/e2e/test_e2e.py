"""
End-to-end envelopes: the shared test vectors, every refusal, nonce reuse
detection, and per-user keys with rotation and a grace period (real SQLite
and PostgreSQL).
"""

import json
import os
import subprocess
import sys
import tempfile

from twisted.internet import defer, task
from twisted.trial import unittest

from components.e2e import envelope
from components.e2e.keys import KeyConfigError, MIGRATIONS, UserKeys, load_kek, unwrap
from components.e2e.service import PrivatePayloads
from components.db.database import Database
from components.db.migrations import migrate
from components.core.settings import Settings
from tests.support.databases import postgres_url, sqlite_url

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors", "e2e_v1.json")


def load_vectors():
    with open(VECTORS, encoding="utf-8") as handle:
        return json.load(handle)


class EnvelopeVectorTests(unittest.SynchronousTestCase):
    """The shared vectors (also checked by the browser with WebCrypto)."""

    def test_valid_vectors_open(self):
        """Each valid vector opens to its value, and sealing with its nonce reproduces it byte for byte."""
        vectors = load_vectors()
        key = envelope.b64decode(vectors["key_b64url"], "key")
        for vector in vectors["valid"]:
            self.assertEqual(envelope.open_envelope(key, vector["topic"], vector["seq"], vector["envelope"]),
                             vector["value"])
            nonce = envelope.b64decode(vector["envelope"]["nonce"], "nonce")
            self.assertEqual(envelope.seal(key, vector["kid"], vector["topic"], vector["seq"], vector["value"],
                                           nonce=nonce), vector["envelope"])

    def test_invalid_vectors_refused(self):
        """Tampered, moved, replayed-as-newer, relabelled, truncated, unknown-version envelopes are refused."""
        vectors = load_vectors()
        key = envelope.b64decode(vectors["key_b64url"], "key")
        self.assertGreaterEqual(len(vectors["invalid"]), 7)
        for vector in vectors["invalid"]:
            with self.assertRaises(envelope.EnvelopeError) as caught:
                envelope.open_envelope(key, vector["topic"], vector["seq"], vector["envelope"])
            self.assertEqual(caught.exception.code, vector["code"], vector["why"])


class EnvelopeTests(unittest.SynchronousTestCase):
    """Sealing and opening."""

    key = bytes(32)

    def test_round_trip_fresh_nonces(self):
        """Two seals of the same value differ (random nonce) and both open."""
        first = envelope.seal(self.key, "k", "users.changed", 1, {"a": "ü"})
        second = envelope.seal(self.key, "k", "users.changed", 1, {"a": "ü"})
        self.assertNotEqual(first["nonce"], second["nonce"])
        self.assertNotEqual(first["ct"], second["ct"])
        self.assertEqual(envelope.open_envelope(self.key, "users.changed", 1, second), {"a": "ü"})

    def test_wrong_key(self):
        """Another user's key does not open the envelope."""
        sealed = envelope.seal(self.key, "k", "users.changed", 1, "secret")
        with self.assertRaises(envelope.EnvelopeError) as caught:
            envelope.open_envelope(b"\x01" * 32, "users.changed", 1, sealed)
        self.assertEqual(caught.exception.code, "auth_failed")

    def test_malformed_shapes(self):
        """Non-objects, missing fields, bad base64 and bad seq are refused as malformed."""
        for bad in ("string", [], {"e2e": 1, "alg": "A256GCM", "kid": "k", "nonce": "!!", "ct": "AAAA"},
                    {"e2e": 1, "alg": "A256GCM", "kid": "", "nonce": "AAAAAAAAAAAAAAAA", "ct": "AAAA"}):
            with self.assertRaises(envelope.EnvelopeError) as caught:
                envelope.open_envelope(self.key, "t", 1, bad)
            self.assertEqual(caught.exception.code, "malformed")
        sealed = envelope.seal(self.key, "k", "t", 1, 1)
        for seq in (-1, "1", True, 1.0):
            self.assertRaises(envelope.EnvelopeError, envelope.open_envelope, self.key, "t", seq, sealed)

    def test_strict_like_the_browser(self):
        """``e2e: true`` is not version 1, and characters outside base64url are refused (as WebCrypto's side does)."""
        sealed = envelope.seal(self.key, "k", "t", 1, 1)
        with self.assertRaises(envelope.EnvelopeError) as caught:
            envelope.open_envelope(self.key, "t", 1, dict(sealed, e2e=True))
        self.assertEqual(caught.exception.code, "unsupported_version")
        for bad_ct in (sealed["ct"][:5] + "+" + sealed["ct"][6:], sealed["ct"] + "=", " " + sealed["ct"]):
            with self.assertRaises(envelope.EnvelopeError) as caught:
                envelope.open_envelope(self.key, "t", 1, dict(sealed, ct=bad_ct))
            self.assertEqual(caught.exception.code, "malformed")

    def test_other_algorithm_refused(self):
        """An envelope claiming another algorithm is refused before decryption."""
        sealed = dict(envelope.seal(self.key, "k", "t", 1, 1), alg="A128CBC")
        with self.assertRaises(envelope.EnvelopeError) as caught:
            envelope.open_envelope(self.key, "t", 1, sealed)
        self.assertEqual(caught.exception.code, "unsupported_algorithm")

    def test_nonce_guard(self):
        """The same envelope twice is a replay; the same nonce with other ciphertext is nonce reuse."""
        guard = envelope.NonceGuard(size=100)
        sealed = envelope.seal(self.key, "k", "t", 1, "a")
        guard.check(sealed)
        with self.assertRaises(envelope.EnvelopeError) as caught:
            guard.check(sealed)
        self.assertEqual(caught.exception.code, "replayed")
        reused = envelope.seal(self.key, "k", "t", 2, "b", nonce=envelope.b64decode(sealed["nonce"], "n"))
        with self.assertRaises(envelope.EnvelopeError) as caught:
            guard.check(reused)
        self.assertEqual(caught.exception.code, "nonce_reuse")
        guard.check(envelope.seal(self.key, "k", "t", 3, "c"))


class KekTests(unittest.SynchronousTestCase):
    """Where the key-encryption key comes from."""

    def test_sources(self):
        """E2E_KEK wins; else E2E_KEK_FILE; else a generated dev key (0600) reused on the next load."""
        explicit = envelope.b64encode(b"\x07" * 32)
        self.assertEqual(load_kek(Settings({}, {"E2E_KEK": explicit}, "/nonexistent")), b"\x07" * 32)
        directory = tempfile.mkdtemp()
        first = load_kek(Settings({}, {}, directory))
        self.assertEqual(len(first), 32)
        self.assertEqual(load_kek(Settings({}, {}, directory)), first)
        path = os.path.join(directory, "secrets", "e2e_kek")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(load_kek(Settings({}, {"E2E_KEK_FILE": path}, "/nonexistent")), first)

    def test_bad_kek(self):
        """A KEK that is not 32 bytes of base64url is refused with the variable's name."""
        for bad in ("short", envelope.b64encode(b"x" * 16)):
            with self.assertRaises(KeyConfigError) as caught:
                load_kek(Settings({}, {"E2E_KEK": bad}, "/nonexistent"))
            self.assertIn("E2E_KEK", str(caught.exception))


class UserKeysMixin:
    """Per-user keys against a real database."""

    timeout = 60

    @defer.inlineCallbacks
    def make(self, grace=60):
        db = Database(self.url(self))
        self.addCleanup(db.close)
        yield migrate(db, "e2e_keys", MIGRATIONS)
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.kek = b"\x05" * 32
        return db, UserKeys(db, self.kek, grace=grace, clock=self.clock.seconds)

    @defer.inlineCallbacks
    def test_keys_per_user_stored_wrapped(self):
        """Each user gets their own key, created once; the table holds only wrapped keys."""
        db, keys = yield self.make()
        alice = yield keys.current("alice")
        self.assertEqual(alice, (yield keys.current("alice")))
        bob = yield keys.current("bob")
        self.assertNotEqual(alice[1], bob[1])
        rows = yield db.query("SELECT username, generation, kid, wrapped FROM e2e_user_key")
        for username, generation, kid, wrapped in rows:
            raw = alice[1] if username == "alice" else bob[1]
            self.assertNotIn(envelope.b64encode(raw), wrapped)
            self.assertEqual(unwrap(self.kek, username, generation, kid, wrapped), raw)
        with self.assertRaises(KeyConfigError):
            unwrap(b"\x06" * 32, *rows[0])
        with self.assertRaises(KeyConfigError):  # a wrapped key moved to another user does not unwrap
            unwrap(self.kek, "mallory", *rows[0][1:])

    @defer.inlineCallbacks
    def test_rotation_with_grace(self):
        """After rotation, old envelopes open until the grace period ends; new ones use the new key."""
        db, keys = yield self.make(grace=60)
        payloads = PrivatePayloads(keys, enabled=True)
        old_state = yield payloads.seal_state("alice", "users.changed", {"value": {"v": 1}, "seq": 5, "ts": 0})
        new_kid = yield keys.rotate("alice")
        new_state = yield payloads.seal_state("alice", "users.changed", {"value": {"v": 2}, "seq": 6, "ts": 0})
        self.assertEqual(new_state["value"]["kid"], new_kid)
        self.assertNotEqual(old_state["value"]["kid"], new_kid)
        opened = yield payloads.open_state("alice", "users.changed", old_state)
        self.assertEqual(opened["value"], {"v": 1})
        usable = yield keys.usable("alice")
        self.assertEqual((usable["current"], len(usable["keys"])), (new_kid, 2))
        self.clock.advance(61)
        with self.assertRaises(envelope.EnvelopeError) as caught:
            yield payloads.open_state("alice", "users.changed", old_state)
        self.assertEqual(caught.exception.code, "unknown_key")
        usable = yield keys.usable("alice")
        self.assertEqual(list(usable["keys"]), [new_kid])

    @defer.inlineCallbacks
    def test_disabled_is_plain(self):
        """With encryption off, states pass through unchanged."""
        _, keys = yield self.make()
        state = {"value": {"first_name": "A"}, "seq": 1, "ts": 2}
        self.assertEqual((yield PrivatePayloads(keys, enabled=False).seal_state("alice", "users.changed", state)),
                         state)


class SQLiteUserKeysTests(UserKeysMixin, unittest.TestCase):
    url = staticmethod(sqlite_url)


class PostgreSQLUserKeysTests(UserKeysMixin, unittest.TestCase):
    url = staticmethod(postgres_url)


class CommandLineTests(unittest.TestCase):
    """python -m components.e2e rotate / decrypt."""

    timeout = 60

    def run_cli(self, env, *args):
        return subprocess.run([sys.executable, "-m", "components.e2e"] + list(args), capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, **env))

    @defer.inlineCallbacks
    def test_rotate_and_decrypt(self):
        """The CLI rotates a user's key and opens an envelope sealed for that user; a tampered one is refused."""
        directory = tempfile.mkdtemp()
        url = "sqlite:///" + os.path.join(directory, "client.db")
        env = {"DATABASE_URL": url, "CROSSBAR_DIR": directory}
        result = self.run_cli(env, "rotate", "--user", "alice")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("new key", result.stdout)
        db = Database(url)
        self.addCleanup(db.close)
        keys = UserKeys(db, load_kek(Settings({}, {}, directory)))
        state = yield PrivatePayloads(keys, True).seal_state("alice", "users.changed",
                                                             {"value": {"first_name": "Alice"}, "seq": 9, "ts": 0})
        result = self.run_cli(env, "decrypt", "--user", "alice", "--topic", "users.changed", json.dumps(state))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout), {"first_name": "Alice"})
        result = self.run_cli(env, "decrypt", "--user", "alice", "--topic", "users.changed", "--seq", "10",
                              json.dumps(state["value"]))
        self.assertEqual(result.returncode, 1)  # refused (2 is a usage error)
        self.assertIn("auth_failed", result.stderr)

    def test_malformed_payload_is_one_line(self):
        """decrypt of text that is no JSON, or JSON holding no envelope, is refused in one line, exit 1, no traceback."""
        directory = tempfile.mkdtemp()
        env = {"DATABASE_URL": "sqlite:///" + os.path.join(directory, "client.db"), "CROSSBAR_DIR": directory}
        for payload in ("not json", "[1]", '{"e2e": 1}'):
            result = self.run_cli(env, "decrypt", "--user", "alice", "--topic", "t", "--seq", "1", payload)
            self.assertEqual(result.returncode, 1, result.stderr)
            self.assertIn("refused (malformed)", result.stderr)
            self.assertNotIn("Traceback", result.stderr)


class SealedAndSeqTests(unittest.SynchronousTestCase):
    """components.e2e.cli.sealed_and_seq: the decrypt command's argument."""

    def test_state_dict_and_bare_envelope(self):
        """A state dict gives its value and seq; a bare envelope the --seq given."""
        from components.e2e.cli import sealed_and_seq
        bare = {"e2e": 1, "alg": "A256GCM", "kid": "k", "nonce": "n", "ct": "c"}
        self.assertEqual(sealed_and_seq(json.dumps({"value": bare, "seq": 4})), (bare, 4))
        self.assertEqual(sealed_and_seq(json.dumps(bare), 7), (bare, 7))

    def test_malformed(self):
        """No JSON, a list, or a dict without value and seq: EnvelopeError with code malformed."""
        from components.e2e.cli import sealed_and_seq
        for text in ("not json", "[1]", '{"value": 1}'):
            error = self.assertRaises(envelope.EnvelopeError, sealed_and_seq, text)
            self.assertEqual(error.code, "malformed")
