"""
The one mapping of failures to what callers see: domain errors keep their
URI and get their family's HTTP status, a database's own words reach the
log and never the caller, anything unexpected is a logged internal error,
and every HTTP answer has the body ``{"error", "message"[, "details"]}``.
"""

import json

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from components.auth import AUTH_EXPIRED
from components.auth.auth_refused import AuthRefused
from components.core import errors
from components.core.httpjson import HTTPError, error_answer, respond
from components.db.database import StorageUnavailable

DRIVER_WORDS = 'postgresql: connection to server at "127.0.0.1", port 5999 failed: Connection refused'


class RecordingLogger:
    """A Logger whose events are kept in ``events``."""

    def __init__(self):
        self.events = []
        self.log = Logger(observer=self.events.append)

    def text(self):
        from twisted.logger import formatEvent
        return "\n".join(formatEvent(event) + (event["log_failure"].getTraceback() if "log_failure" in event else "")
                         for event in self.events)


class PublicErrorTests(SynchronousTestCase):
    """``errors.public``: the error a caller may see."""

    def test_database_words_stay_in_the_log(self):
        """A database failure reaches WAMP callers as unavailable with the generic message; the log has the detail."""
        recorder = RecordingLogger()
        error = errors.public(StorageUnavailable(DRIVER_WORDS), recorder.log, "counter.click")
        self.assertEqual(error.error, errors.UNAVAILABLE)
        self.assertEqual(error.args, (errors.DATABASE_UNAVAILABLE,))
        self.assertEqual(error.kwargs, {})
        self.assertNotIn("5999", error.message)
        self.assertIn("counter.click", recorder.text())
        self.assertIn("port 5999 failed", recorder.text())

    def test_domain_error_passes_unchanged(self):
        """A refusal is the caller's answer as it is, and nothing is logged."""
        recorder = RecordingLogger()
        refusal = errors.InvalidArgument("n must be an integer", field="n")
        self.assertIs(errors.public(refusal, recorder.log, "counter.click"), refusal)
        self.assertEqual(recorder.events, [])

    def test_unexpected_failure_is_internal(self):
        """An exception of ours becomes internal with a generic message; its traceback is logged."""
        recorder = RecordingLogger()
        try:
            {}["missing-key-words"]
        except KeyError:
            failure = Failure()
        error = errors.public(failure, recorder.log, "iot.sources")
        self.assertEqual((error.uri, error.message), (errors.INTERNAL, errors.INTERNAL_MESSAGE))
        self.assertNotIn("missing-key-words", error.message)
        self.assertIn("missing-key-words", recorder.text())

    def test_wamp_errors_are_their_families(self):
        """WAMP's own refusals passed on from a call become the hub's families."""
        recorder = RecordingLogger()
        refused = errors.public(ApplicationError(ApplicationError.NOT_AUTHORIZED, "no"), recorder.log, "publish")
        self.assertIsInstance(refused, errors.NotAuthorized)
        bad_uri = errors.public(ApplicationError(ApplicationError.INVALID_URI, "bad"), recorder.log, "publish")
        self.assertIsInstance(bad_uri, errors.InvalidArgument)

    def test_str_is_for_operators(self):
        """``str()`` of a database failure names the message and the driver's words (for logs and commands)."""
        self.assertEqual(str(StorageUnavailable(DRIVER_WORDS)),
                         "{} ({})".format(errors.DATABASE_UNAVAILABLE, DRIVER_WORDS))
        self.assertEqual(str(errors.NotFound("no such counter")), "no such counter")


class ErrorAnswerTests(SynchronousTestCase):
    """``httpjson.error_answer``: the one HTTP status and body of every error."""

    def answer(self, error):
        return error_answer(error, RecordingLogger().log)

    def test_family_statuses(self):
        """Each family has its status; the body is always error and message."""
        cases = [(errors.InvalidArgument("bad"), 400), (AuthRefused("who?", uri=AUTH_EXPIRED), 401),
                 (errors.NotAuthorized("no"), 403), (errors.NotFound("none"), 404),
                 (errors.Unavailable("later"), 503), (errors.HubError("broken"), 500)]
        for error, status in cases:
            self.assertEqual(self.answer(error), (status, {"error": error.uri, "message": error.message}, {}))

    def test_database_down_is_503_generic(self):
        """A database failure answers 503 with the generic message, the driver's words nowhere in it."""
        status, body, headers = self.answer(StorageUnavailable(DRIVER_WORDS))
        self.assertEqual((status, body), (503, {"error": errors.UNAVAILABLE, "message": errors.DATABASE_UNAVAILABLE}))
        self.assertNotIn("5999", json.dumps(body))

    def test_details_and_retry_after(self):
        """Keyword details travel as ``details``; a rate limit sets Retry-After in whole seconds, at least 1."""
        status, body, headers = self.answer(errors.RateLimited("slow down", retry_after=0.2))
        self.assertEqual((status, body["details"], headers), (429, {"retry_after": 0.2}, {"Retry-After": 1}))
        status, body, headers = self.answer(errors.RateLimited("slow down", retry_after=2.5))
        self.assertEqual(headers, {"Retry-After": 3})

    def test_http_error_keeps_its_status_and_headers(self):
        """An HTTPError's own status and headers win (a 405 with Allow, a 429 with its Retry-After)."""
        error = HTTPError(429, errors.RATE_LIMITED, "too many", headers={"Retry-After": 7})
        self.assertEqual(self.answer(error), (429, {"error": errors.RATE_LIMITED, "message": "too many"},
                                              {"Retry-After": 7}))

    def test_respond_writes_the_body(self):
        """A resource handler failing with a database error: the request gets 503 and the generic body."""
        request = DummyRequest([b"token"])
        respond(request, lambda _request: defer.fail(StorageUnavailable(DRIVER_WORDS)))
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(json.loads(b"".join(request.written)),
                         {"error": errors.UNAVAILABLE, "message": errors.DATABASE_UNAVAILABLE})
        self.assertEqual(len(self.flushLoggedErrors()), 0)


class ProcedureErrorTests(SynchronousTestCase):
    """The ERROR reply autobahn builds for a failed procedure of a :class:`HubComponent`."""

    def reply(self, exc):
        from autobahn.wamp import message
        from components.core.component import HubComponent
        component = HubComponent(environ={})
        recorder = RecordingLogger()
        component.log = recorder.log
        return component._message_from_exception(message.Invocation.MESSAGE_TYPE, 7, exc), recorder

    def test_unexpected_exception_is_internal(self):
        """A bare exception's own text (which autobahn would send as runtime_error) never reaches the caller."""
        reply, _ = self.reply(KeyError("dsn=postgresql://hub:secret@10.0.0.5/hub"))
        self.assertEqual((reply.error, reply.args), (errors.INTERNAL, [errors.INTERNAL_MESSAGE]))

    def test_database_failure_is_generic_and_logged(self):
        """A database failure a procedure let through: unavailable in generic words, the detail in the log."""
        reply, recorder = self.reply(StorageUnavailable(DRIVER_WORDS))
        self.assertEqual((reply.error, reply.args), (errors.UNAVAILABLE, [errors.DATABASE_UNAVAILABLE]))
        self.assertIn("port 5999 failed", recorder.text())

    def test_refusals_pass_unchanged(self):
        """A domain refusal and autobahn's own errors keep their URI, words and details."""
        reply, recorder = self.reply(errors.RateLimited("slow down", retry_after=1.5))
        self.assertEqual((reply.error, reply.args, reply.kwargs), (errors.RATE_LIMITED, ["slow down"],
                                                                   {"retry_after": 1.5}))
        reply, _ = self.reply(ApplicationError(ApplicationError.INVALID_ARGUMENT, "missing n"))
        self.assertEqual((reply.error, reply.args), (ApplicationError.INVALID_ARGUMENT, ["missing n"]))
        self.assertEqual(recorder.events, [])


class URIHomeTests(SynchronousTestCase):
    """Core holds the generic URIs only; a feature's URIs live in the feature."""

    def test_core_uris_are_generic(self):
        """Every URI constant of components.core.errors is reactive.error.<one word>, none a feature's family."""
        uris = {name: value for name, value in vars(errors).items()
                if name.isupper() and isinstance(value, str) and value.startswith("reactive.error.")}
        self.assertIn("UNAVAILABLE", uris)
        for name, uri in uris.items():
            self.assertRegex(uri, r"^reactive\.error\.[a-z_]+$", name)

    def test_feature_uris_at_home(self):
        """The auth, device and end-to-end URIs are their features' constants."""
        from components import auth, e2e, iot
        self.assertTrue(auth.AUTH_REVOKED.startswith("reactive.error.auth."))
        self.assertEqual(iot.Replayed("seen").status, 401)
        self.assertEqual(e2e.E2E_REFUSED, "reactive.error.e2e.refused")
