"""components.node.patches.proxyleave on a stand-in of Crossbar's ProxyBackendSession (the real one: test_linked_revocation)."""

import types

from autobahn.wamp import message
from autobahn.wamp.types import CloseDetails
from twisted.trial import unittest

from components.node.patches import proxyleave


class _Transport:
    def __init__(self):
        self.sent = []
        self.closed = False

    def send(self, msg):
        self.sent.append(msg)

    def close(self):
        self.closed = True


class _Backend:
    """Crossbar's behaviour: on close, ABORT to the client (the session id is gone by then)."""

    def __init__(self):
        self._frontend = types.SimpleNamespace(transport=_Transport())
        self.log = types.SimpleNamespace(info=lambda *args, **kwargs: None)

    def onLeave(self, details):
        pass

    def onClose(self, wasClean):
        if self._frontend is not None:
            self._frontend.transport.send(message.Abort("wamp.error.authentication_failed"))
        self._frontend = None


class ProxyLeaveTests(unittest.SynchronousTestCase):

    def setUp(self):
        self.module = types.SimpleNamespace(ProxyBackendSession=type("ProxyBackendSession", (_Backend,), {}))
        self.assertTrue(proxyleave.install(self.module))

    def test_the_routers_reason_reaches_the_client(self):
        session = self.module.ProxyBackendSession()
        client = session._frontend.transport
        session.onLeave(CloseDetails("reactive.error.auth.revoked", "logged out"))
        session.onClose(True)
        self.assertEqual([(type(msg), msg.reason, msg.message) for msg in client.sent],
                         [(message.Goodbye, "reactive.error.auth.revoked", "logged out")])
        self.assertTrue(client.closed)

    def test_without_a_router_goodbye_crossbar_behaves_as_before(self):
        session = self.module.ProxyBackendSession()
        client = session._frontend.transport
        session.onClose(False)
        self.assertEqual([type(msg) for msg in client.sent], [message.Abort])

    def test_installing_twice_changes_nothing(self):
        patched = self.module.ProxyBackendSession.onClose
        self.assertFalse(proxyleave.install(self.module))
        self.assertIs(self.module.ProxyBackendSession.onClose, patched)
