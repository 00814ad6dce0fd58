"""`make bench`: throughput and latency figures for the ledger (see bench/run.py)."""
