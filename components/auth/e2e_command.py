"""
``reactive-hub e2e``: the end-to-end key command line of
:mod:`components.e2e.cli`, with ``rotate --user NAME`` refused for a name that
is not in the user directory (the master database's user table,
``AUTH_USER_TABLE``), where it would create a key for a typo.
"""

from components.auth import directory
from components.db import db_settings
from components.db.database import Database
from components.e2e import cli


def _has_user(cursor, table, username):
    if directory.columns_of(cursor, table) is None:
        return False
    return cursor.execute("SELECT 1 FROM {} WHERE username = ?".format(table), (username,)).fetchone() is not None


def known_user(settings, username):
    """A Deferred: None when ``username`` is in the master's user table, else the line saying it is not."""
    table = directory.user_table(settings).name
    db = Database(settings.get(db_settings.MASTER_DATABASE_URL))

    def closed(result):
        db.close()
        return result

    def refusal(found):
        if found:
            return None
        return ("no user {!r} in the user table {} of {!r}: check the name (reactive-hub user add creates "
                "a user)".format(username, table, db))
    return db.run(_has_user, table, username).addBoth(closed).addCallback(refusal)


def main(argv=None, prog="python -m components.e2e"):
    """:func:`components.e2e.cli.main` with the user directory's check."""
    return cli.main(argv, prog=prog, known_user=known_user)
