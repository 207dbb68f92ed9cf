"""
bench/report.py: the one percentile rule of the benchmarks (nearest rank,
no interpolation), the latency summary, and results files that hold
summaries while the raw samples go to a compressed side file.
"""

import gzip
import json
import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from bench import report


class PercentileTests(SynchronousTestCase):

    def test_nearest_rank(self):
        """The sample at index round(fraction * (n - 1)) of the sorted samples, never an interpolation."""
        samples = [5, 1, 4, 2, 3]
        self.assertEqual(report.percentile(samples, 0.0), 1)
        self.assertEqual(report.percentile(samples, 0.5), 3)
        self.assertEqual(report.percentile(samples, 0.99), 5)
        self.assertEqual(report.percentile([1, 2, 3, 4], 0.5), 3)  # index round(1.5) = 2, not 2.5

    def test_digits_and_empty(self):
        self.assertEqual(report.percentile([1.23456, 2.34567], 1.0, 3), 2.346)
        self.assertIsNone(report.percentile([], 0.5))
        self.assertIsNone(report.percentile([], 0.5, 3))

    def test_histogram(self):
        """Upper edge of the bucket where the running count reaches the fraction."""
        hist = {0: 50, 3: 49, 20: 1}
        self.assertEqual(report.histogram_percentile(hist, 0.1, 0.5), 0.1)
        self.assertEqual(report.histogram_percentile(hist, 0.1, 0.99), 0.4)
        self.assertEqual(report.histogram_percentile(hist, 0.1, 1.0), 2.1)
        self.assertIsNone(report.histogram_percentile({}, 0.1, 0.5))

    def test_latency_summary(self):
        self.assertEqual(report.latency_summary([1.0, 2.0, 4.5], digits=1),
                         {"n": 3, "p50_ms": 2.0, "p99_ms": 4.5, "mean_ms": 2.5, "max_ms": 4.5})


class SaveJsonTests(SynchronousTestCase):

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="bench-report-")

    def read(self, name):
        with open(os.path.join(self.directory, name)) as handle:
            return json.load(handle)

    def test_samples_go_to_the_compressed_file(self):
        """The .json holds all but the ``samples`` lists; the .samples.json.gz holds them, same nesting."""
        results = {"machine": {"cpus": 2}, "runs": {"a": {"p50_ms": 1, "samples": [1, 2]},
                                                   "b": {"p50_ms": 3, "all": [3, 4]}}}
        report.save_json("x", results, self.directory)
        self.assertEqual(self.read("x.json"), {"machine": {"cpus": 2},
                                               "runs": {"a": {"p50_ms": 1}, "b": {"p50_ms": 3, "all": [3, 4]}}})
        with gzip.open(os.path.join(self.directory, "x.samples.json.gz"), "rt") as handle:
            self.assertEqual(json.load(handle), {"runs": {"a": {"samples": [1, 2]}}})
        self.assertEqual(results["runs"]["a"]["samples"], [1, 2])  # the caller's results stay whole (plots)

    def test_no_samples_no_side_file(self):
        report.save_json("y", {"rate": 5}, self.directory)
        self.assertEqual(self.read("y.json"), {"rate": 5})
        self.assertEqual(sorted(os.listdir(self.directory)), ["y.json"])

    def test_committed_results_hold_no_samples(self):
        """Every bench/results/*.json is a summary: no ``samples``, no list over 100 items, none over 100 KB."""
        def longest_list(value):
            if isinstance(value, dict):
                return max(map(longest_list, value.values()), default=0)
            if isinstance(value, list):
                return max([len(value)] + [longest_list(item) for item in value])
            return 0
        for name in sorted(os.listdir(report.RESULTS)):
            if name.endswith(".json"):
                path = os.path.join(report.RESULTS, name)
                with open(path) as handle:
                    results = json.load(handle)
                self.assertIsNone(report.split_samples(results)[1], name)
                self.assertLessEqual(longest_list(results), 100, name)
                self.assertLess(os.path.getsize(path), 100 * 1024, name)
