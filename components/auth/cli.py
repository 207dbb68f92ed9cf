"""
Command line for tokens and users (``reactive-hub token`` and ``reactive-hub
user``; ``python -m components.auth`` is the same):

    reactive-hub token --sub alice --role user --ttl 600 [--json]
    reactive-hub user add alice [--superuser] [--first-name A] [--password-stdin]
    reactive-hub user passwd alice

``add --superuser`` makes a Django superuser (``is_superuser`` and
``is_staff``: the hub's admin role, and Django's admin site); ``adduser`` is
the old name of ``add``. Both user commands work on the master database's
``AUTH_USER_TABLE`` and fail with a clear message when that table (or one
of its columns) is missing. The password is asked twice on the terminal (a
short or mistyped one is asked again, three times at most); without a
terminal pass ``--password-stdin`` and give it on the first line of input.

Exit codes: 0 done, 1 refused (the user exists or does not, no acceptable
password), 2 usage, 78 the user table or a setting cannot be used, 130
interrupted.
"""

import argparse
import getpass
import json
import sys

from components.auth import tokens
from components.core import exits, prompts
from components.core.settings import Settings

PROG = "python -m components.auth"


def read_password(options, ask=getpass.getpass, interactive=None, stdin=None, err=None):
    """
    The new password: the first line of ``stdin`` with ``--password-stdin``,
    else asked on the terminal (:func:`components.core.prompts.new_password`);
    SystemExit with one line on ``err`` when none is obtained.
    """
    err = sys.stderr if err is None else err
    try:
        if options.password_stdin:
            return prompts.password_from(sys.stdin if stdin is None else stdin)
        return prompts.new_password(ask, interactive, err)
    except prompts.PromptFailed as failed:
        err.write(failed.line() + "\n")
        raise SystemExit(failed.code)


def _run_directory(action):
    """Run ``action(directory)`` (returns a Deferred) against the master database, then exit."""
    from twisted.internet import defer

    from components.auth import directory, master_tables
    from components.db import db_settings
    from components.db.command_exits import EXIT_CODES as DATABASE_EXITS
    from components.db.database import Database
    from components.db.migrations import migrate_all

    settings = Settings()
    try:
        user_table = directory.user_table(settings)
        url = settings.get(db_settings.MASTER_DATABASE_URL)
    except ValueError as exc:
        sys.stderr.write("error: {}\n".format(exc))
        raise SystemExit(exits.CONFIG)

    @defer.inlineCallbacks
    def run(reactor):
        db = Database(url)
        try:
            yield migrate_all(db, master_tables.HUB_SCHEMAS)
            # the user table and its triggers (a Django-owned table that is missing is an error here)
            yield db.run(master_tables.install_table, user_table)
            yield action(directory.Directory(db, table=user_table.name))
        except directory.UserTableError as exc:
            sys.stderr.write("error: {}\n".format(exc))
            raise SystemExit(exits.CONFIG)
        finally:
            db.close()
    exits.react(run, refusals=DATABASE_EXITS)


def parser(prog=PROG):
    """The parser of ``token``, ``add`` (alias ``adduser``) and ``passwd``."""
    top = argparse.ArgumentParser(prog=prog, description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)

    token = commands.add_parser("token", help="print a signed JWT", description=(
        "Print a JWT signed with this node's key (JWT_SECRET, JWT_PRIVATE_KEY_FILE, or the dev node's "
        "generated secret). --json prints {\"token\", \"sub\", \"role\", \"ttl\"}."))
    token.add_argument("--sub", required=True, help="subject: becomes the WAMP authid")
    token.add_argument("--role", required=True, choices=tokens.ROLES)
    token.add_argument("--ttl", type=int, default=None, help="seconds (default JWT_TTL or 900)")
    token.add_argument("--json", action="store_true", help="print JSON for scripts")

    for name, aliases, text in (("add", ["adduser"], "create a directory user"),
                                ("passwd", [], "set a user's password")):
        command = commands.add_parser(name, aliases=aliases, help=text, description=text + (
            ": the password is asked twice on the terminal, or read from the first line of standard input "
            "with --password-stdin"))
        command.add_argument("username")
        command.add_argument("--password-stdin", action="store_true",
                             help="read the password from the first line of standard input (no terminal needed)")
        if name == "add":
            command.add_argument("--superuser", action="store_true",
                                 help="admin role: a Django superuser (is_superuser and is_staff)")
            command.add_argument("--first-name", default="")
            command.add_argument("--last-name", default="")
            command.add_argument("--email", default="")

    return top


def main(argv=None, prog=PROG, ask=getpass.getpass, interactive=None, stdin=None, err=None):
    """The command line; the password prompt's input functions may be passed in."""
    options = parser(prog).parse_args(argv)
    if options.command == "token":
        keys, issuer, audience, ttl = tokens.from_settings(Settings())
        issuer = tokens.TokenIssuer(keys, issuer, audience, ttl)
        token = issuer.issue(options.sub, options.role, ttl=options.ttl)
        if options.json:
            token = json.dumps({"token": token, "sub": options.sub, "role": options.role,
                                "ttl": options.ttl or ttl})
        sys.stdout.write(token + "\n")
        return exits.OK

    from components.auth.directory import DirectoryError

    password = read_password(options, ask, interactive, stdin, err)

    def action(directory):
        if options.command in ("add", "adduser"):
            d = directory.create_user(options.username, password, first_name=options.first_name,
                                      last_name=options.last_name, email=options.email,
                                      is_superuser=options.superuser, is_staff=options.superuser)
        else:
            d = directory.set_password(options.username, password)

        def failed(failure):
            failure.trap(DirectoryError)
            sys.stderr.write("error: {}\n".format(failure.value))
            raise SystemExit(exits.FAILURE)
        d.addCallbacks(lambda _: sys.stdout.write("ok: {} {}\n".format(options.command, options.username)), failed)
        return d
    _run_directory(action)


if __name__ == "__main__":
    sys.exit(exits.outcome(main))
