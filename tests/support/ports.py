"""
TCP ports for test servers (nodes, Django, emulators) that no other test
process and no outgoing connection takes in the meantime.

A port chosen by binding port 0 comes from the kernel's ephemeral range,
the range every outgoing connection on the machine also draws from; and
between the choice and the server's ``listen`` (a Django migration, a node
boot: seconds on a loaded machine) the other trial worker may choose it
too. One CI run lost a node that way (``Address already in use``, the
router worker shut down before it was ready). So ports come from below
the ephemeral range, each reserved for this process by a file created
exclusively in one directory the test processes share; a reservation
whose process has ended is taken over.
"""

import atexit
import errno
import os
import random
import socket
import tempfile

LOWEST = 20000
RESERVATIONS = os.path.join(tempfile.gettempdir(), "hub-test-ports")
_mine = set()


def _ephemeral_low(path="/proc/sys/net/ipv4/ip_local_port_range"):
    try:
        with open(path) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reserve(port):
    """Whether ``port`` is now this process's: a new reservation file, or one left by an ended process."""
    os.makedirs(RESERVATIONS, exist_ok=True)
    path = os.path.join(RESERVATIONS, str(port))
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as handle:
                    owner = int(handle.read().strip())
            except (OSError, ValueError):
                return False  # being written by its owner right now
            if owner == os.getpid() or _alive(owner):
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(str(os.getpid()))
        _mine.add(port)
        return True
    return False


def _bindable(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(chooser=random.randrange):
    """A TCP port on 127.0.0.1, free now, below the ephemeral range, and reserved for this process."""
    highest = _ephemeral_low() - 1
    if highest < LOWEST + 1000:
        raise RuntimeError("the kernel's ephemeral port range starts at {} (net.ipv4.ip_local_port_range): "
                           "test servers need ports {} and up outside it".format(highest + 1, LOWEST))
    for _ in range(1000):
        port = chooser(LOWEST, highest + 1)
        if port not in _mine and _reserve(port) and _bindable(port):
            return port
    raise RuntimeError("no free port between {} and {} after 1000 tries".format(LOWEST, highest))


@atexit.register
def _release():
    for port in list(_mine):
        try:
            os.unlink(os.path.join(RESERVATIONS, str(port)))
        except OSError:
            pass
