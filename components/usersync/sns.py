"""
Publishing outbox rows to SNS: ``PublishBatch`` with 10 entries per call;
on a standard topic, when ten or more rows wait, consecutive rows go in
packs of up to ``PACK_EVENTS`` events per message (``messages.encode_pack``: a snapshot of 10,000 users is
200 messages, not 10,000); FIFO topics get the username as message group and ``username:version`` as
deduplication id, so each user's changes stay in order and a resend is
dropped. Every body is signed with the master's key (``signer``, see
:mod:`components.usersync.message_signing`). Blocking boto3 calls: run it through
:class:`aws.BlockingPool`.
"""

import hashlib
import json
import time

from components.usersync import messages, provision, revocation_sync


def payload_key(action, payload):
    """What makes an outbox event unique beside its user and version: nothing for profile changes."""
    if action == revocation_sync.LOGOUT:
        return "logout:" + str(payload.get("sid"))
    if action == revocation_sync.CREDENTIAL:
        return "credential"
    if action == messages.SYNCED:
        return "covers:" + str(payload.get("covers"))
    return ""


# the FIFO message group of the master's control messages (they name no user)
CONTROL_GROUP = "_sync"
# events per message on a standard topic, and about the most bytes of one (ten of them per PublishBatch call,
# which SNS limits to 256 KiB in all; a client takes up to messages.MAX_BYTES)
PACK_EVENTS = 50
# fewer waiting events than this go one per message (live traffic); packs are for snapshots and bursts
PACK_MIN = 10
PACK_BYTES = 24 * 1024
# seconds a positive subscription count is trusted (a subscription gone meanwhile leaves a hole clients heal)
SUBSCRIPTIONS_FRESH = 1.0
# what SQS answers for a queue that does not exist (the modern JSON protocol's and the query protocol's code)
NO_QUEUE = frozenset(("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"))


def queue_exists(sqs, queue_arn):
    """
    Whether the SQS queue ``queue_arn`` (a subscription's endpoint) exists
    (blocking). True when it cannot be told (another account's queue this
    node may not look up, a malformed ARN): only a queue known to be gone
    does not count.
    """
    parts = queue_arn.split(":")
    if len(parts) != 6 or not parts[5]:
        return True
    try:
        sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])
    except Exception as error:  # botocore's ClientError; its code says whether the queue is gone
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        return code not in NO_QUEUE
    return True


class SnsPublisher:
    """Blocking: ``publish(rows)`` -> ``(sent_ids, failed_ids, error)`` for outbox rows."""

    def __init__(self, sns, topic_arn, signer, sqs=None):
        self.sns = sns
        self.sqs = sqs
        self.topic_arn = topic_arn
        self.signer = signer
        self.fifo = topic_arn.endswith(provision.FIFO_SUFFIX)
        self.reply = ""  # the request queue announced in beacons (set by the master once it knows it)
        self._subscriptions = (0.0, 0)

    def subscriptions(self):
        """
        How many confirmed subscriptions the topic has whose endpoint can
        receive (a pending confirmation receives nothing; with ``sqs``, an SQS
        subscription whose queue was deleted neither: SNS keeps it and
        delivers to nowhere); a count above zero is reused for
        ``SUBSCRIPTIONS_FRESH`` seconds, so a busy relay stays far below SNS's
        request rate for this call.
        """
        counted_at, count = self._subscriptions
        if count and time.monotonic() - counted_at < SUBSCRIPTIONS_FRESH:
            return count
        count = 0
        for page in self.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=self.topic_arn):
            count += sum(1 for item in page.get("Subscriptions", [])
                         if item.get("SubscriptionArn", "").startswith("arn:") and self._receives(item))
        self._subscriptions = (time.monotonic(), count)
        return count

    def _receives(self, subscription):
        if self.sqs is None or subscription.get("Protocol") != "sqs":
            return True
        return queue_exists(self.sqs, subscription.get("Endpoint", ""))

    def beacon(self, epoch, high):
        """Publish the relay's beacon (see :mod:`components.usersync.outbox_relay`)."""
        body = messages.beacon(epoch, high, self.reply, int(time.time() * 1000), self.signer)
        options = {"MessageGroupId": CONTROL_GROUP,
                   "MessageDeduplicationId": "beacon:{}:{}".format(high, time.time())} if self.fifo else {}
        self.sns.publish(TopicArn=self.topic_arn, Message=body,
                         MessageAttributes=messages.attributes(messages.BEACON, high, ""), **options)

    def entry(self, index, row):
        """The PublishBatch entry of an outbox row (with its sequence number and epoch when numbered)."""
        _, username, action, version, payload, created_ms = row[:6]
        seq, epoch = row[6:8] if len(row) >= 8 else (None, None)
        body = messages.encode(action, int(version), json.loads(payload), int(created_ms), self.signer,
                               seq=seq, epoch=epoch)
        entry = {"Id": str(index), "Message": body,
                 "MessageAttributes": messages.attributes(action, int(version), username)}
        if self.fifo:
            entry["MessageGroupId"] = username or CONTROL_GROUP
            # profile changes by user and version; revocations by what they revoke (their own version space)
            key = payload_key(action, json.loads(payload))
            dedupe = "{}:{}".format(username, version)
            if key:
                dedupe = hashlib.sha256("{}:{}".format(dedupe, key).encode("utf-8")).hexdigest()
            entry["MessageDeduplicationId"] = dedupe[:128]
        return entry

    def _packs(self, rows):
        """
        ``rows`` in messages: consecutive rows packed when ``PACK_MIN`` or more
        wait (a standard topic only; a FIFO topic keeps one message per row,
        in its user's group), at most
        ``PACK_EVENTS`` events and about ``PACK_BYTES`` per message, so ten
        stay within one PublishBatch call's limit.
        """
        if self.fifo or len(rows) < PACK_MIN:
            return [[row] for row in rows]
        packs, size = [[]], 0
        for row in rows:
            length = len(json.dumps(json.loads(row[4]))) + 200  # the payload as sent (ASCII escapes), other keys
            if packs[-1] and (len(packs[-1]) >= PACK_EVENTS or size + length > PACK_BYTES):
                packs.append([])
                size = 0
            packs[-1].append(row)
            size += length
        return [pack for pack in packs if pack]

    def pack_entry(self, index, pack):
        """The PublishBatch entry of one pack of rows (a single row is sent as itself)."""
        if len(pack) == 1:
            return self.entry(index, pack[0])
        events = []
        for row in pack:
            _, _, action, version, payload, created_ms = row[:6]
            seq, epoch = row[6:8] if len(row) >= 8 else (None, None)
            events.append(messages.event(action, int(version), json.loads(payload), int(created_ms), seq, epoch))
        return {"Id": str(index), "Message": messages.encode_pack(events, self.signer),
                "MessageAttributes": messages.attributes(messages.PACK, len(pack), "")}

    def __call__(self, rows):
        sent, failed, error = [], [], None
        packs = self._packs(rows)
        for start in range(0, len(packs), 10):
            chunk = packs[start:start + 10]
            try:
                response = self.sns.publish_batch(
                    TopicArn=self.topic_arn,
                    PublishBatchRequestEntries=[self.pack_entry(index, pack) for index, pack in enumerate(chunk)])
            except Exception as exc:  # botocore: endpoint down, throttled, denied
                failed += [row[0] for pack in packs[start:] for row in pack]
                return sent, failed, exc
            accepted = {int(item["Id"]) for item in response.get("Successful", [])}
            for index, pack in enumerate(chunk):
                (sent if index in accepted else failed).extend(row[0] for row in pack)
            if response.get("Failed"):
                error = RuntimeError("SNS refused: {}".format(response["Failed"][0]))
        return sent, failed, error
