"""Timed comparisons of terracover's hot paths against what they replace: ``python -m benchmarks.X``."""
