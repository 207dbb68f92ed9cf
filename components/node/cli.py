"""
The node's command line: ``python -m components.node migrate`` creates or
upgrades every schema of the master and the client database (the registry in
:mod:`components.node.schema_registry`), idempotently.
"""

from twisted.internet import defer
from twisted.logger import Logger

from components.auth.directory import user_table
from components.core import exits
from components.core.command_log import begin_command_log
from components.core.settings import Settings
from components.db import db_settings
from components.db.command_exits import EXIT_CODES as DATABASE_EXITS
from components.db.database import Database
from components.db.migrations import migrate_all
from components.node import schema_registry as schema


def main(argv=None, prog="python -m components.node"):
    """``reactive-hub migrate [--master-url URL] [--client-url URL]`` (``python -m components.node migrate``)"""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description="Create or upgrade the hub's database schemas.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_migrate = commands.add_parser(
        "migrate", help="apply pending migrations (idempotent)",
        description="Create or upgrade every schema of the master and the client database (idempotent); "
                    "`make start` and `reactive-hub start` run it first. Not `reactive-hub sync migrate`, which "
                    "installs the user-change capture triggers on the user table.",
        epilog="Exit codes: 0 done, 1 a migration failed, 78 a database URL or setting cannot be used.")
    run_migrate.add_argument("--master-url", default=None, help="default: MASTER_DATABASE_URL or the node's SQLite")
    run_migrate.add_argument("--client-url", default=None, help="default: DATABASE_URL or the node's SQLite")
    options = parser.parse_args(argv)
    begin_command_log()  # what it did is output (stdout); warnings and errors go to stderr
    log = Logger(namespace="migrate")

    @defer.inlineCallbacks
    def run(reactor):
        settings = Settings()
        table = user_table(settings)
        targets = [("master", options.master_url or settings.get(db_settings.MASTER_DATABASE_URL), schema.master(table)),
                   ("client", options.client_url or settings.get(db_settings.DATABASE_URL), schema.client(table))]
        for kind, url, schemas in targets:
            db = Database(url)
            try:
                log.info("migrating {kind} database {db!r}", kind=kind, db=db)
                yield migrate_all(db, schemas, log)
            finally:
                db.close()

    exits.react(run, refusals=DATABASE_EXITS)

