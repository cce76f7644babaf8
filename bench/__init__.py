"""Benchmarks for taskservice: `make bench` (python -m bench.run) prints the table (bench/README.md)."""
