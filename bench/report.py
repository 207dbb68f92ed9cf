"""
Shared pieces of the benchmarks' reports: percentiles and latency summaries,
the latency table rows, writing ``bench/results/<name>.{md,json}`` (the JSON
holds summaries; raw samples go to a git-ignored ``<name>.samples.json.gz``),
and matplotlib (headless) when installed.
"""

import gzip
import json
import os
import statistics

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
LATENCY_HEADER = ["| run | samples | p50 ms | p99 ms | mean ms | max ms |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]


def percentile(samples, fraction, digits=None):
    """
    The sample at rank ``round(fraction * (n - 1))`` of the sorted ``samples``
    (nearest rank, no interpolation), rounded to ``digits`` when given; None
    when there are no samples.
    """
    ordered = sorted(samples)
    if not ordered:
        return None
    value = ordered[min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))]
    return value if digits is None else round(value, digits)


def histogram_percentile(hist, bucket_ms, fraction):
    """
    The ``fraction`` percentile of a latency histogram ``{bucket index: count}``
    of ``bucket_ms`` wide buckets: the upper edge (ms, 0.1 precision) of the
    bucket where the running count reaches ``fraction`` of the total; None when empty.
    """
    total = sum(hist.values())
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return round((bucket + 1) * bucket_ms, 1)
    return None


def latency_summary(samples, digits=2):
    """``{n, p50_ms, p99_ms, mean_ms, max_ms}`` of non-empty ``samples`` (ms), rounded to ``digits``."""
    return {"n": len(samples), "p50_ms": percentile(samples, 0.5, digits),
            "p99_ms": percentile(samples, 0.99, digits), "mean_ms": round(statistics.mean(samples), digits),
            "max_ms": round(max(samples), digits)}


def latency_rows(runs):
    """Markdown table lines for ``{name: summary}`` (summary: n, p50_ms, p99_ms, mean_ms, max_ms)."""
    return LATENCY_HEADER + ["| {} | {n} | {p50_ms} | {p99_ms} | {mean_ms} | {max_ms} |".format(name, **run)
                             for name, run in runs.items()]


def split_samples(results):
    """
    ``(summary, raw)``: ``results`` without its ``"samples"`` lists (at any
    depth), and the same nesting holding only those lists (None when there are none).
    """
    if not isinstance(results, dict):
        return results, None
    summary, raw = {}, {}
    for key, value in results.items():
        if key == "samples" and isinstance(value, list):
            raw[key] = value
            continue
        summary[key], inner = split_samples(value)
        if inner is not None:
            raw[key] = inner
    return summary, raw or None


def save_json(name, results, directory=None):
    """
    Write the summary of ``results`` to <directory>/<name>.json and its raw
    samples, if any, to <directory>/<name>.samples.json.gz (git-ignored);
    ``directory`` defaults to bench/results.
    """
    directory = directory or RESULTS
    os.makedirs(directory, exist_ok=True)
    summary, raw = split_samples(results)
    with open(os.path.join(directory, name + ".json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    if raw is not None:
        with gzip.open(os.path.join(directory, name + ".samples.json.gz"), "wt") as handle:
            json.dump(raw, handle)


def save(name, text, results):
    """Print ``text`` and write it to results/<name>.md, ``results`` as :func:`save_json` does."""
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name + ".md"), "w") as handle:
        handle.write(text)
    save_json(name, results)


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
