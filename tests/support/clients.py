"""
WAMP clients and HTTP helpers for tests against a real node.
"""

import json

import treq
from twisted.internet import defer

from components.auth import tokens
from components.client.hub_client import HubClient

from tests.support.node import TEST_SECRET


def issuer(secret=TEST_SECRET, ttl=900, clock=None, **kwargs):
    """A TokenIssuer for the test nodes' HS256 secret."""
    keys = tokens.Keys("HS256", secret, secret)
    if clock is not None:
        kwargs["clock"] = clock
    return tokens.TokenIssuer(keys, ttl=ttl, **kwargs)


def token(sub="alice", role="user", ttl=900, **kwargs):
    return issuer().issue(sub, role, ttl=ttl, **kwargs)


@defer.inlineCallbacks
def connect(testcase, node, sub="alice", role="user", ticket=None, token_source=None, **options):
    """
    Join ``node`` as ``sub``/``role`` (or with ``ticket``/``token_source``);
    fire with the HubClient, closed when the test ends.
    """
    if token_source is None:
        if ticket is None:
            ticket = token(sub, role)
        fixed = ticket
        token_source = lambda: fixed  # noqa: E731
    # no handshake timers: their batched DelayedCalls would outlive the test
    options.setdefault("protocol_options", {"openHandshakeTimeout": 0, "closeHandshakeTimeout": 0})
    client = HubClient(node.url, token_source, **options)
    testcase.addCleanup(client.close)
    yield client.connect()
    return client


@defer.inlineCallbacks
def status_of(url, timeout=2):
    """GET ``url``; fire with the answer's status code, or None when nothing answers (refused, reset, timed out)."""
    try:
        response = yield treq.get(url, persistent=False, timeout=timeout)
        yield response.content()
    except Exception:
        return None
    return response.code


@defer.inlineCallbacks
def post_json(url, body=None, cookies=None, headers=None):
    """POST JSON; fire with ``(status, decoded_body, response)``."""
    all_headers = {b"Content-Type": [b"application/json"]}
    for name, value in (headers or {}).items():
        all_headers[name.encode()] = [value.encode()]
    response = yield treq.post(url, json.dumps(body or {}).encode(), headers=all_headers, cookies=cookies,
                               persistent=False)
    text = yield response.text()
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = text
    return response.code, decoded, response
