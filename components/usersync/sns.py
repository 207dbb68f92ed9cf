"""
Publishing outbox rows to SNS: ``PublishBatch`` with 10 entries per call;
FIFO topics get the username as message group and ``username:version`` as
deduplication id, so each user's changes stay in order and a resend is
dropped. Every body is signed with the master's key (``signer``, see
:mod:`components.usersync.signing`). Blocking boto3 calls: run it through
:class:`aws.BlockingPool`.
"""

import hashlib
import json

from components.usersync import messages, provision, revocations


def payload_key(action, payload):
    """What makes an outbox event unique beside its user and version: nothing for profile changes."""
    if action == revocations.LOGOUT:
        return "logout:" + str(payload.get("sid"))
    if action == revocations.CREDENTIAL:
        return "credential"
    return ""


class SnsPublisher:
    """Blocking: ``publish(rows)`` -> ``(sent_ids, failed_ids, error)`` for outbox rows."""

    def __init__(self, sns, topic_arn, signer):
        self.sns = sns
        self.topic_arn = topic_arn
        self.signer = signer
        self.fifo = topic_arn.endswith(provision.FIFO_SUFFIX)

    def entry(self, index, row):
        _, username, action, version, payload, created_ms = row
        body = messages.encode(action, int(version), json.loads(payload), int(created_ms), self.signer)
        entry = {"Id": str(index), "Message": body,
                 "MessageAttributes": messages.attributes(action, int(version), username)}
        if self.fifo:
            entry["MessageGroupId"] = username
            # profile changes by user and version; revocations by what they revoke (their own version space)
            key = payload_key(action, json.loads(payload))
            dedupe = "{}:{}".format(username, version)
            if key:
                dedupe = hashlib.sha256("{}:{}".format(dedupe, key).encode("utf-8")).hexdigest()
            entry["MessageDeduplicationId"] = dedupe[:128]
        return entry

    def __call__(self, rows):
        sent, failed, error = [], [], None
        for start in range(0, len(rows), 10):
            chunk = rows[start:start + 10]
            try:
                response = self.sns.publish_batch(
                    TopicArn=self.topic_arn,
                    PublishBatchRequestEntries=[self.entry(index, row) for index, row in enumerate(chunk)])
            except Exception as exc:  # botocore: endpoint down, throttled, denied
                failed += [row[0] for row in rows[start:]]
                return sent, failed, exc
            accepted = {int(item["Id"]) for item in response.get("Successful", [])}
            for index, row in enumerate(chunk):
                (sent if index in accepted else failed).append(row[0])
            if response.get("Failed"):
                error = RuntimeError("SNS refused: {}".format(response["Failed"][0]))
        return sent, failed, error
