"""Proof latency through ``ledger.log.LogReader`` on a built SQLite ledger (what the API serves)."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from ledger.log import LogReader
from ledger.store import Store
from ledger.tree import verify_consistency, verify_inclusion


def proof_latency(db: str, *, samples: int = 1000, seed: int = 7) -> dict[str, Any]:
    """p50 (and p90) milliseconds of inclusion proofs by leaf hash and consistency proofs to the head."""
    rng = random.Random(seed)
    store = Store(db)
    reader = LogReader(store)
    size = reader.size()
    seqs = [rng.randrange(size) for _ in range(samples)]
    with store.reader() as conn:
        hashes = {
            int(r[0]): bytes(r[1])
            for r in conn.exec_driver_sql(
                f"SELECT seq, leaf_hash FROM entries WHERE seq IN ({','.join(map(str, set(seqs)))})"
            )
        }
    root = reader.root(size)
    inclusion: list[float] = []
    for i, seq in enumerate(seqs):
        t = time.perf_counter()
        proof = reader.inclusion(hashes[seq])
        inclusion.append(time.perf_counter() - t)
        if i < 20:  # the figures are for correct proofs
            verify_inclusion(proof.seq, proof.tree_size, hashes[seq], proof.hashes, root)
    consistency: list[float] = []
    for i in range(samples):
        first = rng.randrange(1, size + 1)
        t = time.perf_counter()
        path = reader.consistency(first, size)
        consistency.append(time.perf_counter() - t)
        if i < 20:
            verify_consistency(first, size, reader.root(first), root, path)
    store.close()
    return {
        "tree_size": size,
        "inclusion_p50_ms": _ms(statistics.median(inclusion)),
        "inclusion_p90_ms": _ms(statistics.quantiles(inclusion, n=10)[-1]),
        "consistency_p50_ms": _ms(statistics.median(consistency)),
        "consistency_p90_ms": _ms(statistics.quantiles(consistency, n=10)[-1]),
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 4)
