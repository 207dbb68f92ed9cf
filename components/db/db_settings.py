"""
The two databases' settings: the client database (counters, IoT history, the
user replica) and the master database (the user directory, login sessions,
revocation facts, the user-change outbox); a SQLite file in the node
directory by default.
"""

import os

from components.core.settings import CLI, CLIENT, DATABASE_URL as URL_KIND, DEV, DJANGO, INT, MASTER, Setting


def _sqlite_in_node_directory(kind):
    return lambda settings: "sqlite:///" + os.path.join(settings.node_directory, kind + ".db")


DATABASE_URL = Setting(
    "DATABASE_URL", URL_KIND, "the client database: `sqlite:///relative.db`, `sqlite:////absolute/path.db` or "
    "`postgresql://user:password@host:5432/name`", default=_sqlite_in_node_directory("client"),
    shown="`sqlite:///<node dir>/client.db`", roles=(DEV, CLIENT, MASTER, CLI, DJANGO))
MASTER_DATABASE_URL = Setting(
    "MASTER_DATABASE_URL", URL_KIND, "the master database (user directory, login sessions, revocation facts, "
    "user-change outbox); may be a Django project's database", default=_sqlite_in_node_directory("master"),
    shown="`sqlite:///<node dir>/master.db`", roles=(DEV, MASTER, CLIENT, CLI))

DATABASE_POOL_MAX = Setting(
    "DATABASE_POOL_MAX", INT, "the most connections a process holds to one database: all its components on that "
    "database URL share one pool", default=3, minimum=1, maximum=50, roles=(DEV, CLIENT, MASTER, CLI))

# the database a setting such as REVOCATION_DATABASE or MONITOR_DATABASE names
BY_KIND = {"client": DATABASE_URL, "master": MASTER_DATABASE_URL}

SETTINGS = (DATABASE_URL, MASTER_DATABASE_URL, DATABASE_POOL_MAX)


def url_of(settings, kind):
    """The URL of the ``client`` or ``master`` database as ``settings`` configure it."""
    return settings.get(BY_KIND[kind])
