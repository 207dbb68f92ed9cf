"""Tests of the benchmark scripts in bench/ that run without running a benchmark."""
