"""
Signed user-sync messages without I/O: the canonical form, signing and
verification, key files and settings, the version bound, the client's own
field set, the bridge moving refused messages to the dead-letter queue, and
the provisioned queue policy's shape.
"""

import base64
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import defer, task
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from components.auth import keygen
from components.core.settings import KeyConfigError, Settings
from components.usersync import queue_consumer as bridge_module, fields, messages, provision, revocation_sync, message_signing
from tests.support.syncsigning import SIGNER, VERIFIER

ALICE_LOCKOUT = 2 ** 62 - 1


def change(**overrides):
    data = {"type": "user.changed", "action": "update", "version": 3, "ts": 1767225600000,
            "user": {"username": "bob", "first_name": "Bob", "email": "bob@example.com", "is_active": True}}
    data.update(overrides)
    return data


def signed_body(data, signer=SIGNER):
    return messages.dumps(data, signer)


def directory(testcase):
    path = tempfile.mkdtemp(prefix="hub-signing-")
    testcase.addCleanup(shutil.rmtree, path, True)
    return path


class CanonicalFormTests(unittest.SynchronousTestCase):
    def test_canonical_bytes_are_the_domain_and_sorted_compact_ascii_json_without_the_signature(self):
        """Key order, whitespace and the signature do not change the signed bytes; non-ASCII is escaped."""
        message = {"version": 2, "type": "user.changed", "user": {"username": "élodie", "email": ""}, "sig": "x"}
        self.assertEqual(message_signing.canonical(message),
                         b'reactive-usersync/1\n{"type":"user.changed","user":{"email":"","username":"\\u00e9lodie"},'
                         b'"version":2}')
        reordered = json.loads(json.dumps(dict(reversed(list(message.items()))), indent=3))
        del reordered["sig"]
        self.assertEqual(message_signing.canonical(reordered), message_signing.canonical(message))

    def test_every_key_of_the_message_is_covered(self):
        """A new key (a sequence number, a master id) changes the signed bytes like any other."""
        base = message_signing.canonical(change())
        for extra in ({"seq": 1}, {"master": "m1"}, {"kid": "0" * 16}):
            self.assertNotEqual(message_signing.canonical(change(**extra)), base)

    def test_a_number_json_cannot_carry_has_no_canonical_form(self):
        """NaN and infinity are refused, not written as non-JSON tokens."""
        self.assertRaises(ValueError, message_signing.canonical, change(ts=float("nan")))


class SignatureTests(unittest.SynchronousTestCase):
    def test_signed_message_verifies_and_comes_back_without_the_signature(self):
        """sign adds kid and sig; verify returns the message with its kid and without sig."""
        signed = SIGNER.sign(change())
        self.assertEqual(signed["kid"], SIGNER.kid)
        self.assertEqual(len(base64.urlsafe_b64decode(signed["sig"] + "==")), 64)
        self.assertEqual(VERIFIER.verify(signed), dict(change(), kid=SIGNER.kid))
        self.assertEqual(SIGNER.kid, message_signing.key_id(SIGNER.private_key.public_key()))
        self.assertRegex(SIGNER.kid, r"^[0-9a-f]{16}$")

    def test_any_change_to_a_signed_message_is_refused(self):
        """Version, action, type, ts, a user field, the key id, an added or removed key: bad signature."""
        signed = SIGNER.sign(change())
        tampered = [dict(signed, version=ALICE_LOCKOUT), dict(signed, action="delete"), dict(signed, type="x"),
                    dict(signed, ts=1), dict(signed, user=dict(signed["user"], first_name="Forged")),
                    dict(signed, user=dict(signed["user"], is_superuser=True)), dict(signed, seq=9)]
        removed = dict(signed)
        del removed["ts"]
        tampered.append(removed)
        for message in tampered:
            with self.assertRaises(message_signing.SignatureRefused, msg=message) as raised:
                VERIFIER.verify(message)
            self.assertIn("bad signature", str(raised.exception))

    def test_unsigned_foreign_and_malformed_signatures_are_refused(self):
        """No sig, an unknown key id, another key's signature under a trusted kid, garbage signatures."""
        other = message_signing.Signer(Ed25519PrivateKey.generate())
        cases = {
            "unsigned": change(),
            "unknown key": other.sign(change()),
            "bad signature": dict(other.sign(change()), kid=SIGNER.kid),
            "base64url": dict(SIGNER.sign(change()), sig="***"),
            "wrong length": dict(SIGNER.sign(change()), sig="AAAA"),
        }
        cases["not base64url text"] = dict(SIGNER.sign(change()), sig=7)
        for reason, message in cases.items():
            with self.assertRaises(message_signing.SignatureRefused, msg=reason) as raised:
                VERIFIER.verify(message)
            self.assertIn(reason.split(" text")[0], str(raised.exception))

    def test_during_a_rotation_both_keys_verify_and_afterwards_only_the_new_one(self):
        """A client holding the old and the new public key accepts both; dropping the old refuses it."""
        old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        both = message_signing.Verifier([old.public_key(), new.public_key()])
        for key in (old, new):
            self.assertEqual(both.verify(message_signing.Signer(key).sign(change()))["version"], 3)
        after = message_signing.Verifier([new.public_key()])
        self.assertRaises(message_signing.SignatureRefused, after.verify, message_signing.Signer(old).sign(change()))

    def test_only_ed25519_keys_are_taken(self):
        """An EC key is no user-sync key, and a verifier needs at least one key."""
        self.assertRaises(KeyConfigError, message_signing.Signer, ec.generate_private_key(ec.SECP256R1()))
        self.assertRaises(KeyConfigError, message_signing.Verifier, [ec.generate_private_key(ec.SECP256R1()).public_key()])
        self.assertRaises(KeyConfigError, message_signing.Verifier, [])


class ParseTests(unittest.SynchronousTestCase):
    def test_what_the_master_encodes_the_client_parses(self):
        """encode signs; parse verifies and returns the change (raw and inside an SNS envelope)."""
        body = messages.encode("update", 3, change()["user"], 5, SIGNER)
        parsed = messages.parse(body, VERIFIER)
        self.assertEqual((parsed.action, parsed.version, parsed.username, parsed.ts), ("update", 3, "bob", 5))
        enveloped = json.dumps({"Type": "Notification", "MessageId": "m", "Message": body})
        self.assertEqual(messages.parse(enveloped, VERIFIER), parsed)

    def test_not_the_masters_is_refused_before_anything_else(self):
        """Unsigned, forged, foreign-key and unparsable bodies are Refused (dead-lettered at once)."""
        forged = SIGNER.sign(change())
        forged["user"] = dict(forged["user"], first_name="Forged")
        for body in (json.dumps(change()), json.dumps(forged), signed_body(change(), message_signing.Signer(
                Ed25519PrivateKey.generate())), "not json", "[]", "x" * (messages.MAX_BYTES + 1)):
            self.assertRaises(messages.Refused, messages.parse, body, VERIFIER)

    def test_a_version_no_master_issues_is_refused_even_when_signed(self):
        """Profile and credential versions beyond 2**53-1 (the alice lockout at 2**62-1) are Refused."""
        for version in (ALICE_LOCKOUT, messages.MAX_VERSION + 1):
            with self.assertRaises(messages.Refused) as raised:
                messages.parse(signed_body(change(version=version)), VERIFIER)
            self.assertIn("beyond any version", str(raised.exception))
            credential = change(action=revocation_sync.CREDENTIAL, version=1,
                                user={"username": "alice", "version": version, "changed_ms": 1})
            with self.assertRaises(messages.Refused):
                messages.parse(signed_body(credential), VERIFIER)
        self.assertEqual(messages.parse(signed_body(change(version=messages.MAX_VERSION)), VERIFIER).version,
                         messages.MAX_VERSION)

    def test_a_client_keeps_only_the_fields_it_tracks(self):
        """is_superuser and is_staff, signed by the master, reach the change only where they are configured."""
        body = signed_body(change(user={"username": "mallory", "is_superuser": True, "is_staff": True,
                                        "first_name": "M"}))
        self.assertEqual(messages.parse(body, VERIFIER).user, {"username": "mallory", "first_name": "M"})
        tracked = fields.parse_fields("first_name,is_superuser")
        self.assertEqual(messages.parse(body, VERIFIER, tracked).user,
                         {"username": "mallory", "first_name": "M", "is_superuser": True})


class KeyFileTests(unittest.SynchronousTestCase):
    def test_keygen_writes_a_pair_the_settings_load(self):
        """keygen's usersync.key (0600) signs, usersync.pub (0644) verifies; a second run keeps them."""
        path = directory(self)
        private, public = keygen.usersync_keys(path)
        self.assertEqual((stat.S_IMODE(os.stat(private).st_mode), stat.S_IMODE(os.stat(public).st_mode)),
                         (0o600, 0o644))
        with open(private, "rb") as handle:
            first = handle.read()
        self.assertEqual(keygen.usersync_keys(path), (private, public))
        with open(private, "rb") as handle:
            self.assertEqual(handle.read(), first)
        signer = message_signing.signer_from(Settings({}, {"USERSYNC_SIGNING_KEY_FILE": private}, path))
        verifier = message_signing.verifier_from(Settings({}, {"USERSYNC_VERIFY_KEY_FILES": public}, path))
        self.assertEqual(verifier.verify(signer.sign(change()))["kid"], signer.kid)
        self.assertFalse(os.path.exists(os.path.join(path, message_signing.DEV_KEY_FILE)))

    def test_rotation_keys_come_as_a_comma_separated_list(self):
        """USERSYNC_VERIFY_KEY_FILES=old.pub,new.pub trusts both; keygen --usersync-key names the new pair."""
        path = directory(self)
        printed = io.StringIO()
        self.patch(sys, "stdout", printed)
        self.assertEqual(keygen.main([path, "--usersync-key", "usersync-2"]), 0)
        self.assertIn("USERSYNC_SIGNING_KEY_FILE={}\n".format(os.path.join(path, "usersync-2.key")),
                      printed.getvalue())
        old_private, old_public = keygen.usersync_keys(path)
        new_private, new_public = keygen.usersync_keys(path, "usersync-2")
        verifier = message_signing.verifier_from(Settings({}, {"USERSYNC_VERIFY_KEY_FILES": "{} , {},".format(
            old_public, new_public)}, path))
        for private in (old_private, new_private):
            signer = message_signing.signer_from(Settings({}, {"USERSYNC_SIGNING_KEY_FILE": private}, path))
            self.assertEqual(verifier.verify(signer.sign(change()))["kid"], signer.kid)
    test_rotation_keys_come_as_a_comma_separated_list.timeout = 120  # keygen also makes the node key

    def test_unusable_key_files_are_a_configuration_error(self):
        """A missing file, a public key as the signing key, an EC key: KeyConfigError naming the setting."""
        path = directory(self)
        private, public = keygen.usersync_keys(path)
        ec_file = os.path.join(path, "ec.pub")
        with open(ec_file, "wb") as handle:
            handle.write(keygen.public_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
        for settings in ({"USERSYNC_SIGNING_KEY_FILE": os.path.join(path, "missing.key")},
                         {"USERSYNC_SIGNING_KEY_FILE": public}):
            with self.assertRaises(KeyConfigError) as raised:
                message_signing.signer_from(Settings({}, settings, path))
            self.assertIn("USERSYNC_SIGNING_KEY_FILE", str(raised.exception))
        for value in (ec_file, private, "{},{}".format(public, os.path.join(path, "missing.pub"))):
            with self.assertRaises(KeyConfigError) as raised:
                message_signing.verifier_from(Settings({}, {"USERSYNC_VERIFY_KEY_FILES": value}, path))
            self.assertIn("USERSYNC_VERIFY_KEY_FILES", str(raised.exception))

    def test_a_dev_node_creates_one_key_its_master_and_clients_share(self):
        """Without the settings the node directory's dev key signs and verifies; created once, mode 0600."""
        path = directory(self)
        signer = message_signing.signer_from(Settings({}, {}, path))
        verifier = message_signing.verifier_from(Settings({}, {}, path))
        self.assertEqual(verifier.verify(signer.sign(change()))["kid"], signer.kid)
        self.assertEqual(message_signing.signer_from(Settings({}, {}, path)).kid, signer.kid)
        key_file = os.path.join(path, message_signing.DEV_KEY_FILE)
        self.assertEqual(stat.S_IMODE(os.stat(key_file).st_mode), 0o600)
        with open(key_file, "rb") as handle:
            self.assertIsInstance(serialization.load_pem_private_key(handle.read(), None), Ed25519PrivateKey)
        other = message_signing.verifier_from(Settings({}, {}, directory(self)))
        self.assertRaises(message_signing.SignatureRefused, other.verify, signer.sign(change()))


class RecordingQueue:
    """The SQS calls of a bridge, recorded."""

    def __init__(self, fail_send=False):
        self.sent, self.deleted, self.fail_send = [], [], fail_send

    def send_message(self, **entry):
        if self.fail_send:
            raise ConnectionError("dead-letter queue unreachable")
        self.sent.append(entry)
        return {"MessageId": "dlq-{}".format(len(self.sent))}

    def delete_message_batch(self, QueueUrl, Entries):
        self.deleted.append((QueueUrl, [entry["ReceiptHandle"] for entry in Entries]))
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}

    def change_message_visibility_batch(self, QueueUrl, Entries):
        return {"Successful": []}


class RecordingDatabase:
    """Records the batches the bridge applies; every change takes effect."""

    def __init__(self):
        self.batches = []

    def run(self, interaction, items, now_ms, table):
        self.batches.append(list(items))
        return defer.succeed(list(items))


class BridgeRefusalTests(unittest.SynchronousTestCase):
    def bridge(self, dead_letter_url="http://sqs/1/users-a-dlq", queue=None):
        queue = queue or RecordingQueue()
        db = RecordingDatabase()
        bridge = bridge_module.Bridge(queue, "http://sqs/1/users-a", db,
                                      lambda fn, *a, **kw: defer.maybeDeferred(fn, *a, **kw), task.Clock(),
                                      verifier=VERIFIER, dead_letter_url=dead_letter_url)
        bridge.running = True
        return bridge, queue, db

    def logged(self):
        lines = []
        globalLogPublisher.addObserver(lines.append)
        self.addCleanup(globalLogPublisher.removeObserver, lines.append)
        return lines

    def test_refused_messages_go_to_the_dead_letter_queue_at_once_with_one_line_each(self):
        """Forged, unsigned and huge-version messages: never applied, moved, deleted, one log line each."""
        lines = self.logged()
        bridge, queue, db = self.bridge()
        forged = SIGNER.sign(change())
        forged["user"]["first_name"] = "Forged"
        bodies = {"forged": json.dumps(forged), "unsigned": json.dumps(change()),
                  "huge": signed_body(change(version=ALICE_LOCKOUT)), "good": signed_body(change())}
        batch = [{"MessageId": name, "ReceiptHandle": "r-" + name, "Body": body} for name, body in bodies.items()]
        applied = self.successResultOf(bridge.handle(batch))
        self.assertEqual([(item.username, item.version) for item in applied], [("bob", 3)])
        self.assertEqual([[item.user.get("first_name") for item in batch] for batch in db.batches], [["Bob"]])
        self.assertEqual([entry["MessageAttributes"]["refused_message_id"]["StringValue"] for entry in queue.sent],
                         ["forged", "unsigned", "huge"])
        self.assertEqual({entry["QueueUrl"] for entry in queue.sent}, {"http://sqs/1/users-a-dlq"})
        self.assertEqual([entry["MessageBody"] for entry in queue.sent], [bodies["forged"], bodies["unsigned"],
                                                                          bodies["huge"]])
        self.assertEqual(queue.deleted, [("http://sqs/1/users-a", ["r-forged", "r-unsigned", "r-huge"]),
                                         ("http://sqs/1/users-a", ["r-good"])])
        refusals = [line for line in lines if "not the master's" in line.get("log_format", "")]
        self.assertEqual(sorted(line["id"] for line in refusals), ["forged", "huge", "unsigned"])
        self.assertEqual((bridge.refused, bridge.rejected, bridge.applied), (3, 0, 1))

    def test_refused_messages_are_held_invisible_while_a_slow_dead_letter_queue_takes_them(self):
        """The move takes longer than the visibility timeout: the messages' visibility is extended meanwhile."""
        queue, clock, pending = RecordingQueue(), task.Clock(), []
        extended = []
        queue.change_message_visibility_batch = lambda QueueUrl, Entries: extended.append(
            [entry["ReceiptHandle"] for entry in Entries])

        def blocking(fn, *args, **kwargs):
            if fn == queue.send_message:
                pending.append(defer.Deferred().addCallback(lambda _: fn(*args, **kwargs)))
                return pending[-1]
            return defer.maybeDeferred(fn, *args, **kwargs)
        bridge = bridge_module.Bridge(queue, "http://sqs/1/users-a", RecordingDatabase(), blocking, clock,
                                      verifier=VERIFIER, dead_letter_url="http://sqs/1/users-a-dlq", visibility=4)
        bridge.running = True
        done = bridge.handle([{"MessageId": "m", "ReceiptHandle": "r", "Body": json.dumps(change())}])
        clock.advance(2.1)
        self.assertEqual(extended, [["r"]])
        pending[0].callback(None)
        self.successResultOf(done)
        clock.advance(10)
        self.assertEqual((extended, queue.deleted), ([["r"]], [("http://sqs/1/users-a", ["r"])]))

    def test_a_refused_message_handed_out_again_is_only_deleted(self):
        """SQS redelivers a moved message (its visibility ran out before the delete): deleted, no second copy or line."""
        lines = self.logged()
        bridge, queue, db = self.bridge()
        body = json.dumps(change())
        self.successResultOf(bridge.handle([{"MessageId": "m", "ReceiptHandle": "r1", "Body": body}]))
        self.successResultOf(bridge.handle([{"MessageId": "m", "ReceiptHandle": "r2", "Body": body}]))
        self.assertEqual(len(queue.sent), 1)
        self.assertEqual(queue.deleted, [("http://sqs/1/users-a", ["r1"]), ("http://sqs/1/users-a", ["r2"])])
        self.assertEqual([line["id"] for line in lines if "not the master's" in line.get("log_format", "")], ["m"])
        self.assertEqual((bridge.refused, db.batches), (1, []))

    def test_a_refused_message_another_poller_is_moving_is_left_alone(self):
        """The same message in two pollers' batches at once: one moves it, the other neither moves nor deletes it."""
        queue, pending = RecordingQueue(), []

        def blocking(fn, *args, **kwargs):
            if fn == queue.send_message:
                pending.append(defer.Deferred().addCallback(lambda _: fn(*args, **kwargs)))
                return pending[-1]
            return defer.maybeDeferred(fn, *args, **kwargs)
        bridge = bridge_module.Bridge(queue, "http://sqs/1/users-a", RecordingDatabase(), blocking, task.Clock(),
                                      verifier=VERIFIER, dead_letter_url="http://sqs/1/users-a-dlq")
        bridge.running = True
        body = json.dumps(change())
        first = bridge.handle([{"MessageId": "m", "ReceiptHandle": "r1", "Body": body}])
        self.successResultOf(bridge.handle([{"MessageId": "m", "ReceiptHandle": "r2", "Body": body}]))
        self.assertEqual((len(pending), queue.deleted), (1, []))
        pending[0].callback(None)
        self.successResultOf(first)
        self.assertEqual((len(queue.sent), queue.deleted), (1, [("http://sqs/1/users-a", ["r1"])]))

    def test_the_memory_of_moved_refusals_is_bounded(self):
        """Only the last REMEMBERED_REFUSALS ids are kept."""
        bridge, queue, db = self.bridge(dead_letter_url=None)
        body = json.dumps(change())
        batch = [{"MessageId": str(n), "ReceiptHandle": str(n), "Body": body}
                 for n in range(bridge_module.REMEMBERED_REFUSALS + 5)]
        self.successResultOf(bridge.handle(batch))
        self.assertEqual(len(bridge.moved), bridge_module.REMEMBERED_REFUSALS)
        self.assertNotIn("0", bridge.moved)
        self.assertIn(str(bridge_module.REMEMBERED_REFUSALS + 4), bridge.moved)

    def test_without_a_dead_letter_queue_a_refused_message_is_deleted(self):
        """No redrive policy: logged once and deleted, nothing applied."""
        bridge, queue, db = self.bridge(dead_letter_url=None)
        self.successResultOf(bridge.handle([{"MessageId": "m", "ReceiptHandle": "r", "Body": json.dumps(change())}]))
        self.assertEqual((queue.sent, queue.deleted, db.batches), ([], [("http://sqs/1/users-a", ["r"])], []))

    def test_a_dead_letter_queue_that_cannot_be_reached_leaves_the_message(self):
        """The move failed: the message stays on the queue (SQS's own redrive still applies), not deleted."""
        bridge, queue, db = self.bridge(queue=RecordingQueue(fail_send=True))
        self.successResultOf(bridge.handle([{"MessageId": "m", "ReceiptHandle": "r", "Body": json.dumps(change())}]))
        self.assertEqual((queue.deleted, db.batches), ([], []))

    def test_fifo_dead_letter_queues_get_a_group_and_deduplication_id(self):
        """A .fifo dead-letter queue needs MessageGroupId and MessageDeduplicationId."""
        entry = bridge_module.dead_letter_entry("http://sqs/1/u-a-dlq.fifo", {"MessageId": "m1", "Body": "b"},
                                                "unsigned")
        self.assertEqual((entry["MessageGroupId"], entry["MessageDeduplicationId"]), ("refused", "m1"))
        self.assertEqual(entry["MessageAttributes"]["refused"]["StringValue"], "unsigned")


class QueuePolicyTests(unittest.SynchronousTestCase):
    def test_only_the_topic_may_send_and_everyone_else_is_denied(self):
        """Allow SNS from the topic (aws:SourceArn); an explicit Deny of SendMessage for any other source."""
        queue, topic = "arn:aws:sqs:eu-west-1:1:users-a", "arn:aws:sns:eu-west-1:1:users"
        statements = {item["Effect"]: item for item in json.loads(provision.queue_policy(queue, topic))["Statement"]}
        self.assertEqual(set(statements), {"Allow", "Deny"})
        allow, deny = statements["Allow"], statements["Deny"]
        self.assertEqual((allow["Principal"], allow["Action"], allow["Resource"], allow["Condition"]),
                         ({"Service": "sns.amazonaws.com"}, "sqs:SendMessage", queue,
                          {"ArnEquals": {"aws:SourceArn": topic}}))
        self.assertEqual((deny["Principal"], deny["Action"], deny["Resource"], deny["Condition"]),
                         ("*", "sqs:SendMessage", queue, {"ArnNotEquals": {"aws:SourceArn": topic}}))


class DeploymentKeyTests(unittest.SynchronousTestCase):
    """The shipped deployments give the master the signing key and the clients only its public half."""

    def test_compose_master_signs_and_clients_verify_with_keygens_pair(self):
        """init runs keygen into the secrets volume; the master reads usersync.key, the clients usersync.pub."""
        from tests.node.test_deploy import _compose
        services = _compose()["services"]
        keygen_dir = re.search(r"components\.auth\.keygen (\S+)", " ".join(services["init"]["command"])).group(1)
        master = services["master"]["environment"]
        self.assertEqual(master["USERSYNC_SIGNING_KEY_FILE"], os.path.join(keygen_dir, "usersync.key"))
        for name in ("client-1", "client-2"):
            environment = services[name]["environment"]
            self.assertEqual(environment["USERSYNC_VERIFY_KEY_FILES"], os.path.join(keygen_dir, "usersync.pub"))
            self.assertNotIn("USERSYNC_SIGNING_KEY_FILE", environment, name)

    def test_kubernetes_master_mounts_the_private_key_and_clients_only_the_public_one(self):
        """Secret hub-usersync: usersync.key on the master only, usersync.pub on the clients."""
        from tests.node.test_deploy import WORKLOADS, _containers, _env, _manifests, _secret_mounts
        workloads = {doc["metadata"]["name"]: doc for doc in _manifests() if doc["kind"] in WORKLOADS}
        for name, variable, item in (("master", "USERSYNC_SIGNING_KEY_FILE", "usersync.key"),
                                     ("client", "USERSYNC_VERIFY_KEY_FILES", "usersync.pub")):
            workload = workloads[name]
            container = _containers(workload)[0]
            path = _env(container)[variable]
            self.assertEqual(os.path.basename(path), item, name)
            self.assertEqual(_secret_mounts(workload, container)[os.path.dirname(path)], "hub-usersync", name)
            volume = next(volume for volume in workload["spec"]["template"]["spec"]["volumes"]
                          if volume.get("secret", {}).get("secretName") == "hub-usersync")
            self.assertEqual([entry["key"] for entry in volume["secret"]["items"]], [item], name)
