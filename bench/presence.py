"""
What one ``hub.presence`` answer costs as a topic's audience grows: the
index (components.presence.index) filled from meta events for N sessions of
N/4 users on one topic, then the answer built for an admin (counts and the
sorted names) timed many times. Prints and writes bench/results/presence.md
and .json.

    .venv/bin/python bench/presence.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import report  # noqa: E402
from components.presence import PEOPLE_ROLES  # noqa: E402
from components.presence.component import answer  # noqa: E402
from components.presence.index import PresenceIndex  # noqa: E402

AUDIENCES = (100, 1000, 4000, 16000)
REPEATS = 200


def filled(sessions):
    """An index with ``sessions`` subscribers of ``time.tic`` (four sessions per user)."""
    index = PresenceIndex(PEOPLE_ROLES)
    index.created(10, "time.tic", "exact")
    for session in range(sessions):
        index.joined(session, "user{}".format(session // 4), "user")
        index.subscribed(session, 10)
    return index


def measure(sessions):
    index = filled(sessions)
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer(index, "time.tic", "admin")
        samples.append((time.perf_counter() - started) * 1000.0)
    return {"sessions": sessions, "repeats": REPEATS, "p50_ms": report.percentile(samples, 0.5, 3),
            "p99_ms": report.percentile(samples, 0.99, 3)}


def main():
    runs = [measure(sessions) for sessions in AUDIENCES]
    lines = ["# Presence answer cost", "",
             "One `hub.presence(topic)` answer for an admin (counts and sorted names), {} repeats per audience,"
             " four sessions per user; the index is kept from meta events, so no database or meta call is in"
             " the answer.".format(REPEATS), "",
             "| subscribers | users | p50 ms | p99 ms |", "| ---: | ---: | ---: | ---: |"]
    for run in runs:
        lines.append("| {} | {} | {} | {} |".format(run["sessions"], run["sessions"] // 4, run["p50_ms"],
                                                   run["p99_ms"]))
    report.save("presence", "\n".join(lines) + "\n", {"runs": runs})


if __name__ == "__main__":
    main()
