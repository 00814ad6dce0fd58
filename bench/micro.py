"""Single-core reference figures: Ed25519 verification and canonical JSON encoding."""

from __future__ import annotations

import json
import time
from typing import Any

import nacl.signing
import rfc8785

from bench.world import World, _Signer
from ledger.canonical import canonical_bytes
from ledger.timefmt import now_ts


def ed25519_verify_per_s(count: int = 20_000) -> float:
    """PyNaCl ``VerifyKey.verify`` on one core, on envelope-sized messages from 16 keys."""
    keys = [nacl.signing.SigningKey(bytes([i]) * 32) for i in range(16)]
    signed = [
        (bytes(k.verify_key), k.sign(b"m" * 420 + i.to_bytes(4, "big"))) for i, k in enumerate(keys * (count // 16))
    ]
    vks = {pub: nacl.signing.VerifyKey(pub) for pub, _ in signed}
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for pub, sm in signed:
            vks[pub].verify(sm)
        best = max(best, len(signed) / (time.perf_counter() - t))
    return round(best, 1)


def sample_envelopes(count: int = 4000) -> list[bytes]:
    """Realistic leaves: department and citizen registrations, datasets, records and consents."""
    world = World(bytes(range(32)), bytes(range(1, 33)), departments=10, citizens=500)
    signer = _Signer(world)
    ts = now_ts()
    setup = [signer.setup(i, ts) for i in range(min(world.setup_size, count // 4))]
    return setup + [signer.traffic(i, ts) for i in range(count - len(setup))]


def canonical_figures(count: int = 4000, rounds: int = 3) -> dict[str, Any]:
    """Per-envelope µs of the ``rfc8785`` package and of ``canonical_bytes``; asserts identical bytes."""
    leaves = sample_envelopes(count)
    values = [json.loads(leaf) for leaf in leaves]
    for leaf, value in zip(leaves, values, strict=True):
        ours, ref = canonical_bytes(value), rfc8785.dumps(value)
        if not ours == ref == leaf:
            raise AssertionError(f"canonical bytes differ from rfc8785 for {leaf[:80]!r}")

    def per_envelope(fn: Any) -> float:
        best = float("inf")
        for _ in range(rounds):
            t = time.perf_counter()
            for v in values:
                fn(v)
            best = min(best, (time.perf_counter() - t) / len(values))
        return round(best * 1e6, 2)

    ref_us = per_envelope(rfc8785.dumps)
    fast_us = per_envelope(canonical_bytes)
    return {
        "envelopes": len(values),
        "mean_bytes": round(sum(map(len, leaves)) / len(leaves)),
        "rfc8785_us": ref_us,
        "canonical_bytes_us": fast_us,
        "speedup": round(ref_us / fast_us, 2),
        "identical": True,
    }
