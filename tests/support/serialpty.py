"""
A pseudo-terminal pair playing a serial device (the Arduino): the hub opens
``path``, a symlink to the pty's slave side as /dev/ttyACM0 would be; the
test writes on the master side. ``unplug()`` / ``plug()`` make the device
vanish and come back at the same path.
"""

import os
import shutil
import tempfile
import tty


class FakeArduino:
    """A pty pair behind a stable device path."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="hub-serial-")
        self.path = os.path.join(self.directory, "ttyACM0")
        self.master = self.slave = None
        self.plug()

    def plug(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        link = self.path + ".new"
        os.symlink(os.ttyname(self.slave), link)
        os.replace(link, self.path)

    def unplug(self):
        os.close(self.master)
        os.close(self.slave)
        os.unlink(self.path)
        self.master = self.slave = None

    def write(self, data):
        """Write all of ``data`` on the master side (blocks while the pty buffer is full)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def close(self):
        if self.master is not None:
            self.unplug()
        shutil.rmtree(self.directory, ignore_errors=True)
