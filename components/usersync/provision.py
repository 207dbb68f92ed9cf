"""
Provisioning: the SNS topic, one SQS queue per client with its dead-letter
queue (redrive after ``max_receives`` receives), the queue policies that let
the topic deliver and deny every other sender, and the subscriptions (raw
message delivery). Every step looks before it creates, so running it again
changes nothing. Blocking boto3 calls: run it from a command line or
through a thread pool.
"""

import json
from collections import namedtuple

Plan = namedtuple("Plan", "topic clients fifo max_receives visibility_timeout")
Plan.__new__.__defaults__ = (False, 5, 30)

FIFO_SUFFIX = ".fifo"
# the last part of the master's request queue's name (so no client may be called that)
REQUESTS = "requests"


def _name(base, fifo):
    return base + FIFO_SUFFIX if fifo else base


def queue_name(topic, client, fifo=False, dead_letter=False):
    """``<topic>-<client>`` (``-dlq`` for the dead-letter queue, ``.fifo`` for FIFO)."""
    return _name("{}-{}{}".format(topic, client, "-dlq" if dead_letter else ""), fifo)


def ensure_topic(sns, name, fifo=False):
    """Create (or find) the topic; return its ARN."""
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    return sns.create_topic(Name=_name(name, fifo), Attributes=attributes)["TopicArn"]


def _queue_arn(sqs, url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_queue(sqs, name, attributes, fifo=False):
    """Create the queue, or bring an existing one's attributes up to date; return ``(url, arn)``."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        create = dict(attributes)
        if fifo:
            create["FifoQueue"] = "true"
        url = sqs.create_queue(QueueName=name, Attributes=create)["QueueUrl"]
    else:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url, _queue_arn(sqs, url)


def queue_policy(queue_arn, topic_arn):
    """
    The client queue's access policy: the topic (SNS, ``aws:SourceArn`` the
    topic) may send, and every other sender is denied explicitly, whatever
    its IAM rights say (an explicit Deny wins over any Allow; a request
    without ``aws:SourceArn`` fails ``ArnNotEquals`` and is denied too). The
    bridge still refuses anything not signed by the master.
    """
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "usersync-topic-delivers",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }, {
            "Sid": "usersync-only-the-topic-sends",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnNotEquals": {"aws:SourceArn": topic_arn}},
        }],
    }, sort_keys=True)


def dead_letter_url(sqs, attributes):
    """The URL of the dead-letter queue named in a queue's ``RedrivePolicy`` attribute, or None."""
    policy = attributes.get("RedrivePolicy")
    if not policy:
        return None
    arn = json.loads(policy)["deadLetterTargetArn"]
    _, _, _, _, account, name = arn.split(":", 5)
    return sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]


def ensure_subscription(sns, topic_arn, queue_arn):
    """Subscribe the queue to the topic once (raw delivery); return the subscription ARN."""
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    for page in paginator.paginate(TopicArn=topic_arn):
        for subscription in page.get("Subscriptions", []):
            if subscription.get("Protocol") == "sqs" and subscription.get("Endpoint") == queue_arn:
                arn = subscription["SubscriptionArn"]
                sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="RawMessageDelivery",
                                                AttributeValue="true")
                return arn
    return sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True,
                         Attributes={"RawMessageDelivery": "true"})["SubscriptionArn"]


def ensure_client(sns, sqs, topic_arn, plan, client):
    """The queue, dead-letter queue, policy and subscription of one client; return its settings."""
    dlq_url, dlq_arn = ensure_queue(sqs, queue_name(plan.topic, client, plan.fifo, dead_letter=True),
                                    {"MessageRetentionPeriod": "1209600"}, plan.fifo)
    attributes = {
        "VisibilityTimeout": str(plan.visibility_timeout),
        "ReceiveMessageWaitTimeSeconds": "20",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(plan.max_receives)}),
    }
    url, arn = ensure_queue(sqs, queue_name(plan.topic, client, plan.fifo), attributes, plan.fifo)
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": queue_policy(arn, topic_arn)})
    subscription = ensure_subscription(sns, topic_arn, arn)
    return {"queue_url": url, "queue_arn": arn, "dead_letter_queue_url": dlq_url,
            "subscription_arn": subscription}


def request_queue_name(topic):
    """
    ``<topic>-requests``: the queue the master reads the clients' snapshot
    requests from (:mod:`components.usersync.requests`); a standard queue,
    also for a FIFO topic.
    """
    if topic.endswith(FIFO_SUFFIX):
        topic = topic[:-len(FIFO_SUFFIX)]
    return "{}-{}".format(topic, REQUESTS)


def provision(sns, sqs, plan):
    """Everything in ``plan``; return ``{"topic_arn", "request_queue_url", "clients": {name: settings}}``."""
    for client in plan.clients:
        if not client or not all(c.isalnum() or c in "-_" for c in client) or client == REQUESTS:
            raise ValueError("client names are letters, digits, - and _ (not {!r}): {!r}".format(REQUESTS, client))
    topic_arn = ensure_topic(sns, plan.topic, plan.fifo)
    clients = {client: ensure_client(sns, sqs, topic_arn, plan, client) for client in plan.clients}
    requests_url, _ = ensure_queue(sqs, request_queue_name(plan.topic), {"MessageRetentionPeriod": "3600"})
    return {"topic_arn": topic_arn, "request_queue_url": requests_url, "clients": clients}


def settings_lines(result):
    """The environment settings for the master and each client, as shell lines."""
    lines = ["# master", "SNS_TOPIC_ARN={}".format(result["topic_arn"]),
             "#   snapshot requests of the clients: {}".format(result["request_queue_url"])]
    for client, settings in sorted(result["clients"].items()):
        lines += ["# client {}".format(client), "SQS_QUEUE_URL={}".format(settings["queue_url"]),
                  "#   dead-letter queue: {}".format(settings["dead_letter_queue_url"])]
    return lines
