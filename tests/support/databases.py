"""
Databases for tests: a fresh SQLite file, or a fresh PostgreSQL database on
the machine's server (127.0.0.1:5432). PostgreSQL is a required service: if
it cannot be reached the test fails loudly, it is never skipped.
"""

import atexit
import os
import tempfile
import uuid

import psycopg2
from psycopg2 import sql

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def sqlite_url(testcase):
    directory = tempfile.mkdtemp(prefix="hub-db-")
    return "sqlite:///" + os.path.join(directory, "test.db")


def _admin():
    try:
        connection = psycopg2.connect(POSTGRES_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise AssertionError(
            "PostgreSQL is required for this test and is not reachable at {}: {}".format(POSTGRES_ADMIN_URL, exc))
    connection.autocommit = True
    return connection


def postgres_url(testcase):
    """
    Create a throwaway database, dropped when the test ends; return its URL.
    With ``testcase=None`` it lives until the test process exits (for a
    node shared by several tests).
    """
    name = "hubtest_" + uuid.uuid4().hex[:12]
    connection = _admin()
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    connection.close()

    def drop():
        admin = _admin()
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()
    if testcase is None:
        atexit.register(drop)
    else:
        testcase.addCleanup(drop)
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return "{}/{}".format(base, name)


def postgres_execute(url, statement, params=()):
    """
    One committed statement on the PostgreSQL database at ``url``, in a
    thread (a Deferred), as a SQL console or another application would write.
    """
    from twisted.internet import threads

    def run():
        connection = psycopg2.connect(url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(statement, params)
        finally:
            connection.close()
    return threads.deferToThread(run)


class OnSQLite:
    """Mixin for a test case run against a fresh SQLite file: ``database_url()``."""

    def database_url(self):
        return sqlite_url(self)


class OnPostgreSQL:
    """Mixin for a test case run against a fresh PostgreSQL database: ``database_url()``."""

    def database_url(self):
        return postgres_url(self)
