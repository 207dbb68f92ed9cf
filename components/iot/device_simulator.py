"""
A device simulator for the HTTP bridge at ``/publish``: builds and sends
byte for byte the request the NodeMcu sketch (``firmware/nodemcu_publisher``)
sends, signed the way Crossbar's HTTP bridge checks it:

    signature = base64url(HMAC-SHA256(secret, key + timestamp + seq + nonce + body))

(the parts concatenated, nothing between them; see ``components.iot.request_signing``)
with ``key``, ``timestamp`` (UTC, ``YYYY-MM-DDTHH:MM:SS.000Z``), ``seq``,
``nonce`` and ``signature`` in the query string.

Each device has its own key and secret (``reactive-hub device add NAME
--out`` writes ``DEVICE_NAME``, ``DEVICE_KEY`` and ``DEVICE_SECRET`` to
``<node dir>/secrets/devices/NAME.env``) and posts
``{"topic": "iot.device.<name>", "args": [{"value": <value>}]}``
(``reactive-hub device simulate`` is ``python -m components.iot.device_simulator``):

    reactive-hub device simulate --device sim-1 --value 42
    reactive-hub device simulate --device nodemcu-1 --key K --secret S --value 42
    DEVICE_NAME=sim-1 DEVICE_KEY=K DEVICE_SECRET=S reactive-hub device simulate --value 10 --value 55 --interval 0.5

Key, secret and name come from ``--key``/``--secret``/``--device``, else
``DEVICE_KEY`` / ``DEVICE_SECRET`` / ``DEVICE_NAME``, else (key and secret)
the device's file ``device add --out`` wrote. Exit codes: 0 every post
accepted, 1 a post refused or the hub unreachable, 2 usage. ``--shared`` posts the
deprecated shared-key body (``iot.device.reading`` naming the device; the hub
takes it only with ``DEVICE_SHARED_KEY=on``), falling back to the dev shared
credentials in ``<node dir>/secrets/``.
"""

import argparse
import hashlib
import json
import os
import secrets
import socket
import ssl
import sys
import time
from urllib.parse import urlsplit

from components.core import core_settings
from components.core.exits import outcome
from components.core.settings import Settings, node_dir
from components.iot import DEVICE_TOPIC as SHARED_TOPIC, credentials_file, device_topic, iot_settings
from components.iot.request_signing import KEY_FILE, SECRET_FILE, sign, timestamp


def body(device, value):
    """The JSON body the sketch posts for the registered ``device``: its own topic, compact, keys in this order."""
    return json.dumps({"topic": device_topic(device), "args": [{"value": value}]},
                      separators=(",", ":")).encode("utf-8")


def shared_body(device, value):
    """The deprecated shared-key body: ``iot.device.reading``, the device named in the payload."""
    return json.dumps({"topic": SHARED_TOPIC, "args": [{"device": device, "value": value}]},
                      separators=(",", ":")).encode("utf-8")


def request_bytes(host, path, key, secret, stamp, seq, nonce, payload):
    """The complete HTTP/1.1 request of the sketch for the JSON ``payload``, ready for the socket."""
    signature = sign(secret, key, stamp, seq, nonce, payload).replace("=", "%3D")
    head = ("POST {path}?key={key}&timestamp={stamp}&seq={seq}&nonce={nonce}&signature={signature}"
            " HTTP/1.1\r\n"
            "Host: {host}\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: {length}\r\n"
            "Connection: close\r\n"
            "\r\n").format(path=path, key=key, stamp=stamp, seq=seq, nonce=nonce, signature=signature,
                           host=host, length=len(payload))
    return head.encode("ascii") + payload


def send(url, raw, cafile=None, fingerprint=None, timeout=10.0):
    """
    Send ``raw`` to the host of ``url`` (TLS for https: the CA in ``cafile``
    or the system store, or a pinned SHA-256 certificate ``fingerprint`` in
    hex); return ``(status, body_text)``.
    """
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname, port), timeout=timeout) as plain:
        connection = plain
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=cafile)
            if fingerprint:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            connection = context.wrap_socket(plain, server_hostname=parts.hostname)
            if fingerprint:
                seen = hashlib.sha256(connection.getpeercert(binary_form=True)).hexdigest()
                if seen != fingerprint.replace(":", "").lower():
                    raise ssl.SSLError("certificate fingerprint mismatch")
        connection.sendall(raw)
        answer = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, text = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        text = dechunk(text)
    return status, text.decode("utf-8", "replace")


def dechunk(data):
    """The body of a ``Transfer-Encoding: chunked`` answer."""
    body = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        body, data = body + data[:size], data[size + 2:]
    return body


def credentials(key=None, secret=None, environ=None, directory=None, shared=False, device=None):
    """
    Key and secret: given, else ``DEVICE_KEY`` / ``DEVICE_SECRET``, else
    (neither given) the file ``device add --out`` wrote for ``device``; with
    ``shared`` (the deprecated shared key) else the node's dev files.
    SystemExit naming what is missing.
    """
    environ = os.environ if environ is None else environ
    settings = Settings(environ=environ, node_directory=directory or node_dir(argv=[], environ=environ))
    key = key or settings.get(iot_settings.DEVICE_KEY)
    secret = secret or settings.get(iot_settings.DEVICE_SECRET)
    directory = settings.node_directory
    if not key and not secret and not shared and device:
        saved = credentials_file.read(credentials_file.default_path(directory, device))
        key, secret = saved.get("DEVICE_KEY"), saved.get("DEVICE_SECRET")
    for name, value, path in (("key", key, KEY_FILE), ("secret", secret, SECRET_FILE)):
        if not value and not shared:
            raise SystemExit("no device {0}: pass --{0}, set DEVICE_{1}, or register the device with "
                             "reactive-hub device add {2} --out (it writes {3})".format(
                                 name, name.upper(), device or "NAME",
                                 credentials_file.default_path(directory, device or "NAME")))
        if not value:
            try:
                with open(os.path.join(directory, path)) as handle:
                    value = handle.read().strip()
            except OSError:
                raise SystemExit("no device {0}: pass --{0}, set DEVICE_{1}, or start the node once with "
                                 "DEVICE_SHARED_KEY=on to create {2}".format(name, name.upper(),
                                                                           os.path.join(directory, path)))
        if name == "key":
            key = value
        else:
            secret = value
    return key, secret


def main(argv=None, out=sys.stdout, prog="python -m components.iot.device_simulator"):
    """The command line; returns the exit code."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    settings = Settings({})
    parser.add_argument("--url", default="http://127.0.0.1:{}/publish".format(settings.get(core_settings.PORT)))
    parser.add_argument("--key")
    parser.add_argument("--secret")
    parser.add_argument("--cbdir", help="node directory holding the device's credentials file, or the dev "
                                        "shared credentials (with --shared)")
    parser.add_argument("--device", default=settings.get(iot_settings.DEVICE_NAME),
                        help="the registered device name (default DEVICE_NAME, else nodemcu-1)")
    parser.add_argument("--shared", action="store_true",
                        help="deprecated shared key: post on iot.device.reading (hub needs DEVICE_SHARED_KEY=on)")
    parser.add_argument("--value", type=int, action="append", required=True,
                        help="percentage; repeat to send several")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between values")
    parser.add_argument("--seq", type=int, default=1, help="sequence number of the first post")
    parser.add_argument("--timestamp", help="override the timestamp (to try the bridge's time window)")
    parser.add_argument("--cafile")
    parser.add_argument("--fingerprint", help="pinned SHA-256 fingerprint of the server certificate (hex)")
    args = parser.parse_args(argv)
    key, secret = credentials(args.key, args.secret, directory=args.cbdir, shared=args.shared, device=args.device)
    make_body = shared_body if args.shared else body
    parts = urlsplit(args.url)
    failed = 0
    for index, value in enumerate(args.value):
        if index and args.interval:
            time.sleep(args.interval)
        stamp = args.timestamp or timestamp()
        raw = request_bytes(parts.netloc, parts.path or "/publish", key, secret, stamp, args.seq + index,
                            secrets.randbelow(2 ** 31), make_body(args.device, value))
        try:
            status, text = send(args.url, raw, cafile=args.cafile, fingerprint=args.fingerprint)
        except OSError as error:  # refused, unreachable, timed out, TLS
            raise SystemExit("cannot post to {}: {}".format(args.url, error))
        out.write("{} {} {}\n".format(value, status, text.strip()))
        failed += status != 200
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(outcome(main))
