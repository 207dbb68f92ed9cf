"""
Reactive users: changes to the master's ``auth_user`` table reach every
client application's ``auth_user`` table and the user's own browser.

    master DB --trigger--> usersync_outbox --relay (outbox_relay.py)--> SNS topic
      --> one SQS queue per client (+ dead-letter queue)
      --> queue consumer (queue_consumer.py) --> client DB (versioned, idempotent)
      --> WAMP ``users.changed`` to that user's sessions only

Modules: ``fields`` (what is tracked and how it is validated), ``messages``
(the wire format), ``outbox`` (capture triggers on the master), ``replica``
(the versioned apply on a client), ``snapshot`` (existing users queued as
events: the initial snapshot, ``resync``, the gap repair), ``watchdog``
(lost user-table triggers found, reinstalled and the gap resynced), ``aws``
(boto3 clients and their thread pool), ``provision`` (topic, queues,
subscriptions), ``sns`` (the publisher), ``outbox_relay`` and ``pglisten`` (outbox
to SNS), ``admin`` (the admin procedures' validation), ``queue_consumer`` (SQS
to the client database), ``master`` and ``client_side`` (the router components),
``user_event_relay`` (per-user events across linked nodes), ``revocation_sync``
(revocation facts carried to the clients), ``message_signing`` (the master's
signatures), ``cli`` (the command line: ``reactive-hub sync``, ``python -m components.usersync``).
"""

CHANGED = "users.changed"
ME = "users.me"
# backend-only carrier of per-user events between linked nodes (see user_event_relay)
RELAY = "users.relay"
SAVE = "master.users.save"
DELETE = "master.users.delete"
LIST = "master.users.list"
