"""Benchmarks: `make bench` or `python -m benchmarks [NAME ...] [--device cuda]`.

Each prints its figures and appends them to benchmarks/results/results.jsonl; BENCHMARKS.md
records the latest figures with the machine, the command and the date. Not part of `make test`.
"""
