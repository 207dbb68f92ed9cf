"""
``manage.py hub_push_relay [--once] [--interval S]``: sends what the push
outbox holds (events whose on-commit send failed, or whose process died
after the commit), oldest first, until stopped; ``--once`` empties it once
and exits 1 when an event could not be sent.
"""

import logging
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from components.django_hub import push_outbox
from components.django_hub.commit_push import publisher

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Send the events the push outbox holds (HUB_PUSH_OUTBOX) to the hub."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="empty the outbox once, then exit")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between rounds (default 2)")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="the database alias of the outbox")

    def handle(self, once=False, interval=2.0, database=DEFAULT_DB_ALIAS, **options):
        sender = publisher()
        log.info("push relay: sending the outbox of database %r", database)
        while True:
            sent = push_outbox.deliver(sender, database)
            if once and sent is None:
                raise CommandError("an event could not be sent; it stays in the outbox")
            if once and not sent:
                return
            if not sent:
                time.sleep(interval)
