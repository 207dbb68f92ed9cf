"""
Password hashes are interchangeable with Django's PBKDF2 hasher.
"""

from django.conf import settings
from twisted.trial.unittest import SynchronousTestCase

from components.auth import passwords

if not settings.configured:
    settings.configure()

from django.contrib.auth.hashers import PBKDF2PasswordHasher  # noqa: E402


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
