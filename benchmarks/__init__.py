"""Benchmarks: clonekit side by side with the established tools. Not tests; they print ratios."""
