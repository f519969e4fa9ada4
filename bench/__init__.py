"""Benchmarks (``make bench``): start a stack the way ``make run`` does, drive it over HTTP, print a table."""
