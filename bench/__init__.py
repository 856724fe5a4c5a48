"""Benchmarks: pgtally against the same workload with no maintenance, in one run."""
