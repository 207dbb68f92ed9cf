"""
Command line for tokens and users:

    python -m components.auth token --sub alice --role user --ttl 600
    python -m components.auth adduser alice [--superuser] [--first-name A] [--password-stdin]
    python -m components.auth passwd alice

``adduser --superuser`` makes a Django superuser (``is_superuser`` and
``is_staff``: the hub's admin role, and Django's admin site). Both user
commands work on the master database's ``AUTH_USER_TABLE`` and fail with a
clear message when that table (or one of its columns) is missing.
"""

import argparse
import getpass
import sys

from components.auth import tokens
from components.core.settings import Settings


def _read_password(options):
    if options.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise SystemExit("passwords do not match")
    if len(password) < 8:
        raise SystemExit("password must have at least 8 characters")
    return password


def _run_directory(action):
    """Run ``action(directory)`` (returns a Deferred) against the master database, then exit."""
    from twisted.internet import defer, task

    from components.auth import directory, master_tables
    from components.db.database import Database
    from components.db.migrations import migrate_all

    settings = Settings()
    try:
        user_table = directory.user_table(settings)
    except ValueError as exc:
        sys.stderr.write("error: {}\n".format(exc))
        raise SystemExit(2)

    @defer.inlineCallbacks
    def run(reactor):
        db = Database(settings.database_url("master"))
        try:
            yield migrate_all(db, master_tables.HUB_SCHEMAS)
            # the user table and its triggers (a Django-owned table that is missing is an error here)
            yield db.run(master_tables.install_table, user_table)
            yield action(directory.Directory(db, table=user_table.name))
        except directory.UserTableError as exc:
            sys.stderr.write("error: {}\n".format(exc))
            raise SystemExit(2)
        finally:
            db.close()
    task.react(run)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m components.auth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    token = commands.add_parser("token", help="print a signed JWT")
    token.add_argument("--sub", required=True, help="subject: becomes the WAMP authid")
    token.add_argument("--role", required=True, choices=tokens.ROLES)
    token.add_argument("--ttl", type=int, default=None, help="seconds (default JWT_TTL or 900)")

    for name, text in (("adduser", "create a directory user"), ("passwd", "set a user's password")):
        command = commands.add_parser(name, help=text)
        command.add_argument("username")
        command.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        if name == "adduser":
            command.add_argument("--superuser", action="store_true",
                                 help="admin role: a Django superuser (is_superuser and is_staff)")
            command.add_argument("--first-name", default="")
            command.add_argument("--last-name", default="")
            command.add_argument("--email", default="")

    options = parser.parse_args(argv)
    if options.command == "token":
        keys, issuer, audience, ttl = tokens.from_settings(Settings())
        issuer = tokens.TokenIssuer(keys, issuer, audience, ttl)
        sys.stdout.write(issuer.issue(options.sub, options.role, ttl=options.ttl) + "\n")
        return

    from components.auth.directory import DirectoryError

    password = _read_password(options)

    def action(directory):
        if options.command == "adduser":
            d = directory.create_user(options.username, password, first_name=options.first_name,
                                      last_name=options.last_name, email=options.email,
                                      is_superuser=options.superuser, is_staff=options.superuser)
        else:
            d = directory.set_password(options.username, password)

        def failed(failure):
            failure.trap(DirectoryError)
            sys.stderr.write("error: {}\n".format(failure.value))
            raise SystemExit(2)
        d.addCallbacks(lambda _: sys.stdout.write("ok: {} {}\n".format(options.command, options.username)), failed)
        return d
    _run_directory(action)


if __name__ == "__main__":
    main()
