"""
The push outbox: an event ``push`` writes in the transaction of the data it
announces (``HUB_PUSH_OUTBOX``), so it commits or rolls back with it; the
row is deleted once the hub took the event (or refused it for good).
"""

from django.db import models


class PendingPush(models.Model):
    """One event not yet taken by the hub: its topic and its ``POST /apps/publish`` body."""

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=255)
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "django_hub_push_outbox"
        ordering = ("id",)
