"""
Which schemas live in which database: ``MASTER`` (the user directory and
what the master owns) and ``CLIENT`` (what each client application owns).
A component's schema is added here so ``python -m components.storage migrate``
knows it.
"""

from components import counterdb, directory, httpauth

MASTER = [
    ("directory", directory.MIGRATIONS),
    ("login_sessions", httpauth.MIGRATIONS),
]

CLIENT = [
    ("directory", directory.MIGRATIONS),
    ("counter", counterdb.MIGRATIONS),
]
