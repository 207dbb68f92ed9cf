"""
User sync's settings: the SNS topic and SQS queues, the AWS endpoint and
region, the tracked fields, message signing keys, and the relay's and the
consumer's pace.
"""

from components.core.settings import (
    BOOL, CLI, CLIENT, DEV, DURATION, FILE, FILES, INT, MASTER, TEXT, URL, Setting)
from components.usersync.fields import parse_fields

_MASTER = (DEV, MASTER)
_CLIENT = (DEV, CLIENT)
_BOTH = (DEV, MASTER, CLIENT)

SNS_TOPIC_ARN = Setting("SNS_TOPIC_ARN", TEXT, "the user-change topic; the master's relay runs when set",
                        roles=_MASTER + (CLI,), shown="unset: relay off (admin RPCs still on)")
SQS_QUEUE_URL = Setting("SQS_QUEUE_URL", URL, "this client's queue; the queue consumer runs when set", roles=_BOTH,
                        shown="unset: consumer off (`users.me` still on)")
AWS_ENDPOINT_URL = Setting("AWS_ENDPOINT_URL", URL, "SNS/SQS endpoint (an emulator such as moto)",
                           roles=_BOTH + (CLI,), shown="AWS (`make start`: the local emulator)")
AWS_DEFAULT_REGION = Setting("AWS_DEFAULT_REGION", TEXT, "SNS/SQS region", roles=_BOTH + (CLI,),
                             shown="`AWS_REGION`, else the region in the ARN / queue URL, else `us-east-1`")
AWS_REGION = Setting("AWS_REGION", TEXT, "SNS/SQS region when `AWS_DEFAULT_REGION` is unset", roles=_BOTH + (CLI,),
                     shown="the region in the ARN / queue URL, else `us-east-1`")
AWS_EMULATOR_PORT = Setting("AWS_EMULATOR_PORT", INT, "loopback port of the dev node's moto server (guest worker "
                            "`aws-emulator`)", default=4566, minimum=1, maximum=65535, roles=(DEV, CLI))
USERSYNC_PROVISION = Setting("USERSYNC_PROVISION", BOOL, "create the topic (master) and the queue "
                             "`<topic>-<client>` (client) on start", default=False, roles=_BOTH,
                             shown="off (`make start`: on)")
USERSYNC_TOPIC_NAME = Setting("USERSYNC_TOPIC_NAME", TEXT, "the topic name provisioning uses",
                              default="reactive-users", roles=_BOTH + (CLI,))
USERSYNC_CLIENT_NAME = Setting("USERSYNC_CLIENT_NAME", TEXT, "this client's name in its queue's name "
                               "`<topic>-<client>`", default="dev", roles=_CLIENT)
USERSYNC_FIELDS = Setting(
    "USERSYNC_FIELDS", TEXT, "tracked fields (`username` always; choose from first_name, last_name, email, "
    "is_active, is_staff, is_superuser): what the master sends and what a client stores", default=parse_fields(""),
    parse=parse_fields, roles=_BOTH + (CLI,), shown="`username,first_name,last_name,email,is_active`")
USERSYNC_SIGNING_KEY_FILE = Setting(
    "USERSYNC_SIGNING_KEY_FILE", FILE, "master: PEM Ed25519 private key that signs every user-sync message "
    "(`reactive-hub keys DIR` writes `DIR/usersync.key`)", secret=True, roles=_MASTER,
    shown="a dev key created on first start in `<node dir>/secrets/usersync_signing.key`: wrong for a split")
USERSYNC_VERIFY_KEY_FILES = Setting(
    "USERSYNC_VERIFY_KEY_FILES", FILES, "client: comma-separated PEM Ed25519 public keys whose signatures it "
    "accepts (the new and the old key during a rotation)", roles=_CLIENT,
    shown="the public half of the node directory's dev key")
USERSYNC_INCLUDE_STAFF = Setting("USERSYNC_INCLUDE_STAFF", BOOL, "sync staff users (`is_staff`, so every Django "
                                 "superuser) too", default=True, roles=_MASTER + (CLI,))
USERSYNC_TRIGGER_CHECK = Setting("USERSYNC_TRIGGER_CHECK", DURATION, "how often the master's watchdog looks for the "
                                 "user table and its triggers", default=10.0, minimum=0.05, maximum=30,
                                 roles=_MASTER)
USERSYNC_RELAY_BATCH = Setting("USERSYNC_RELAY_BATCH", INT, "events per relay transaction", default=100, minimum=1,
                               maximum=1000, roles=_MASTER)
USERSYNC_POLL_INTERVAL = Setting("USERSYNC_POLL_INTERVAL", DURATION, "outbox poll seconds on SQLite (PostgreSQL "
                                 "is notified)", default=0.2, minimum=0.01, roles=_MASTER)
USERSYNC_BACKOFF_MAX = Setting("USERSYNC_BACKOFF_MAX", DURATION, "longest retry delay of the relay",
                               default=30.0, minimum=0.1, roles=_MASTER)
USERSYNC_BEACON = Setting("USERSYNC_BEACON", DURATION, "master: seconds between the relay's beacons (the highest "
                          "message number sent)", default=10.0, minimum=0.1, maximum=3600, roles=_MASTER)
USERSYNC_POLLERS = Setting("USERSYNC_POLLERS", INT, "parallel long polls per client", default=2, minimum=1,
                           maximum=64, roles=_CLIENT)
USERSYNC_WAIT = Setting("USERSYNC_WAIT", INT, "long-poll seconds", default=20, minimum=0, maximum=20,
                        roles=_CLIENT)
USERSYNC_PUSH = Setting("USERSYNC_PUSH", BOOL, "publish `users.changed` and serve `users.me`", default=True,
                        roles=_CLIENT)
USERSYNC_MAX_RECEIVES = Setting("USERSYNC_MAX_RECEIVES", INT, "deliveries of one queue message before it goes to "
                                "the dead-letter queue", default=5, minimum=1, roles=_CLIENT)
USERSYNC_GAP_GRACE = Setting("USERSYNC_GAP_GRACE", DURATION, "client: seconds a missing message number may last "
                             "before the client asks the master for a snapshot", default=10.0, minimum=0.1,
                             maximum=3600, roles=_CLIENT)
USERSYNC_REQUEST_QUEUE_URL = Setting("USERSYNC_REQUEST_QUEUE_URL", URL, "the queue where clients ask the master for "
                                     "snapshots", roles=_BOTH,
                                     shown="`<topic>-requests` (provisioned; clients learn it from the beacons)")

SETTINGS = (SNS_TOPIC_ARN, SQS_QUEUE_URL, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_REGION, AWS_EMULATOR_PORT,
            USERSYNC_PROVISION, USERSYNC_TOPIC_NAME, USERSYNC_CLIENT_NAME, USERSYNC_FIELDS,
            USERSYNC_SIGNING_KEY_FILE, USERSYNC_VERIFY_KEY_FILES, USERSYNC_INCLUDE_STAFF, USERSYNC_TRIGGER_CHECK,
            USERSYNC_RELAY_BATCH, USERSYNC_POLL_INTERVAL, USERSYNC_BACKOFF_MAX, USERSYNC_BEACON, USERSYNC_POLLERS,
            USERSYNC_WAIT, USERSYNC_PUSH, USERSYNC_MAX_RECEIVES, USERSYNC_GAP_GRACE, USERSYNC_REQUEST_QUEUE_URL)
