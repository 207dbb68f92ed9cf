"""
components.auth.passwords: hashes interchangeable with every hasher Django
ships (made by Django's own hashers here), and refusals that cost the same
work whatever the reason (components.auth.directory).
"""

import os
import tempfile

from django.conf import settings
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase, TestCase

from components.auth import passwords
from components.auth.directory import Directory
from components.auth.master_tables import master_schemas
from components.db.database import Database
from components.db.migrations import migrate_all

if not settings.configured:
    settings.configure()

from django.contrib.auth import hashers as django_hashers  # noqa: E402
from django.contrib.auth.hashers import PBKDF2PasswordHasher  # noqa: E402

# Django's shipped hashers, cheap work factors so the test stays fast
DJANGO_HASHERS = {
    "pbkdf2_sha256": lambda: django_hashers.PBKDF2PasswordHasher().encode("s3cret!", "saltsalt12", iterations=1000),
    "pbkdf2_sha1": lambda: django_hashers.PBKDF2SHA1PasswordHasher().encode("s3cret!", "saltsalt12", iterations=1000),
    "argon2": lambda: django_hashers.Argon2PasswordHasher().encode("s3cret!", "saltsalt12"),
    "bcrypt_sha256": lambda: django_hashers.BCryptSHA256PasswordHasher().encode(
        "s3cret!", django_hashers.BCryptSHA256PasswordHasher().salt()),
    "bcrypt": lambda: django_hashers.BCryptPasswordHasher().encode("s3cret!", django_hashers.BCryptPasswordHasher().salt()),
    "scrypt": lambda: django_hashers.ScryptPasswordHasher().encode("s3cret!", "saltsalt12", n=2 ** 10),
}


class DjangoCompatibilityTests(SynchronousTestCase):
    """Hashes made by Django verify here and ours verify in Django."""

    def test_same_encoding_as_django(self):
        """Same password, salt and iterations give Django's exact string."""
        ours = passwords.make_password("lètmein", salt="seasalt", iterations=1000)
        self.assertEqual(ours, PBKDF2PasswordHasher().encode("lètmein", "seasalt", iterations=1000))

    def test_django_hash_checks_here(self):
        """A hash produced by Django checks against the right password only."""
        encoded = PBKDF2PasswordHasher().encode("s3cret!", "abcdefgh12345678", iterations=2000)
        self.assertTrue(passwords.check_password("s3cret!", encoded))
        self.assertFalse(passwords.check_password("s3cret", encoded))

    def test_our_hash_checks_in_django(self):
        """Django's hasher accepts our hash (random salt, default format)."""
        encoded = passwords.make_password("hunter22", iterations=1500)
        self.assertTrue(PBKDF2PasswordHasher().verify("hunter22", encoded))
        self.assertEqual(len(encoded.split("$")[2]), 22)

    def test_default_iterations_match_django(self):
        """Our default work factor is at least Django's."""
        self.assertGreaterEqual(passwords.DEFAULT_ITERATIONS, 1_000_000)

    def test_unusable_and_malformed(self):
        """Unusable, malformed and other-algorithm hashes never match."""
        for encoded in (passwords.make_unusable_password(), "", "md5$x$y", "pbkdf2_sha256$abc$salt$hash",
                        "pbkdf2_sha256$0$salt$hash", None):
            self.assertFalse(passwords.check_password("anything", encoded))

    def test_empty_password_refused(self):
        """Hashing an empty password is refused."""
        self.assertRaises(ValueError, passwords.make_password, "")


class DjangoHasherTests(SynchronousTestCase):
    """Every hasher Django ships verifies here: a Django site configured with argon2 first does not lock users out."""

    def test_every_shipped_hasher_verifies(self):
        """The right password matches, a wrong one does not, for each of Django's hashers."""
        for name, make in DJANGO_HASHERS.items():
            encoded = make()
            self.assertEqual(encoded.split("$", 1)[0], name)
            self.assertEqual(passwords.verify("s3cret!", encoded), passwords.MATCH, name)
            self.assertEqual(passwords.verify("s3cret?", encoded), passwords.MISMATCH, name)

    def test_outcomes_say_why(self):
        """Unusable, unknown-algorithm and broken hashes are told apart (for the log), and never match."""
        self.assertEqual(passwords.verify("x", passwords.make_unusable_password()), passwords.UNUSABLE)
        self.assertEqual(passwords.verify("x", "md5$salt$abc"), passwords.UNSUPPORTED)
        self.assertEqual(passwords.verify("x", "pbkdf2_sha256$abc$salt$hash"), passwords.MALFORMED)
        self.assertEqual(passwords.verify("x", "argon2$argon2id$garbage"), passwords.MALFORMED)

    def test_hub_writes_pbkdf2_sha256_at_djangos_count(self):
        """New hashes use Django's current default hasher and iteration count."""
        hasher = django_hashers.PBKDF2PasswordHasher()
        encoded = passwords.make_password("hunter22")
        self.assertEqual(encoded.split("$")[:2], [hasher.algorithm, str(hasher.iterations)])


class RefusalWorkTests(TestCase):
    """Every refused login does the same hashing work, whatever the reason."""

    @defer.inlineCallbacks
    def test_same_work_on_every_refusal_path(self):
        """Unknown user, unusable password, wrong password, unverifiable hash: one default-count derivation each."""
        db = Database("sqlite:///" + os.path.join(tempfile.mkdtemp(), "master.db"))
        self.addCleanup(db.close)
        yield migrate_all(db, master_schemas())
        directory = Directory(db, iterations=passwords.DEFAULT_ITERATIONS)
        yield directory.create_user("wrong", "right-password")
        yield directory.create_user("unusable", "whatever-pass")
        yield directory.create_user("foreign", "whatever-pass")
        yield db.execute("UPDATE auth_user SET password = ? WHERE username = ?",
                         (passwords.make_unusable_password(), "unusable"))
        yield db.execute("UPDATE auth_user SET password = ? WHERE username = ?", ("md5$ab$cd", "foreign"))
        work = []
        real_derive = passwords._derive

        def counting(password, salt, iterations, digest="sha256"):
            work.append((digest, iterations))
            return real_derive(password, salt, 1000, digest)   # the count, not the seconds, is what is compared
        self.patch(passwords, "_derive", counting)
        logged = []
        directory.log = type("Log", (), {"warn": lambda self, fmt, **kw: logged.append(kw)})()
        for username in ("nobody", "unusable", "wrong", "foreign"):
            del work[:]
            user = yield directory.authenticate(username, "guess-password")
            self.assertIsNone(user)
            self.assertEqual(work, [("sha256", passwords.DEFAULT_ITERATIONS)], username)
        self.assertEqual([(entry["username"], entry["algorithm"]) for entry in logged], [("foreign", "md5")])
