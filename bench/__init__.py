"""Benchmarks, one experiment per module, run from the project root: `python -m bench.sign` (or apns, latency,
fanout). Their shared processes, databases and readings are in bench/harness.py; figures in docs/performance.md."""
