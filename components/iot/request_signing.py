"""
The signature of device requests to ``POST /publish`` (Crossbar's HTTP
bridge scheme): ``base64url(HMAC-SHA256(secret, key + timestamp + seq +
nonce + body))``, the parts concatenated without separators, and the dev
credential files of the node directory.
"""

import base64
import datetime
import hashlib
import hmac
import os
import time

KEY_FILE = os.path.join("secrets", "device_key")
SECRET_FILE = os.path.join("secrets", "device_secret")


def timestamp(moment=None):
    """The bridge's timestamp for ``moment`` (epoch seconds, default now), whole seconds like the sketch."""
    moment = time.time() if moment is None else moment
    utc = datetime.datetime.fromtimestamp(int(moment), tz=datetime.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def sign(secret, key, stamp, seq, nonce, payload):
    """The bridge signature (base64url with padding, as text)."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    for part in (key.encode("utf-8"), stamp.encode("ascii"), str(seq).encode("ascii"),
                 str(nonce).encode("ascii"), payload):
        mac.update(part)
    return base64.urlsafe_b64encode(mac.digest()).decode("ascii")
