"""
The firmware logic compiled on this machine with g++ against the Arduino
stand-in (firmware/host/Arduino.h) and run: the Arduino sketch's dead band and
line format, the NodeMcu's SHA-256/HMAC, percentage and dead band, and its
request bytes, which must equal what the device simulator sends.
"""

import atexit
import functools
import os
import shutil
import tempfile

from twisted.internet import defer, utils
from twisted.trial import unittest

from components.iot import device_simulator
from components.iot.readings import LineSplitter, parse_reading
from components.mqtt import mqtt_topic
from components.mqtt.mqtt_connection import mqtt_reading
from tests.support.node import REPO

FIRMWARE = os.path.join(REPO, "firmware")
_binary = {}


@defer.inlineCallbacks
def host_binary():
    """Compile firmware/host/host_test.cpp once per test process; fire with the binary's path."""
    if "path" not in _binary:
        compiler = shutil.which("g++")
        if compiler is None:
            raise AssertionError("g++ is required (scripts/install-test-deps.sh installs it)")
        directory = tempfile.mkdtemp(prefix="hub-firmware-")
        atexit.register(functools.partial(shutil.rmtree, directory, ignore_errors=True))
        path = os.path.join(directory, "host_test")
        out, err, code = yield utils.getProcessOutputAndValue(compiler, (
            "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O1", "-I", os.path.join(FIRMWARE, "host"),
            os.path.join(FIRMWARE, "host", "host_test.cpp"), "-o", path), env=os.environ)
        if code != 0:
            raise AssertionError("firmware does not compile:\n" + err.decode())
        _binary["path"] = path
    return _binary["path"]


@defer.inlineCallbacks
def run(*args):
    """Run the host binary; fire with its stdout (bytes); fail on a non-zero exit."""
    path = yield host_binary()
    out, err, code = yield utils.getProcessOutputAndValue(path, [str(arg) for arg in args])
    if code != 0:
        raise AssertionError("host_test {} exited {}: {}".format(args, code, err.decode()))
    return out


class FirmwareTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_crypto_known_answers(self):
        """The NodeMcu's SHA-256 and HMAC-SHA256 give the FIPS 180 and RFC 4231 answers."""
        out = yield run("selftest")
        self.assertEqual(out, b"ok\n")

    @defer.inlineCallbacks
    def test_arduino_sketch_dead_band(self):
        """The Arduino sketch writes the first reading, then only moves beyond 2 steps, as parseable lines."""
        out = yield run("potentiometer", 0, 1, 2, 3, 512, 513, 510, 509, 1023, 1023)
        header, _, serial = out.partition(b"\n")
        self.assertEqual(header, b"baud=9600 elapsed_ms=1000")
        self.assertEqual(serial, b"0\r\n3\r\n512\r\n509\r\n1023\r\n")
        lines = [line for line, garbage in LineSplitter().feed(serial) if garbage is None]
        self.assertEqual([parse_reading(line) for line in lines], [0, 3, 512, 509, 1023])

    @defer.inlineCallbacks
    def test_percent_and_dead_band(self):
        """Raw 0..1023 maps to 0..100 %, and a post goes out only when it moves by more than 1 point."""
        out = yield run("percent", 0, 10, 20, 512, 520, 530, 1023, 1024)
        self.assertEqual(out.decode().split("\n")[:-1],
                         ["0 1", "1 0", "2 1", "50 1", "51 0", "52 1", "100 1", "100 0"])

    @defer.inlineCallbacks
    def test_request_equals_simulator(self):
        """For the same inputs the sketch's request bytes equal the device simulator's (a body on the device's
        own topic iot.device.<name>, the longest name included)."""
        cases = [("127.0.0.1:8080", "/publish", "k", "secret-secret-16", 1_700_000_000, 1, 99, "nodemcu-1",
                  42),
                 ("hub.example.org", "/publish", "A" * 64, "s" * 80, 2_000_000_123, 4_000_000_000,
                  2 ** 31 - 1, "kitchen", 0),
                 ("hub.example.org:8443", "/publish", "k.e_y~1", "x" * 16, 1_800_000_000, 7, 0, "n", 100),
                 ("hub.example.org", "/publish", "dk" + "0" * 24, "s" * 43, 1_800_000_000, 8, 5, "d_" + "x" * 62, 55)]
        for host, path, key, secret, epoch, seq, nonce, name, value in cases:
            out = yield run("request", host, path, key, secret, epoch, seq, nonce, name, value)
            expected = device_simulator.request_bytes(host, path, key, secret, device_simulator.timestamp(epoch), seq, nonce,
                                            device_simulator.body(name, value))
            self.assertEqual(out, expected)
            self.assertTrue(out.endswith(b'{"topic":"iot.device.%s","args":[{"value":%d}]}' % (name.encode(), value)))

    @defer.inlineCallbacks
    def test_mqtt_sketch(self):
        """The MQTT sketch's topic and payloads are what the hub's MQTT listener accepts for the device; a
        value goes out when it moves beyond 1 point, or unchanged again after 20 s of quiet."""
        name = "d_" + "x" * 62
        out = yield run("mqtt", name, "0@0", "10@200", "20@400", "512@600", "512@20599", "512@20600",
                        "1023@20800", "1024@21000")
        topic, *reads = out.decode().split("\n")[:-1]
        self.assertEqual(topic, mqtt_topic(name))
        self.assertEqual([read.split(" ")[:2] for read in reads],
                         [["0", "1"], ["1", "0"], ["2", "1"], ["50", "1"], ["50", "0"], ["50", "1"],
                          ["100", "1"], ["100", "0"]])
        for read in reads:
            value, published, payload = read.split(" ")
            if published == "1":
                self.assertEqual(mqtt_reading(payload.encode(), name), int(value))
