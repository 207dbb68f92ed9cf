"""
Probing the IoT history with bad sources: control characters (NUL first,
which PostgreSQL's driver refuses with its own words), spaces, dots and
non-ASCII text are refused with reactive.error.invalid_argument before any
database access, through a real router on a PostgreSQL client database; and
a read that fails anyway answers without the database's words
(reactive.error.unavailable when it is down, reactive.error.internal
otherwise).
"""

from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from components.core import errors
from components.db.database import StorageUnavailable
from components.iot import HISTORY, SERIAL_TOPIC, SOURCES
from components.iot.history import kind_of
from components.iot.history_component import HistoryComponent
from tests.support.clients import connect
from tests.support.databases import postgres_url
from tests.support.node import shared_node

# what a driver or the database says: none of it may reach a caller
DRIVER_WORDS = ("NUL", "0x00", "psycopg", "postgres", "sqlite", "DataError", "Traceback", "refused", "5432")
BAD_SOURCES = ["\x00", "iot.device.a\x00b", "iot.device.\x00", SERIAL_TOPIC + "\x00", "iot.device.a\x01",
               "iot.device.a\nb", "iot.device.a\tb", "iot.device.a\x1b[31m", "iot.device.a\x7f", "iot.device.a\x85",
               "iot.device.a b", "iot.device.a.b", "iot.device.caf\u00e9", "iot.device.a\u2028"]


class BadSourceTests(unittest.TestCase):
    """A user session on a node whose client database is PostgreSQL."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("history-probe", env={"DATABASE_URL": postgres_url(None)})
        self.client = yield connect(self, self.node)

    @defer.inlineCallbacks
    def test_control_characters_refused(self):
        """Every bad source is invalid_argument naming the field source, with no driver text; the history
        still answers afterwards."""
        for source in BAD_SOURCES:
            with self.assertRaises(ApplicationError, msg=repr(source)) as caught:
                yield self.client.session.call(HISTORY, source)
            self.assertEqual(caught.exception.error, errors.INVALID_ARGUMENT, (source, caught.exception.args))
            self.assertEqual(caught.exception.kwargs.get("field"), "source")
            for words in DRIVER_WORDS:
                self.assertNotIn(words, caught.exception.args[0], repr(source))
        answer = yield self.client.session.call(HISTORY, "iot.device.nobody-1")
        self.assertEqual(answer["states"], [])
        listed = yield self.client.session.call(SOURCES)
        self.assertIsInstance(listed, list)


class FailingStore:
    """A history store whose reads fail with ``error``."""

    def __init__(self, error):
        self.error = error

    def page(self, *args):
        return defer.fail(self.error)

    def sources(self):
        return defer.fail(self.error)


class DrainedWriter:
    def drain(self):
        return defer.succeed(None)


class HiddenFailureTests(SynchronousTestCase):
    """A read that fails answers with the hub's words only; the database's go to the log."""

    def component(self, error):
        component = HistoryComponent(environ={})
        component.store, component.writer = FailingStore(error), DrainedWriter()
        component._running_state = lambda procedure: defer.succeed(None)
        return component

    def test_driver_error(self):
        """A driver's exception (here NUL in a string) is reactive.error.internal without its text; logged."""
        driver = ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        for call in (lambda c: c.history(SERIAL_TOPIC), lambda c: c.sources()):
            failure = self.failureResultOf(call(self.component(driver)), errors.HubError)
            self.assertEqual(failure.value.error, errors.INTERNAL)
            self.assertNotIn("NUL", str(failure.value))
            self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_database_down(self):
        """A database that is down is reactive.error.unavailable, without the driver's words."""
        down = StorageUnavailable("postgresql: connection to server at 127.0.0.1, port 5432 failed: refused")
        for call in (lambda c: c.history(SERIAL_TOPIC), lambda c: c.sources()):
            failure = self.failureResultOf(call(self.component(down)), errors.Unavailable)
            self.assertEqual(failure.value.args, (errors.DATABASE_UNAVAILABLE,))
            self.assertNotIn("5432", failure.value.message)

    def test_device_sources_are_device_names(self):
        """A device source is iot.device.<1-64 letters, digits, _ or ->, nothing else."""
        self.assertEqual(kind_of("iot.device.rig_1-a"), "device")
        self.assertEqual(kind_of("iot.device." + "x" * 64), "device")
        for source in BAD_SOURCES + ["iot.device." + "x" * 65]:
            self.assertIsNone(kind_of(source), repr(source))
