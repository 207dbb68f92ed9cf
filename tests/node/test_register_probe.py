"""
Procedure names cannot be probed: a REGISTER the session may not make is
answered wamp.error.not_authorized whether the procedure is registered (with
the single or the roundrobin invoke policy) or free, through a real router
(components/node/patches/register_authorization.py); CALL and SUBSCRIBE of
forbidden names answer alike for existing and unknown ones. The patch's
install() on test classes and on Crossbar's own Dealer: a denied REGISTER is
answered before the library's code runs, an allowed one (and a failing
authorizer) runs it unchanged, installing twice changes nothing, and
differing internals raise PatchUnavailable.
"""

from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from twisted.internet import defer
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

from components.clock import GET as TIME_GET
from components.iot import DEVICE_PUBLISH, HISTORY
from components.node.patches import PatchUnavailable
from components.node.patches import register_authorization as patch
from tests.support.clients import connect
from tests.support.devices import register
from tests.support.node import shared_node

# registered on the dev node: time.get (invoke single), iot.history (roundrobin), iot.device.publish
# (roundrobin, by the device bridge); and names nobody registered
EXISTING = (TIME_GET, HISTORY, DEVICE_PUBLISH, "counter.click")
UNUSED = ("time.unused-probe", "iot.device.unused-probe", "master.users.unused-probe")


class RegisterProbeTests(unittest.TestCase):
    """User and device sessions on the dev node's config."""

    timeout = 180

    @defer.inlineCallbacks
    def setUp(self):
        self.node = yield shared_node("register-probe")

    @defer.inlineCallbacks
    def refusal(self, attempt):
        """The ApplicationError ``attempt()`` fails with."""
        with self.assertRaises(ApplicationError) as caught:
            yield attempt()
        return caught.exception

    @defer.inlineCallbacks
    def assertAllNotAuthorized(self, session, names, invoke=None):
        from autobahn.wamp.types import RegisterOptions
        options = RegisterOptions(invoke=invoke) if invoke else None
        for name in names:
            error = yield self.refusal(lambda: session.register(lambda: None, name, options=options))
            self.assertEqual(error.error, ApplicationError.NOT_AUTHORIZED, (name, invoke, error.args))
            self.assertNotIn("already", error.args[0])

    @defer.inlineCallbacks
    def test_user_register_existing_and_unused(self):
        """A user's REGISTER of time.get, iot.history, counter.click, iot.device.publish and of unused names:
        not_authorized every time, with either invoke policy."""
        session = (yield connect(self, self.node, sub="prober", role="user")).session
        yield self.assertAllNotAuthorized(session, EXISTING + UNUSED)
        yield self.assertAllNotAuthorized(session, EXISTING + UNUSED, invoke="roundrobin")

    @defer.inlineCallbacks
    def test_device_register_existing_and_unused(self):
        """A registered device's REGISTER of its own iot.device.publish, time.get or an unused name:
        not_authorized."""
        yield register(self, self.node, "probe-device")
        session = (yield connect(self, self.node, sub="probe-device", role="device")).session
        yield self.assertAllNotAuthorized(session, EXISTING + UNUSED)

    @defer.inlineCallbacks
    def test_call_and_subscribe_answer_alike(self):
        """A user's CALL of a forbidden registered procedure and of an unknown one are both not_authorized,
        as are SUBSCRIBE of a forbidden topic; a REGISTER in between changes none of it."""
        session = (yield connect(self, self.node, sub="prober-2", role="user")).session
        yield self.assertAllNotAuthorized(session, (TIME_GET, "time.unused-probe"))
        for name in (DEVICE_PUBLISH, "master.users.save", "master.users.unused-probe", "time.unused-probe"):
            error = yield self.refusal(lambda: session.call(name))
            self.assertEqual(error.error, ApplicationError.NOT_AUTHORIZED, name)
        for topic in ("iot.serial.unused-probe", "master.users.changed"):
            error = yield self.refusal(lambda: session.subscribe(lambda *a: None, topic))
            self.assertEqual(error.error, ApplicationError.NOT_AUTHORIZED, topic)


class Register:
    """A REGISTER as the dealer gets it."""

    def __init__(self, procedure, request=7):
        self.procedure = procedure
        self.request = request

    def marshal_options(self):
        return {}


class FakeRouter:
    """Decides with ``decide(uri)`` (a value, or an exception to fail with); records what it sends."""

    def __init__(self, decide):
        self.decide = decide
        self.sent = []
        self.asked = []

    def authorize(self, session, uri, action, options):
        self.asked.append((uri, action))
        outcome = self.decide(uri)
        return defer.fail(outcome) if isinstance(outcome, Exception) else defer.succeed(outcome)

    def send(self, session, msg):
        self.sent.append(msg)


def dealer_class():
    """A dealer whose library processRegister only records that it ran (and answers 'already exists')."""

    class Dealer:
        ran = []

        def processRegister(self, session, register):
            self.ran.append(register.procedure)
            self._router.authorize(session, register.procedure, "register", options={})

    return Dealer


class InstallTests(SynchronousTestCase):
    """install() on test classes and on Crossbar's Dealer."""

    def setUp(self):
        import txaio
        txaio.use_twisted()

    def dealer(self, decide):
        klass = dealer_class()
        self.assertTrue(patch.install(klass, FakeRouter))
        dealer = klass()
        dealer._router = FakeRouter(decide)
        return dealer

    def test_denied_answered_first(self):
        """A denied REGISTER gets not_authorized, naming only the procedure; the library's code never runs."""
        for denied in ({"allow": False}, False):
            dealer = self.dealer(lambda uri: denied)
            dealer.processRegister(object(), Register("time.get", request=42))
            (sent,) = dealer._router.sent
            self.assertIsInstance(sent, message.Error)
            self.assertEqual((sent.request_type, sent.request, sent.error),
                             (message.Register.MESSAGE_TYPE, 42, ApplicationError.NOT_AUTHORIZED))
            self.assertEqual(sent.args, ["session is not authorized to register procedure 'time.get'"])
            self.assertEqual(dealer.ran, [])

    def test_allowed_and_failing_run_the_library(self):
        """An allowed REGISTER, and one whose authorizer fails, run the library's code (which authorizes
        again), sending nothing of the patch's own."""
        for decide in (lambda uri: {"allow": True}, lambda uri: RuntimeError("authorizer down")):
            dealer = self.dealer(decide)
            dealer.processRegister(object(), Register("time.get"))
            self.assertEqual(dealer.ran, ["time.get"])
            self.assertEqual(dealer._router.sent, [])
            self.assertEqual(dealer._router.asked, [("time.get", "register")] * 2)
        self.flushLoggedErrors(RuntimeError)

    def test_idempotent(self):
        """A second install changes nothing."""
        klass = dealer_class()
        self.assertTrue(patch.install(klass, FakeRouter))
        installed = klass.processRegister
        self.assertFalse(patch.install(klass, FakeRouter))
        self.assertIs(klass.processRegister, installed)

    def test_differing_internals(self):
        """No processRegister, another signature, one that does not authorize through the router, or a
        router without authorize/send: PatchUnavailable naming it."""

        class NoProcess:
            pass

        class OtherSignature:
            def processRegister(self, session, register, extra):
                self._router.authorize()

        class NoAuthorize:
            def processRegister(self, session, register):
                pass

        class BareRouter:
            pass

        for klass, router, named in ((NoProcess, FakeRouter, "processRegister"),
                                     (OtherSignature, FakeRouter, "extra"),
                                     (NoAuthorize, FakeRouter, "authorizing"),
                                     (dealer_class(), BareRouter, "Router.authorize")):
            with self.assertRaises(PatchUnavailable) as caught:
                patch.install(klass, router)
            self.assertIn(named, str(caught.exception))

    def test_crossbar_dealer(self):
        """Crossbar's own Dealer and Router have what the patch relies on (a subclass is patched here)."""
        from crossbar.router.dealer import Dealer
        from crossbar.router.router import Router

        class Subclass(Dealer):
            pass

        self.assertTrue(patch.install(Subclass, Router))
        self.assertTrue(getattr(Subclass.processRegister, patch.PATCHED))
        self.assertFalse(getattr(Dealer.processRegister, patch.PATCHED, False))
