"""A cheap PBKDF2 for the tests: the same ``pbkdf2_sha256`` format as Django's, 1000 iterations."""
from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
