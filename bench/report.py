"""
Shared pieces of the benchmarks' reports: the latency table rows, writing
``bench/results/<name>.{md,json}``, and matplotlib (headless) when installed.
"""

import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
LATENCY_HEADER = ["| run | samples | p50 ms | p99 ms | mean ms | max ms |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]


def latency_rows(runs):
    """Markdown table lines for ``{name: summary}`` (summary: n, p50_ms, p99_ms, mean_ms, max_ms)."""
    return LATENCY_HEADER + ["| {} | {n} | {p50_ms} | {p99_ms} | {mean_ms} | {max_ms} |".format(name, **run)
                             for name, run in runs.items()]


def save(name, text, results):
    """Print ``text`` and write it to results/<name>.md, ``results`` to results/<name>.json."""
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name + ".md"), "w") as handle:
        handle.write(text)
    with open(os.path.join(RESULTS, name + ".json"), "w") as handle:
        json.dump(results, handle, indent=2)


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None (with a hint) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install -e '.[bench]'): no plot")
        return None
    return plt
