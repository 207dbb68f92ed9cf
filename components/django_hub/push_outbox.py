"""
The push outbox (``HUB_PUSH_OUTBOX``): ``write`` adds an event to
:class:`~components.django_hub.models.PendingPush` in the caller's
transaction; ``deliver`` sends pending rows, oldest first, and deletes each
one the hub took or refused for good, stopping at the first that failed (it
stays for the next round). On PostgreSQL a row is locked while it is sent
(``SKIP LOCKED``), so the on-commit send and ``manage.py hub_push_relay``
never send the same row at once.
"""

import logging

from django.db import transaction

from components.django_hub.app_publisher import FAILED, REFUSED
from components.django_hub.models import PendingPush

log = logging.getLogger(__name__)


def write(topic, body, using):
    """Add the event (``body``: the request bytes) in the current transaction of ``using``; its row id."""
    return PendingPush.objects.using(using).create(topic=topic, body=body.decode("utf-8")).id


def deliver(publisher, using, ids=None, limit=100):
    """Send up to ``limit`` pending rows (only ``ids`` when given); how many left the outbox, or None when one
    failed (it and those after it stay)."""
    rows = PendingPush.objects.using(using).order_by("id")
    if ids is not None:
        rows = rows.filter(id__in=ids)
    done = 0
    for row_id in list(rows.values_list("id", flat=True)[:limit]):
        with transaction.atomic(using=using):
            locked = PendingPush.objects.using(using).select_for_update(skip_locked=True)
            row = locked.filter(id=row_id).first()
            if row is None:
                continue   # sent meanwhile, or being sent by another process
            outcome = publisher.send(row.topic, row.body.encode("utf-8"))
            if outcome == FAILED:
                log.warning("push %s: left in the outbox (row %d) for the relay", row.topic, row.id)
                return None
            if outcome == REFUSED:
                log.error("push %s: removed from the outbox (row %d), the hub refused it", row.topic, row.id)
            row.delete()
            done += 1
    return done
