"""
Command line of the user sync (``reactive-hub sync``; ``python -m
components.usersync`` is the same):

    reactive-hub sync provision --clients a,b [--topic reactive-users] [--fifo]
        [--max-receives 5] [--visibility-timeout 30] [--json]
    reactive-hub sync migrate [--master-url URL] [--fields username,email,...] [--skip-staff]
    reactive-hub sync resync [--client NAME] [--gap] [--master-url URL] [--batch 500]
    reactive-hub sync restored [--master-url URL] [--batch 500]
    reactive-hub sync emulator [--port 4566]

``provision`` talks to AWS (standard credential chain, ``AWS_DEFAULT_REGION``)
or to the emulator at ``AWS_ENDPOINT_URL``, and prints the settings to use.
``migrate`` creates the outbox tables and (re)installs the triggers on the
user table (``AUTH_USER_TABLE``); the first time, it queues the initial
snapshot (every existing user). The master component does the same at its
start; ``reactive-hub migrate`` (every schema of a node, run by ``start``)
creates the tables only. ``resync`` queues a snapshot again, for a
client added later (``--client`` names it; SNS carries it to every client,
where the version rule makes it a no-op for the users a client already
holds) or, with ``--gap``, at every user's next version, so every client
takes the master's state (after writes the capture missed). Both fail with a
clear message when the user table or its columns are missing.
``restored`` is for a master database restored from a backup, run before
its node starts again: versions above any a client holds, every login
ended, a new epoch, and a snapshot every client takes (see
:mod:`components.usersync.restore`).
``emulator`` runs the local SNS/SQS emulator (moto server) on loopback; the
dev node starts it as a guest worker.
"""

import argparse
import json
import sys

from components.core.command_log import begin_command_log
from components.core.exits import CONFIG, react
from components.core.settings import Settings, SettingsError
from components.core.stop_signals import exit_on_stop_signals
from components.usersync import usersync_settings


def _provision(options, settings):
    """Create the topic, queues and subscriptions; AWS unreachable, refusing or without credentials: one line."""
    from botocore.exceptions import BotoCoreError, ClientError

    from components.usersync import aws, provision
    endpoint = settings.get(usersync_settings.AWS_ENDPOINT_URL) or None
    region = aws.region_for(settings=settings)
    clients = [name.strip() for name in options.clients.split(",") if name.strip()]
    plan = provision.Plan(options.topic, clients, options.fifo, options.max_receives,
                          options.visibility_timeout)
    try:
        sns = aws.make_client("sns", endpoint, region, attempts=4)
        sqs = aws.make_client("sqs", endpoint, region, attempts=4)
        result = provision.provision(sns, sqs, plan)
    except (BotoCoreError, ClientError) as error:
        raise SystemExit("cannot provision on {}: {} (AWS_ENDPOINT_URL=http://127.0.0.1:4566 is the dev node's "
                         "emulator; real AWS needs credentials)".format(endpoint or "AWS", error))
    if options.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print("\n".join(provision.settings_lines(result)))


def _master_database(options, settings, work):
    """Run ``work(db, log, user_table, fields, include_staff)`` (a Deferred) on the master database; exit."""
    from twisted.internet import defer
    from twisted.logger import Logger

    from components.auth import directory
    from components.db import db_settings
    from components.db.command_exits import EXIT_CODES as DATABASE_EXITS
    from components.db.database import Database
    from components.db.migrations import migrate_all
    from components.usersync import fields, master

    try:
        tracked = (fields.parse_fields(options.fields) if options.fields is not None
                   else settings.get(usersync_settings.USERSYNC_FIELDS))
        include_staff = settings.get(usersync_settings.USERSYNC_INCLUDE_STAFF)
        user_table = directory.user_table(settings)
        url = options.master_url or settings.get(db_settings.MASTER_DATABASE_URL)
    except ValueError as exc:
        sys.stderr.write("error: {}\n".format(exc))
        raise SystemExit(CONFIG)
    if options.include_staff:
        include_staff = True
    if options.skip_staff:
        include_staff = False
    begin_command_log()  # what it did on stdout, warnings and errors on stderr
    log = Logger(namespace="usersync")

    @defer.inlineCallbacks
    def run(reactor):
        db = Database(url)
        try:
            yield migrate_all(db, master.OWN_SCHEMAS, log)
            yield work(db, log, user_table, tracked, include_staff)
        except directory.UserTableError as exc:  # UserTableMissing too: a command does not wait
            sys.stderr.write("error: {}\n".format(exc))
            raise SystemExit(CONFIG)
        finally:
            db.close()
    react(run, refusals=DATABASE_EXITS)


def _progress_of(command):
    """A snapshot's progress reporter for ``command``: one line per batch on stderr."""
    def progress(stage, seen, queued):
        print("{}: {} {} read, {} events queued".format(command, stage, seen, queued), file=sys.stderr,
              flush=True)
    return progress


def _migrate(options, settings):
    import time

    from twisted.internet import defer

    from components.usersync import master, outbox, snapshot

    @defer.inlineCallbacks
    def work(db, log, user_table, tracked, include_staff):
        first = yield db.run(master.install, user_table, tracked, include_staff, True)
        log.info("triggers installed on {table} in {db!r}: fields {fields}, staff {staff}",
                 table=user_table.name, db=db, fields=",".join(tracked),
                 staff="included" if include_staff else "skipped")
        if first:
            totals = yield snapshot.run(db, user_table.name, tracked, include_staff,
                                        progress=_progress_of("migrate"))
            yield db.run(outbox.mark_snapshot, user_table.name, int(time.time() * 1000))
            log.info("initial snapshot queued: {users} users, {credentials} credential versions", **totals)
    _master_database(options, settings, work)


def _resync(options, settings):
    from twisted.internet import defer

    from components.usersync import master, snapshot

    @defer.inlineCallbacks
    def work(db, log, user_table, tracked, include_staff):
        yield db.run(master.install, user_table, tracked, include_staff, True)
        totals = yield snapshot.run(db, user_table.name, tracked, include_staff, bump=options.gap,
                                    batch=options.batch, progress=_progress_of("resync"))
        target = "every client" if not options.client else (
            "every client (the topic has no per-client filter): client {} applies what it lacks, the others "
            "already hold these versions".format(options.client))
        deletes = " and {} deletes".format(totals.get("gone", totals.get("tombstones", 0)))
        print("resync of {}: {} user events{}, {} credential versions queued for {}".format(
            user_table.name, totals["users"], deletes, totals["credentials"], target))
    _master_database(options, settings, work)


def _restored(options, settings):
    from twisted.internet import defer

    from components.usersync import restore

    @defer.inlineCallbacks
    def work(db, log, user_table, tracked, include_staff):
        totals = yield restore.restored(db, user_table, tracked, include_staff, batch=options.batch,
                                        progress=_progress_of("restored"))
        former = "was {}".format(totals["former_epoch"]) if totals["former_epoch"] else "it had none"
        print("restored master database: versions now start above {floor}; {credentials_moved} credential "
              "versions moved (every login ended: its users' tokens issued before are refused); the relay "
              "numbers its messages in epoch {epoch} ({former}); queued {users} user events, {gone} deletes of "
              "names gone since the backup, {credentials} credential versions".format(former=former, **totals))
    _master_database(options, settings, work)


def _emulator(options, settings):
    """
    Run moto server on 127.0.0.1 (the dev node's guest worker), logging only
    problems. When it cannot run (the port is taken by LocalStack or an
    emulator left running, moto is not installed), say why
    and stay idle instead of failing the node: its shutdown_on_worker_exit
    would stop the whole hub, and the components use whatever answers at
    AWS_ENDPOINT_URL, or retry. SIGINT or SIGTERM ends it with 0, so Crossbar
    does not log the guest as exited with error.
    """
    import logging
    import os
    import signal
    import socket

    exit_on_stop_signals()  # a Ctrl-C of the node (SIGINT, then the controller's SIGTERM): exit 0, not killed
    try:
        port = options.port or settings.get(usersync_settings.AWS_EMULATOR_PORT)
    except SettingsError as error:
        _stay_idle("{}: this node runs without the local SNS/SQS emulator".format(error))
    with socket.socket() as probe:
        taken = probe.connect_ex(("127.0.0.1", port)) == 0
    if taken:
        _stay_idle("127.0.0.1:{} is already in use; using the service there".format(port))
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        _stay_idle("cannot import moto ({}): this node runs without the local SNS/SQS emulator".format(error))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("MOTO_PORT", str(port))  # as moto's own server command sets it
    server = ThreadedMotoServer("127.0.0.1", port, verbose=False)
    server.start()  # serves in a thread; this one waits for the node's SIGTERM
    while True:
        signal.pause()


def _stay_idle(reason):
    """Print ``aws-emulator: <reason>`` and wait for the node to end this process (SIGTERM)."""
    import signal

    print("aws-emulator: " + reason, file=sys.stderr, flush=True)
    while True:
        signal.pause()


def main(argv=None, prog="python -m components.usersync"):
    """The command line."""
    settings = Settings()
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Exit codes: 0 done, 1 failed, 2 usage, 78 the user table, a field "
                                            "list or a setting cannot be used.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_provision = commands.add_parser("provision",
                                        help="create topic, queues, dead-letter queues, subscriptions")
    run_provision.add_argument("--clients", required=True,
                               help="comma-separated client names, e.g. shop,blog")
    run_provision.add_argument("--topic", default=settings.get(usersync_settings.USERSYNC_TOPIC_NAME))
    run_provision.add_argument("--fifo", action="store_true", help="FIFO topic and queues (.fifo)")
    run_provision.add_argument("--max-receives", type=int, default=settings.get(usersync_settings.USERSYNC_MAX_RECEIVES),
                               help="receives before a message moves to the dead-letter queue (default "
                                    "USERSYNC_MAX_RECEIVES or 5)")
    run_provision.add_argument("--visibility-timeout", type=int, default=30, help="seconds (default 30)")
    run_provision.add_argument("--json", action="store_true", help="print everything as JSON")
    run_migrate = commands.add_parser("migrate", help="create the outbox and install the capture triggers "
                                                      "(not the node's `migrate`)")
    run_resync = commands.add_parser("resync", help="queue every user of the synced set again")
    run_restored = commands.add_parser("restored", help="after restoring the master database from a backup: "
                                                        "versions above the clients', a new epoch")
    for command in (run_migrate, run_resync, run_restored):
        command.add_argument("--master-url", default=None,
                             help="default: MASTER_DATABASE_URL or the node's SQLite")
        command.add_argument("--fields", default=None, help="tracked fields (default USERSYNC_FIELDS)")
        command.add_argument("--include-staff", action="store_true", help="sync staff users (the default)")
        command.add_argument("--skip-staff", action="store_true", help="do not sync staff users")
    run_resync.add_argument("--client", default=None, help="the client the resync is for (see above)")
    run_resync.add_argument("--gap", action="store_true",
                            help="every user at its next version, deletes for vanished names "
                                 "(repairs missed writes)")
    for command in (run_resync, run_restored):
        command.add_argument("--batch", type=int, default=500, help="users per transaction (default 500)")
    run_emulator = commands.add_parser("emulator", help="run moto server on loopback (AWS_EMULATOR_PORT)")
    run_emulator.add_argument("--port", type=int, default=None)
    options = parser.parse_args(argv)
    actions = {"provision": _provision, "migrate": _migrate, "resync": _resync, "restored": _restored,
               "emulator": _emulator}
    actions[options.command](options, settings)

