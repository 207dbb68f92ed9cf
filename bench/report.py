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


def latency_plot(runs, xlabel, ylabel, title, filename):
    """A log-x CDF of every run's ``samples`` (ms) in ``runs`` ({name: run}), saved as results/``filename``."""
    plt = pyplot()
    if plt is None:
        return
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, run in runs.items():
        if run.get("samples"):
            ordered = sorted(run["samples"])
            axis.plot(ordered, [i / len(ordered) for i in range(1, len(ordered) + 1)], label=name)
    axis.set_xscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(RESULTS, filename), dpi=110)
