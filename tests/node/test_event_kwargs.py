"""
The event_kwargs patch: a router-embedded session gets an EVENT's kwargs as
its own dict, so autobahn's details argument does not reach the other
subscribers (the real-node check is tests.applications.test_publish_router's
pattern subscribers).
"""

from autobahn.wamp import message
from autobahn.wamp.protocol import ApplicationSession
from twisted.trial import unittest

from components.node.patches import event_kwargs


def transport_class():
    class Transport:
        """Passes router-to-app messages straight to its session, like Crossbar's RouterApplicationSession."""

        def __init__(self, session):
            self.session = session

        def send(self, msg):
            self.session.received.append(msg)
            if isinstance(msg, message.Event):
                self.session.deliver(msg)
    return Transport


class Subscriber:
    """Calls a handler the way autobahn's ApplicationSession does for ``details=True`` (details in kwargs)."""

    def __init__(self):
        self.received = []
        self.seen = []

    def deliver(self, msg):
        invoke_kwargs = msg.kwargs if msg.kwargs else dict()
        invoke_kwargs["details"] = object()
        self.seen.append(invoke_kwargs)


class EventKwargsTests(unittest.SynchronousTestCase):
    def test_embedded_session_gets_its_own_kwargs(self):
        Transport = transport_class()
        self.assertTrue(event_kwargs.install(Transport))
        self.assertFalse(event_kwargs.install(Transport))
        shared = {"n": 1}
        event = message.Event(1, 2, args=[1], kwargs=shared)
        subscriber = Subscriber()
        Transport(subscriber).send(event)
        self.assertEqual(shared, {"n": 1})
        self.assertEqual(event.kwargs, {"n": 1})
        self.assertEqual(set(subscriber.seen[0]), {"n", "details"})
        delivered = subscriber.received[0]
        self.assertIsNot(delivered, event)
        self.assertEqual((delivered.subscription, delivered.publication, delivered.args), (1, 2, [1]))

    def test_other_messages_and_events_without_kwargs_pass_as_they_are(self):
        Transport = transport_class()
        event_kwargs.install(Transport)
        subscriber = Subscriber()
        transport = Transport(subscriber)
        bare = message.Event(1, 2, args=[1])
        published = message.Published(3, 4)
        transport.send(bare)
        transport.send(published)
        self.assertIs(subscriber.received[0], bare)
        self.assertIs(subscriber.received[1], published)

    def test_autobahn_still_adds_details_to_the_message_kwargs(self):
        """The reason for the patch: remove it once autobahn copies the kwargs (docs/upstream/event_kwargs.patch)."""
        import inspect
        source = inspect.getsource(ApplicationSession.onMessage)
        self.assertIn("invoke_kwargs = msg.kwargs if msg.kwargs else dict()", source)

    def test_installs_on_crossbar(self):
        from crossbar.router.session import RouterApplicationSession
        event_kwargs.install()
        self.assertTrue(getattr(RouterApplicationSession.send, event_kwargs.PATCHED, False))
