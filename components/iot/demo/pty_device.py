"""
A pseudo-terminal playing a serial device: the master side is ours, the
slave side is what a program opens as the port (``/dev/pts/N``), reached
through a stable symlink (``<node dir>/run/arduino``) the way udev names an
Arduino ``/dev/ttyACM0``. The link is replaced atomically on every open, so
a restarted simulator never leaves a reader with a dangling or half-made
path, and removed on close.
"""

import errno
import os
import termios
import tty


class PseudoTerminal:
    """``open()`` makes the pty and the link, ``write(data)`` never blocks, ``close()`` undoes both."""

    def __init__(self, link):
        self.link = os.path.abspath(link)
        self.master = self.slave = None
        self.dropped = 0

    @property
    def device(self):
        """The slave's path (``/dev/pts/N``) while open."""
        return os.ttyname(self.slave) if self.slave is not None else None

    def open(self):
        self.master, self.slave = os.openpty()
        # raw like a USB serial line; the reader sets its own termios anyway
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        os.makedirs(os.path.dirname(self.link), exist_ok=True)
        fresh = "{}.{}.new".format(self.link, os.getpid())
        if os.path.lexists(fresh):
            os.unlink(fresh)
        os.symlink(self.device, fresh)
        os.replace(fresh, self.link)
        return self.link

    def write(self, data):
        """
        Write all of ``data``. When nobody reads and the line discipline's
        buffer is full, the unread backlog is discarded first, so a reader
        that opens the port later gets fresh readings, not a queue of old ones.
        """
        view = memoryview(data)
        flushed = False
        while view:
            try:
                view = view[os.write(self.master, view):]
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK) or flushed:
                    self.dropped += 1
                    return False
                termios.tcflush(self.slave, termios.TCIFLUSH)
                flushed = True
        return True

    def close(self):
        if self.slave is not None:
            try:
                if os.readlink(self.link) == self.device:
                    os.unlink(self.link)
            except OSError:
                pass
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None
