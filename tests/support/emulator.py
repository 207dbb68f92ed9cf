"""
The local AWS for tests: a real moto server process (SNS + SQS over HTTP)
on a free loopback port, shared by the tests of one process, and a TCP gate
that can cut one component's way to it (connection refused) and restore it.
Blocking boto3 calls run in threads (``blocking``).
"""

import atexit
import os
import signal
import socket
import subprocess
import sys

from twisted.internet import defer, threads

from components.usersync import aws
from tests.support.node import REPO, free_port
from tests.support.polling import eventually

BIN = os.path.dirname(sys.executable)
ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_processes = []


def blocking(fn, *args, **kwargs):
    """Run a blocking call (boto3, psycopg2) off the reactor thread."""
    return threads.deferToThread(fn, *args, **kwargs)


def _listening(port):
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@defer.inlineCallbacks
def _start(argv, port, timeout=30.0):
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, cwd=REPO)
    _processes.append(process)

    def listening():
        if _listening(port):
            return True
        if process.poll() is not None:
            raise AssertionError("{} exited before it listened on {}".format(argv[0], port))
        return False
    yield eventually(listening, timeout=timeout,
                     message="{} did not start listening on {}".format(argv[0], port))
    return process


def _kill(process):
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class MotoServer:
    """``moto_server`` on 127.0.0.1:<free port>."""

    def __init__(self):
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return "http://127.0.0.1:{}".format(self.port)

    @defer.inlineCallbacks
    def start(self):
        argv = [os.path.join(BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = yield _start(argv, self.port)
        return self

    def client(self, service, endpoint=None):
        return aws.make_client(service, endpoint or self.url, "us-east-1", attempts=3)

    def stop(self):
        _kill(self.process)


_shared = {}


@defer.inlineCallbacks
def shared_moto():
    """One moto server per test process, killed at exit."""
    server = _shared.get("moto")
    if server is None or server.process.poll() is not None:
        server = MotoServer()
        _shared["moto"] = server
        yield server.start()
    return server


class Gate:
    """
    A TCP forwarder in its own process (``python -m tests.support.emulator
    LISTEN TARGET``): ``close()`` kills it (the port refuses connections),
    ``open()`` starts it again on the same port.
    """

    def __init__(self, target_port):
        self.port = free_port()
        self.target_port = target_port
        self.process = None

    @property
    def url(self):
        return "http://127.0.0.1:{}".format(self.port)

    @defer.inlineCallbacks
    def open(self):
        self.process = yield _start([sys.executable, "-m", "tests.support.emulator", str(self.port),
                                     str(self.target_port)], self.port)
        return self

    def close(self):
        _kill(self.process)


@atexit.register
def _kill_all():
    for process in _processes:
        _kill(process)


def _forward(listen_port, target_port):
    from twisted.internet import reactor
    from twisted.protocols import portforward
    reactor.listenTCP(listen_port, portforward.ProxyFactory("127.0.0.1", target_port), interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    _forward(int(sys.argv[1]), int(sys.argv[2]))
