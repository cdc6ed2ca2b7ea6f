"""Benchmarks that print figures (run them as scripts, e.g. ``python bench/api_load.py --quick``)."""
