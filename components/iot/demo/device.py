"""
The demo device: one device registered in the node's device registry
(``demo-device``) that posts a wandering percentage every second through
the node's own ``POST /publish``, signed with its own key and secret,
exactly as a NodeMcu would. The hub publishes the readings on
``iot.device.demo-device``.

On first start the device is registered and its credentials are kept in
``<node dir>/secrets/demo_device.json`` (mode 0600). Later starts reuse
them; when the file is gone or its key no longer matches the registry (the
device was rotated with the CLI), the device is rotated again and the file
rewritten. A revoked demo device stays revoked: nothing is posted and the
log says so once. Failed posts (the node still starting, a refusal) are
logged once per failure streak (before the first success, while the node
is still starting, at info level) and retried at the next tick.
"""

import json
import os
import random as _random
import secrets
import tempfile

import treq
from twisted.internet import defer
from twisted.logger import Logger

from components.core import errors
from components.core.periodic import Periodic
from components.iot import device_topic
from components.iot.request_signing import sign, timestamp


def read_credentials(path):
    """``{"name", "key", "secret"}`` from ``path``, or None when it is missing or unreadable."""
    try:
        with open(path) as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return None
    fields = ("name", "key", "secret")
    if not isinstance(found, dict) or not all(isinstance(found.get(name), str) for name in fields):
        return None
    return found


def write_credentials(path, credentials):
    """Write ``credentials`` to ``path`` (mode 0600, directory 0700), replacing it atomically."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, draft = tempfile.mkstemp(dir=directory, prefix=".demo-device-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(credentials, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(draft, path)
    except BaseException:
        os.unlink(draft)
        raise


@defer.inlineCallbacks
def ensure_registered(registry, name, path):
    """
    Fire with the credentials of device ``name`` (``{"name", "key",
    "secret"}``), registering it in ``registry`` when missing; None when the
    device is revoked.
    """
    kept = read_credentials(path)
    listed = {item["name"]: item for item in (yield registry.list())}
    entry = listed.get(name)
    if entry is not None and entry["state"] != "active":
        return None
    if entry is not None and kept is not None and kept["name"] == name and kept["key"] == entry["key"]:
        return kept
    if entry is None:
        try:
            key, secret = yield registry.add(name)
        except errors.InvalidArgument:
            # registered meanwhile (another process): take fresh credentials for us
            key, secret = yield registry.rotate(name)
    else:
        key, secret = yield registry.rotate(name)
    credentials = {"name": name, "key": key, "secret": secret}
    write_credentials(path, credentials)
    return credentials


def signed_post(url, credentials, value, seq, stamp=None, nonce=None):
    """``(full URL with the signed query, body bytes)`` of one reading of the device."""
    body = json.dumps({"topic": device_topic(credentials["name"]), "args": [{"value": value}]},
                      separators=(",", ":")).encode("utf-8")
    stamp = stamp or timestamp()
    nonce = secrets.randbelow(2 ** 31) if nonce is None else nonce
    signature = sign(credentials["secret"], credentials["key"], stamp, seq, nonce, body).replace("=", "%3D")
    query = "key={}&timestamp={}&seq={}&nonce={}&signature={}".format(
        credentials["key"], stamp, seq, nonce, signature)
    return "{}?{}".format(url, query), body


class DemoDevice(Periodic):
    """
    Posts a reading every ``interval`` seconds on ``clock`` with ``http``
    (a treq ``HTTPClient``) to ``url`` (the node's ``/publish``) once
    ``credentials`` are set. ``posted`` and ``failed`` count the outcomes.
    """

    log = Logger()

    def __init__(self, clock, http, url, credentials=None, interval=1.0, random=None, start=50):
        self.clock = clock
        self.http = http
        self.url = url
        self.credentials = credentials
        self.interval = interval
        self.random = random or _random.Random()
        self.value = start
        self.seq = int(clock.seconds() * 1000)
        self.posted = 0
        self.failed = 0
        self._failing = False
        self._inflight = None

    def tick(self):
        """One post (skipped while the previous one is still under way)."""
        if self.credentials is None or self._inflight is not None:
            return None
        self.value = min(100, max(0, self.value + self.random.randint(-5, 5)))
        self.seq += 1
        url, body = signed_post(self.url, self.credentials, self.value, self.seq)
        d = self.http.post(url.encode("ascii"), data=body, headers={"Content-Type": ["application/json"]})
        d.addCallback(lambda response: treq.content(response).addCallback(lambda text: (response.code, text)))
        d.addTimeout(max(self.interval * 5, 5), self.clock)
        d.addCallbacks(self._answered, self._unreachable)
        d.addBoth(self._done)
        self._inflight = d
        return d

    def _answered(self, answer):
        code, text = answer
        if code == 200:
            self.posted += 1
            if self._failing:
                self.log.info("demo device: posting to {url}", url=self.url)
            self._failing = False
            return
        self._failure("HTTP {} {}".format(code, text[:200].decode("utf-8", "replace")))

    def _unreachable(self, failure):
        self._failure(failure.getErrorMessage())

    def _failure(self, reason):
        self.failed += 1
        if self._failing:
            return
        self._failing = True
        if self.posted == 0:
            # the node's web transport usually starts after this worker
            self.log.info("demo device: waiting for {url} ({reason}); trying every {interval}s",
                          url=self.url, reason=reason, interval=self.interval)
        else:
            self.log.warn("demo device: post to {url} failed ({reason}); retrying every {interval}s",
                          url=self.url, reason=reason, interval=self.interval)

    def _done(self, _):
        self._inflight = None
