"""Users in a test node's master directory (SQLite), created with a cheap hash so tests stay fast."""

import os

from twisted.internet import defer

from components.auth.directory import Directory
from components.db.database import Database
from components.db.migrations import migrate_all
from components.node import schema_registry


@defer.inlineCallbacks
def add_users(node, users, password, url=None):
    """
    Create ``users`` (``(username, first_name, is_superuser)``) with ``password``
    in ``node``'s master.db (or the master database at ``url``).
    """
    db = Database(url or "sqlite:///" + os.path.join(node.directory, "master.db"))
    try:
        yield migrate_all(db, schema_registry.master())
        directory = Directory(db, iterations=1000)
        for username, first_name, admin in users:
            yield directory.create_user(username, password, first_name=first_name, is_superuser=admin)
    finally:
        db.close()
