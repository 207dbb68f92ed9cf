"""
Command line of the user sync:

    python -m components.usersync provision --clients a,b [--topic reactive-users] [--fifo]
        [--max-receives 5] [--visibility-timeout 30] [--json]
    python -m components.usersync migrate [--master-url URL] [--fields username,email,...] [--include-staff]
    python -m components.usersync emulator [--port 4566]

``provision`` talks to AWS (standard credential chain, ``AWS_DEFAULT_REGION``)
or to the emulator at ``AWS_ENDPOINT_URL``, and prints the settings to use.
``migrate`` creates the outbox tables and (re)installs the capture triggers.
``emulator`` runs the local SNS/SQS emulator (moto server) on loopback; the
dev node starts it as a guest worker.
"""

import argparse
import json
import sys

from components.core.settings import Settings, SettingsError


def _provision(options, settings):
    from components.usersync import aws, provision
    endpoint = settings.text("AWS_ENDPOINT_URL") or None
    region = aws.region_for(settings=settings)
    sns = aws.make_client("sns", endpoint, region, attempts=4)
    sqs = aws.make_client("sqs", endpoint, region, attempts=4)
    clients = [name.strip() for name in options.clients.split(",") if name.strip()]
    plan = provision.Plan(options.topic, clients, options.fifo, options.max_receives,
                          options.visibility_timeout)
    result = provision.provision(sns, sqs, plan)
    if options.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print("\n".join(provision.settings_lines(result)))


def _migrate(options, settings):
    from twisted.internet import defer, task
    from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

    from components.db.database import Database
    from components.db.migrations import migrate_all
    from components.usersync import fields, master, outbox

    tracked = fields.parse_fields(options.fields if options.fields is not None
                                  else settings.text("USERSYNC_FIELDS"))
    include_staff = options.include_staff or settings.bool("USERSYNC_INCLUDE_STAFF", False)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    log = Logger(namespace="usersync")

    @defer.inlineCallbacks
    def run(reactor):
        db = Database(options.master_url or settings.database_url("master"))
        try:
            yield migrate_all(db, master.SCHEMAS, log)
            yield db.run(outbox.install, tracked, include_staff)
            log.info("capture triggers installed on {db!r}: fields {fields}, staff {staff}", db=db,
                     fields=",".join(tracked), staff="included" if include_staff else "skipped")
        finally:
            db.close()
    task.react(run)


def _emulator(options, settings):
    """
    Run moto server on 127.0.0.1 (the dev node's guest worker), logging only
    problems. When it cannot run (the port is taken by LocalStack or an
    emulator left running, moto is not installed, the server fails), say why
    and stay idle instead of failing the node: its shutdown_on_worker_exit
    would stop the whole hub, and the components use whatever answers at
    AWS_ENDPOINT_URL, or retry.
    """
    import logging
    import socket

    try:
        port = options.port or settings.int("AWS_EMULATOR_PORT", 4566, minimum=1, maximum=65535)
    except SettingsError as error:
        _stay_idle("{}: this node runs without the local SNS/SQS emulator".format(error))
    with socket.socket() as probe:
        taken = probe.connect_ex(("127.0.0.1", port)) == 0
    if taken:
        _stay_idle("127.0.0.1:{} is already in use; using the service there".format(port))
    try:
        from moto.server import main as moto_main
    except ImportError as error:
        _stay_idle("cannot import moto ({}): this node runs without the local SNS/SQS emulator".format(error))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        moto_main(["-H", "127.0.0.1", "-p", str(port)])
    except (Exception, SystemExit) as error:
        if isinstance(error, SystemExit) and not error.code:
            raise
        _stay_idle("moto server on 127.0.0.1:{} stopped ({!r}): this node runs without the local SNS/SQS "
                   "emulator".format(port, error))


def _stay_idle(reason):
    """Print ``aws-emulator: <reason>`` and wait for the node to end this process (SIGTERM)."""
    import signal

    print("aws-emulator: " + reason, file=sys.stderr, flush=True)
    while True:
        signal.pause()


def main(argv=None):
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m components.usersync", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_provision = commands.add_parser("provision",
                                        help="create topic, queues, dead-letter queues, subscriptions")
    run_provision.add_argument("--clients", required=True,
                               help="comma-separated client names, e.g. shop,blog")
    run_provision.add_argument("--topic", default=settings.text("USERSYNC_TOPIC_NAME", "reactive-users"))
    run_provision.add_argument("--fifo", action="store_true", help="FIFO topic and queues (.fifo)")
    run_provision.add_argument("--max-receives", type=int, default=5,
                               help="receives before a message moves to the dead-letter queue (default 5)")
    run_provision.add_argument("--visibility-timeout", type=int, default=30, help="seconds (default 30)")
    run_provision.add_argument("--json", action="store_true", help="print everything as JSON")
    run_migrate = commands.add_parser("migrate", help="create the outbox and install the capture triggers")
    run_migrate.add_argument("--master-url", default=None,
                             help="default: MASTER_DATABASE_URL or the node's SQLite")
    run_migrate.add_argument("--fields", default=None, help="tracked fields (default USERSYNC_FIELDS)")
    run_migrate.add_argument("--include-staff", action="store_true", help="sync staff users too")
    run_emulator = commands.add_parser("emulator", help="run moto server on loopback (AWS_EMULATOR_PORT)")
    run_emulator.add_argument("--port", type=int, default=None)
    options = parser.parse_args(argv)
    {"provision": _provision, "migrate": _migrate, "emulator": _emulator}[options.command](options, settings)


if __name__ == "__main__":
    main()
