"""
Registered devices for tests against a real node: the registry on the
node's client database (its ``DATABASE_URL``, else its SQLite file) with the
node's key-encryption key (its ``E2E_KEK``, else the dev file in its node
directory), as the CLI ``python -m components.iot device`` would open it.
"""

from twisted.internet import defer

from components.core import errors
from components.core.settings import Settings
from components.db import db_settings
from components.db.database import Database
from components.e2e.keys import load_kek
from components.iot.device_registry import DeviceRegistry


def open_registry(node):
    """A DeviceRegistry on ``node``'s client database; the caller closes ``registry.db``."""
    settings = Settings(environ=node.env, node_directory=node.directory)
    return DeviceRegistry(Database(settings.get(db_settings.DATABASE_URL)), load_kek(settings))


def node_registry(testcase, node):
    """A DeviceRegistry on ``node``'s client database, closed when the test ends."""
    registry = open_registry(node)
    testcase.addCleanup(registry.db.close)
    return registry


@defer.inlineCallbacks
def register(testcase, node, name):
    """Register ``name`` on ``node`` (rotated when it was registered before, e.g. by another test of the same
    process); fire with ``(key, secret)``. ``testcase`` may be None (a module's shared node)."""
    registry = open_registry(node)
    try:
        try:
            credentials = yield registry.add(name)
        except errors.InvalidArgument:
            credentials = yield registry.rotate(name)
    finally:
        registry.db.close()
    return credentials
