"""Benchmarks run against the real stack (see bench/turns.py)."""
