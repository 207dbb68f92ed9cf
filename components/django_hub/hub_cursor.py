"""
The hub's SQL on Django's connection: :func:`hub_cursor` gives the cursor
API of :mod:`components.db.sql_cursor` (``?`` placeholders, ``dialect``) over
a Django database alias, inside one transaction, so the app runs the
functions of :mod:`components.auth.credentials` unchanged: one definition of
the revocation rules for the hub and for Django.
"""

import contextlib

from django.db import connections, transaction

from components.db.sql_cursor import POSTGRESQL, SQLITE, Cursor

DIALECTS = {"postgresql": POSTGRESQL, "sqlite": SQLITE}


class UnsupportedDatabase(ValueError):
    """The alias is not SQLite or PostgreSQL, the hub's two dialects."""


def dialect_of(alias):
    vendor = connections[alias].vendor
    if vendor not in DIALECTS:
        raise UnsupportedDatabase("the hub's database must be SQLite or PostgreSQL, {!r} is {}".format(
            alias, vendor))
    return DIALECTS[vendor]


@contextlib.contextmanager
def hub_cursor(alias):
    """A hub :class:`Cursor` on Django's ``alias``, in a transaction (a savepoint inside an outer one)."""
    dialect = dialect_of(alias)
    with transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            yield Cursor(cursor, dialect)
