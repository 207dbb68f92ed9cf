"""
``manage.py hub_push TOPIC [--to-user NAME ...] [--json-args LIST]
[--json-kwargs OBJECT]``: publish one event through the hub now, as
``push`` does after a commit (same settings, same retries), from a shell
or a script; not through the outbox.

Exit codes: 0 sent; 1 the hub refused it (the message says why: a topic
outside the application's prefix, a private application without
``--to-user`` ...); 2 a malformed command line or JSON; 4 the hub did not
take it after every retry; 78 push is not configured.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from components.core.exit_codes import CONFIG, FAILURE, USAGE
from components.core.settings import SettingsError
from components.django_hub import hub_probe
from components.django_hub.app_publisher import FAILED, REFUSED
from components.django_hub.commit_push import publisher


def _json(text, kind, option):
    try:
        value = json.loads(text)
    except ValueError as error:
        raise CommandError("{} is not JSON: {}".format(option, error), returncode=USAGE)
    if not isinstance(value, kind):
        raise CommandError("{} must be a JSON {}".format(option, "list" if kind is list else "object"),
                           returncode=USAGE)
    return value


class Command(BaseCommand):
    help = "Publish one event through the hub now (HUB_PUSH_URL, HUB_APP_KEY, HUB_APP_SECRET)."

    def add_arguments(self, parser):
        parser.add_argument("topic", help="the topic, under the application's prefix app.<name>.")
        parser.add_argument("--to-user", action="append", dest="to_users", metavar="NAME",
                            help="deliver to this user's sessions only (repeat for more users)")
        parser.add_argument("--json-args", default="[]", metavar="LIST", help="the positional arguments")
        parser.add_argument("--json-kwargs", default="{}", metavar="OBJECT", help="the keyword arguments")

    def handle(self, topic, to_users=None, json_args="[]", json_kwargs="{}", **options):
        args = _json(json_args, list, "--json-args")
        kwargs = _json(json_kwargs, dict, "--json-kwargs")
        try:
            sender = publisher()
        except SettingsError as error:
            raise CommandError(str(error), returncode=CONFIG)
        outcome = sender.send(topic, sender.body(topic, args, kwargs, to_users))
        if outcome == REFUSED:
            raise CommandError("the hub refused {} (the log line above says why)".format(topic),
                               returncode=FAILURE)
        if outcome == FAILED:
            raise CommandError("the hub at {} did not take {}".format(sender.url, topic),
                               returncode=hub_probe.UNAVAILABLE)
        self.stdout.write("sent {}{}".format(topic, " to " + ", ".join(to_users) if to_users else ""))
