"""
WAMP session steps over a raw WebSocket (tests.support.rawwebsocket), JSON
only: join with a ticket, say GOODBYE. For tests that need an authenticated
connection and then send what no WAMP client library would.
"""

import json
import time

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from tests.support.clients import token
from tests.support.polling import eventually

GOODBYE = json.dumps([6, {}, "wamp.close.normal"]).encode()


def hello(sub):
    """A JSON HELLO for realm ``reactive`` as ``sub``, asking for ticket authentication."""
    return json.dumps([1, "reactive", {"authmethods": ["ticket"], "authid": sub, "roles": {"caller": {}}}]).encode()


def count(client, prefix):
    """How many messages starting with ``prefix`` (JSON, no spaces) ``client`` has received."""
    return client.received.replace(b" ", b"").count(prefix)


def wait_until(moment):
    """A Deferred firing at the monotonic ``moment`` (at once if it has passed)."""
    return deferLater(reactor, max(0.0, moment - time.monotonic()), lambda: None)


@defer.inlineCallbacks
def join(client, sub, challenged=None):
    """
    HELLO, the ticket CHALLENGE, (``challenged``: a Deferred to wait for
    first) AUTHENTICATE with a token for ``sub``, WELCOME. AssertionError
    when the connection closes on the way.
    """
    welcomes, challenges = count(client, b"[2,"), count(client, b'[4,"ticket"')
    client.send(hello(sub))
    yield eventually(lambda: count(client, b'[4,"ticket"') > challenges or not client.open, timeout=10,
                     message="no CHALLENGE")
    if challenged is not None:
        yield challenged
    if not client.open:
        raise AssertionError("closed before it answered the CHALLENGE")
    client.send(json.dumps([5, token(sub), {}]).encode())
    yield eventually(lambda: count(client, b"[2,") > welcomes or not client.open, timeout=10,
                     message="no WELCOME")
    if not client.open:
        raise AssertionError("closed instead of welcomed")


@defer.inlineCallbacks
def leave(client):
    """GOODBYE, and the router's GOODBYE in reply; fires with the monotonic time of the reply."""
    replies = count(client, b"[6,")
    client.send(GOODBYE)
    yield eventually(lambda: count(client, b"[6,") > replies or not client.open, timeout=10,
                     message="no GOODBYE reply")
    return time.monotonic()
