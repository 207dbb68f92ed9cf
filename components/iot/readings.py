"""
Turning a byte stream from a serial device into integer readings: lines are
split on ``\\n``, and anything that is not a short ASCII integer (text,
wrong encoding, a line that never ends, a fragment cut off by a disconnect)
is rejected with a reason instead of being published.
"""

import re

MAX_LINE = 64
_INTEGER = re.compile(rb"^[+-]?[0-9]{1,12}$")


class Garbage(ValueError):
    """A line that is not a reading; ``reason`` says why, ``line`` holds (the start of) it."""

    def __init__(self, reason, line=b""):
        ValueError.__init__(self, reason)
        self.reason = reason
        self.line = line[:MAX_LINE]


def parse_reading(line):
    """The integer in ``line`` (bytes without the newline), else raise Garbage."""
    text = line.strip(b" \t\r")
    if not text:
        raise Garbage("empty line", line)
    try:
        text.decode("ascii")
    except UnicodeDecodeError:
        raise Garbage("not ASCII", line)
    if not _INTEGER.match(text):
        raise Garbage("not an integer", line)
    return int(text)


class LineSplitter:
    """
    Collects bytes and yields complete lines. A line longer than
    ``max_line`` is dropped up to its newline and reported once as garbage;
    ``resync()`` drops the fragment up to the next newline (after opening a
    port mid-stream); ``reset()`` reports an unfinished fragment as garbage.
    """

    def __init__(self, max_line=MAX_LINE):
        self.max_line = max_line
        self.buffer = b""
        self.skipping = None

    def resync(self):
        self.buffer = b""
        self.skipping = "partial line"

    def feed(self, data):
        """Yield ``(line, None)`` per complete line and ``(fragment, Garbage)`` per rejected one."""
        self.buffer += data
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[:end], self.buffer[end + 1:]
            if self.skipping is not None:
                reason, self.skipping = self.skipping, None
                if reason == "partial line":
                    yield line, Garbage(reason, line)
                continue
            if len(line) > self.max_line:
                yield line, Garbage("line too long", line)
                continue
            yield line, None
        if len(self.buffer) > self.max_line:
            if self.skipping is None:
                yield self.buffer, Garbage("line too long", self.buffer)
            self.skipping = self.skipping or "line too long"
            self.buffer = b""

    def reset(self):
        """Forget the unfinished fragment; return a Garbage for it, or None."""
        fragment, self.buffer, self.skipping = self.buffer, b"", None
        if fragment.strip():
            return Garbage("partial line", fragment)
        return None
