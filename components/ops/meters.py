"""
What the monitor measures besides the WAMP meta API: per-second rates of the
router's growing counters, and the worker process's CPU time and memory.
"""

import os
import resource

from components.ops import promtext


class RateMeter:
    """Per-second rates of growing counters between samples (``sample(now, counters)``)."""

    def __init__(self):
        self.previous = None
        self.rates = {}

    def sample(self, now, counters):
        if self.previous is not None:
            then, old = self.previous
            elapsed = now - then
            if elapsed > 0:
                self.rates = {key: max(0.0, (value - old.get(key, 0)) / elapsed) for key, value in counters.items()}
        self.previous = (now, dict(counters))
        return self.rates


def process_families():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = promtext.Family("hub_process_cpu_seconds_total", "counter", "CPU time of the router worker process")
    cpu.add(usage.ru_utime, mode="user").add(usage.ru_stime, mode="system")
    rss = promtext.Family("hub_process_resident_memory_bytes", "gauge", "Resident memory of the router worker")
    rss.add(resident_bytes())
    return [cpu, rss]


def resident_bytes():
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
