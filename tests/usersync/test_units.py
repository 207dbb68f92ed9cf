"""
Pure parts of the user sync: the message parser, field rules, the admin
profile check, backoff and wake-up timing (injected clock), event payloads.
"""

import json

from twisted.internet import defer, task
from twisted.trial import unittest

from components.core.settings import Settings
from components.db.database import StorageUnavailable
from components.usersync import admin, aws, queue_consumer as bridge_module, fields, messages, sns
from tests.support.syncsigning import SIGNER, VERIFIER


class Trusting:
    """For the field rules alone: takes every message as the master's (signatures: test_signing)."""

    def verify(self, message):
        return message


def parse(text):
    return messages.parse(text, Trusting())


def body(**overrides):
    data = {"type": "user.changed", "action": "update", "version": 3, "ts": 5,
            "user": {"username": "ann", "first_name": "Ann", "is_active": True}}
    data.update(overrides)
    return json.dumps(data)


class MessageParseTests(unittest.SynchronousTestCase):
    def test_raw_and_enveloped_bodies_parse_alike(self):
        """A raw body and the same body inside an SNS notification envelope give the same change."""
        raw = parse(body())
        enveloped = parse(json.dumps({"Type": "Notification", "MessageId": "m", "Message": body()}))
        self.assertEqual(raw, enveloped)
        self.assertEqual((raw.action, raw.version, raw.username, raw.ts), ("update", 3, "ann", 5))

    def test_revocations_parse_for_any_name_the_master_holds(self):
        """A revocation names whatever the master table holds (no Django name rules: they would fail open)."""
        for name in ("ann", "lr o'brien", "élodie"):
            revocation = parse(json.dumps({"type": "user.changed", "action": "credential", "version": 4,
                                                    "ts": 1, "user": {"username": name, "version": 4,
                                                                      "changed_ms": 9}}))
            self.assertEqual((revocation.action, revocation.username, revocation.facts["version"]),
                             ("credential", name, 4))
        for bad in ("", "a\nb", "x" * 151, 7):
            with self.assertRaises(messages.MessageError):
                parse(json.dumps({"type": "user.changed", "action": "logout", "version": 1, "ts": 1,
                                           "user": {"username": bad, "sid": "s", "expires_ms": 1}}))

    def test_untracked_fields_are_dropped(self):
        """Fields that are not syncable (a password, anything new) never reach the change."""
        change = parse(body(user={"username": "ann", "password": "pbkdf2$...", "shoe_size": 9}))
        self.assertEqual(change.user, {"username": "ann"})

    def test_malformed_bodies_are_refused_with_a_reason(self):
        """Non-JSON, missing fields, wrong types, unknown actions, oversized, bad usernames: refused."""
        cases = {
            "not json": "not JSON",
            "[1, 2]": "not a JSON object",
            json.dumps({"type": "user.changed"}): "unknown action",
            body(type="other"): "type",
            body(action="rename"): "unknown action",
            body(version="3"): "version",
            body(version=True): "version",
            body(version=0): "version",
            body(ts="now"): "ts",
            body(user=["ann"]): "user must be an object",
            body(user={"first_name": "Ann"}): "username is missing",
            body(user={"username": "not valid!"}): "username",
            body(user={"username": "ann", "is_active": "yes"}): "is_active",
            body(user={"username": "ann", "first_name": "x" * 151}): "first_name",
            body(user={"username": "ann", "email": 7}): "email",
            json.dumps({"Type": "Notification", "Message": {"nested": "object"}}): "envelope",
            "x" * (messages.MAX_BYTES + 1): "larger than",
        }
        for text, reason in cases.items():
            with self.assertRaises(messages.MessageError, msg=text[:60]) as raised:
                parse(text)
            self.assertIn(reason, str(raised.exception))

    def test_encode_round_trips(self):
        """What the relay encodes, the bridge parses back."""
        text = messages.encode("delete", 9, {"username": "a.b@c+d-e_f", "email": ""}, 123, SIGNER)
        self.assertEqual(messages.parse(text, VERIFIER), messages.Change("delete", 9, "a.b@c+d-e_f",
                                                               {"username": "a.b@c+d-e_f", "email": ""}, 123))

    def test_control_characters_and_surrogates_are_refused(self):
        """A NUL or other C0 control (tab aside) or a lone surrogate in any text field is refused, not applied."""
        for field in ("username", "first_name", "last_name", "email"):
            for bad in ("a\x00b", "a\x01", "line\nbreak", "cr\r", "esc\x1b", "\ud800"):
                user = {"username": "ann", field: bad}
                with self.assertRaises(messages.MessageError, msg=(field, bad)) as raised:
                    parse(body(user=user))
                self.assertIn("user.{}".format(field), str(raised.exception))
        tabbed = parse(body(user={"username": "ann", "first_name": "A\tB"}))
        self.assertEqual(tabbed.user["first_name"], "A\tB")

    def test_numbers_json_allows_but_python_cannot_use_are_refused(self):
        """ts of Infinity, NaN or beyond 2**62 and a body nested too deep are MessageError, not another exception."""
        for ts in ("Infinity", "-Infinity", "NaN", str(10 ** 400)):
            text = body().replace('"ts": 5', '"ts": ' + ts)
            with self.assertRaises(messages.MessageError, msg=ts) as raised:
                parse(text)
            self.assertIn("ts must be a finite number", str(raised.exception))
        with self.assertRaises(messages.MessageError):
            parse("[" * 30000 + "]" * 30000)


class FieldRuleTests(unittest.SynchronousTestCase):
    def test_tracked_fields_setting(self):
        """Empty means the defaults; username is always tracked; unknown or secret fields are refused."""
        self.assertEqual(fields.parse_fields(""), fields.DEFAULT_FIELDS)
        self.assertEqual(fields.parse_fields("email, is_staff"), ("username", "email", "is_staff"))
        for bad in ("password", "last_login", "email,nickname"):
            self.assertRaises(ValueError, fields.parse_fields, bad)
        # a refused name is quoted: a newline or escape in it stays out of the one refusal line
        with self.assertRaises(ValueError) as refused:
            fields.parse_fields("email,x\n\x1b[31mFAKE")
        self.assertIn("'x\\n\\x1b[31mFAKE'", str(refused.exception))

    def test_usernames_follow_django(self):
        """1-150 letters, digits and @.+-_ (Unicode letters too); nothing else."""
        for good in ("alice", "a.b@c+d-e_f", "Zoë", "x" * 150):
            self.assertEqual(fields.check_username(good), good)
        for bad in ("", "with space", "semi;colon", "x" * 151, "trailing\n", 5, None):
            self.assertRaises(fields.FieldError, fields.check_username, bad)

    def test_emails_follow_django(self):
        """Valid addresses and the empty string pass; malformed ones and overlong ones do not."""
        for good in ("", "a@example.com", "first.last+tag@sub.example.co", "x@[127.0.0.1]",
                     "user@exämple.de"):
            self.assertEqual(fields.check_email(good), good)
        for bad in ("plain", "@example.com", "a@", "a@b", "a b@example.com", "a@exa mple.com",
                    "a@" + "x" * 250 + ".com", "a..b@example.com", "üser@example.com"):
            self.assertRaises(fields.FieldError, fields.check_email, bad)

    def test_admin_profile_check(self):
        """A profile needs a username, knows only user fields, and a password has at least 8 characters."""
        profile = {"username": "ann", "first_name": "Ann", "password": "12345678"}
        self.assertEqual(admin.clean_profile(profile),
                         ({"username": "ann", "first_name": "Ann"}, "12345678"))
        for profile, field in (([], "profile"), ({"first_name": "x"}, "username"),
                               ({"username": "ann", "password": "short"}, "password"),
                               ({"username": "ann", "date_joined": "2020"}, "date_joined"),
                               ({"username": "ann", "email": "nope"}, "email")):
            with self.assertRaises(fields.FieldError) as raised:
                admin.clean_profile(profile)
            self.assertEqual(raised.exception.field, field)

    def test_admin_profile_refuses_control_characters_in_every_field(self):
        """NUL, other C0 controls (not tab) and lone surrogates are invalid_argument naming the field, password too."""
        for field in ("username", "first_name", "last_name", "email", "password"):
            for bad in ("x\x00yyyyyyy", "x\x07yyyyyyy", "x\nyyyyyyyy", "x\ud83dyyyyyyy"):
                base = {"username": "ann", "email": "ann@example.com"}
                with self.assertRaises(fields.FieldError, msg=(field, bad)) as raised:
                    admin.clean_profile(dict(base, **{field: bad}))
                self.assertEqual((raised.exception.error, raised.exception.field, raised.exception.kwargs["field"]),
                                 ("reactive.error.invalid_argument", field, field))
        self.assertEqual(admin.clean_profile({"username": "ann", "last_name": "A\tB", "password": "tab\there1"}),
                         ({"username": "ann", "last_name": "A\tB"}, "tab\there1"))

    def test_admin_profile_with_keys_that_are_not_strings(self):
        """A profile map with non-string keys (MessagePack, CBOR) is a field error, not a TypeError."""
        with self.assertRaises(fields.FieldError) as raised:
            admin.clean_profile({"username": "ann", 1: "x", None: "y"})
        self.assertIn(raised.exception.field, ("1", "None"))


class PayloadTests(unittest.SynchronousTestCase):
    def test_event_carries_the_profile_action_and_version_only(self):
        """users.changed: {value: profile + action + version, seq: version, ts}; no staff flag, password."""
        user = {"username": "ann", "first_name": "Ann", "is_staff": False}
        change = messages.Change("update", 4, "ann", user, 9)
        self.assertEqual(bridge_module.event_for(change), {
            "value": {"username": "ann", "first_name": "Ann", "action": "update", "version": 4},
            "seq": 4, "ts": 9})

    def test_fifo_topics_get_group_and_deduplication_ids(self):
        """On a .fifo topic the username is the message group and username:version the deduplication id."""
        row = (1, "ann", "update", 4, json.dumps({"username": "ann"}), 9)
        fifo = sns.SnsPublisher(None, "arn:aws:sns:eu-west-1:1:users.fifo", SIGNER).entry(0, row)
        self.assertEqual((fifo["MessageGroupId"], fifo["MessageDeduplicationId"]), ("ann", "ann:4"))
        standard = sns.SnsPublisher(None, "arn:aws:sns:eu-west-1:1:users", SIGNER).entry(0, row)
        self.assertNotIn("MessageGroupId", standard)
        self.assertEqual(standard["MessageAttributes"]["version"], {"DataType": "Number", "StringValue": "4"})
        self.assertEqual(messages.parse(standard["Message"], VERIFIER).version, 4)

    def test_region_comes_from_settings_or_the_resource(self):
        """AWS_DEFAULT_REGION wins; else the region in the ARN or queue URL; else us-east-1."""
        configured = {"AWS_DEFAULT_REGION": "ap-south-1"}
        self.assertEqual(aws.region_for("arn:aws:sns:eu-west-1:1:t", settings=Settings({}, configured)), "ap-south-1")
        self.assertEqual(aws.region_for("arn:aws:sns:eu-west-1:1:t", settings=Settings({}, {})), "eu-west-1")
        self.assertEqual(aws.region_for("https://sqs.eu-central-1.amazonaws.com/1/q", settings=Settings({}, {})),
                         "eu-central-1")
        self.assertEqual(aws.region_for("http://127.0.0.1:4566/1/q", settings=Settings({}, {})), "us-east-1")


class RecordingQueue:
    """The SQS calls the bridge makes while handling a batch, recorded."""

    def __init__(self):
        self.extended = []
        self.deleted = []

    def change_message_visibility_batch(self, QueueUrl, Entries):
        self.extended.append([entry["ReceiptHandle"] for entry in Entries])
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}

    def delete_message_batch(self, QueueUrl, Entries):
        self.deleted.append([entry["ReceiptHandle"] for entry in Entries])
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}


class DownThenUp:
    """A database handle that is unavailable for the first ``outages`` transactions."""

    def __init__(self, outages):
        self.outages = outages
        self.attempts = 0

    def run(self, interaction, changes, now_ms, *_table):
        self.attempts += 1
        if self.attempts <= self.outages:
            return defer.fail(StorageUnavailable("sqlite: database is locked"))
        return defer.succeed(list(changes))


class HeldBatchTests(unittest.SynchronousTestCase):
    def bridge(self, db):
        clock, queue = task.Clock(), RecordingQueue()
        bridge = bridge_module.Bridge(queue, "q", db, lambda fn, *a, **kw: defer.maybeDeferred(fn, *a, **kw),
                                      clock, visibility=30, retry_max=10, random=lambda: 1.0, verifier=VERIFIER)
        bridge.running = True
        return bridge, clock, queue

    def test_an_outage_holds_the_batch_invisible_until_the_database_is_back(self):
        """A database outage longer than several visibility periods: batch kept, extended, applied, deleted once."""
        db = DownThenUp(outages=12)
        bridge, clock, queue = self.bridge(db)
        batch = [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": messages.dumps(json.loads(body()), SIGNER)}]
        done = bridge.handle(batch)
        self.assertNoResult(done)
        for _ in range(20):
            clock.advance(10)
        self.assertEqual(len(self.successResultOf(done)), 1)
        self.assertEqual(db.attempts, 13)
        self.assertEqual(queue.deleted, [["r1"]])
        self.assertGreaterEqual(len(queue.extended), 6)
        self.assertEqual((bridge.rejected, bridge.held, bridge.applied), (0, 1, 1))

    def test_a_stopping_bridge_releases_a_held_batch(self):
        """After stop() the held batch is given back (not deleted) so another instance can take it."""
        bridge, clock, queue = self.bridge(DownThenUp(outages=1000))
        done = bridge.handle([{"MessageId": "m1", "ReceiptHandle": "r1", "Body": messages.dumps(json.loads(body()), SIGNER)}])
        clock.advance(5)
        bridge.stop()
        clock.advance(30)
        self.failureResultOf(done, StorageUnavailable)
        self.assertEqual(queue.deleted, [])
        extended = len(queue.extended)
        clock.advance(60)
        self.assertEqual(len(queue.extended), extended)
