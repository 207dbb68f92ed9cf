"""
A pyserial port read in its own thread, so the reactor never blocks on it:
bytes, the open and the loss of the device are handed to the reactor thread
with ``callFromThread``. Works for every pyserial URL (``/dev/tty*``,
``socket://``, ``rfc2217://``, ``loop://``).
"""

import threading

import serial


def pyserial_opener(url, baudrate):
    """An opener for ``SerialThread``: opens ``url`` with a short read timeout."""
    def open_port():
        return serial.serial_for_url(url, baudrate=baudrate, timeout=0.1)
    return open_port


class SerialThread:
    """
    Opens a port with ``open_port()`` in a thread and reads until the port
    fails or ``stop()`` is called. In the reactor thread it calls
    ``opened(mid_stream)`` (``mid_stream`` is true when bytes were already
    waiting, so the first line may be a fragment), ``received(data)`` and,
    exactly once at the end, ``lost(reason)`` (None after ``stop()``).
    """

    chunk = 4096

    def __init__(self, reactor, open_port, opened, received, lost):
        self.reactor = reactor
        self.open_port = open_port
        self.opened = opened
        self.received = received
        self.lost = lost
        self.stopping = threading.Event()
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._run, name="serial-reader", daemon=True)
        self.thread.start()

    def stop(self):
        """Ask the thread to close the port and end; ``lost(None)`` follows."""
        self.stopping.set()

    def _run(self):
        reason = None
        port = None
        try:
            port = self.open_port()
            waiting = port.in_waiting
            self.reactor.callFromThread(self.opened, waiting > 0)
            while not self.stopping.is_set():
                data = port.read(max(1, min(port.in_waiting, self.chunk)))
                if data:
                    self.reactor.callFromThread(self.received, data)
        except Exception as error:  # pyserial raises SerialException, OSError, ValueError, ...
            reason = error
        finally:
            if port is not None:
                try:
                    port.close()
                except Exception:
                    pass
            self.reactor.callFromThread(self.lost, None if self.stopping.is_set() else reason)
