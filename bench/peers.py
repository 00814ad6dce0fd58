"""The ledger's tree against two Python Merkle libraries at the same size (DESIGN §8).

Every contender gets the same leaf data and does the same work: hash each leaf, build whatever it
keeps, then answer inclusion proofs for random leaves. ``merkletools`` (installed with
``--no-deps``, SHA-256) rebuilds its whole tree in memory and has no domain separation; ``pymerkle``
is RFC 9162 with an in-memory store. ``shulian`` is ``ledger.tree``: a ``CompactRange`` that emits each
completed subtree once, kept in a dict (the same records the ledger writes to ``tree_nodes``), and
proofs planned by ``plan_inclusion`` and folded from those stored nodes.
"""

from __future__ import annotations

import random
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from ledger.tree import CompactRange, Node, leaf_hash, plan_inclusion, verify_inclusion


def _leaves(n: int) -> list[bytes]:
    return [f'{{"seq":{i},"type":"record.commit","body":"{i * 7919:x}"}}'.encode() for i in range(n)]


def _time_proofs(prove: Callable[[int], Any], n: int, samples: int, seed: int) -> float:
    rng = random.Random(seed)
    times = []
    for _ in range(samples):
        i = rng.randrange(n)
        t = time.perf_counter()
        prove(i)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 4)


def bench_shulian(data: list[bytes], samples: int) -> dict[str, Any]:
    n = len(data)
    t = time.perf_counter()
    stored: dict[Node, bytes] = {}
    cr = CompactRange()
    for leaf in data:
        for node, h in cr.append(leaf_hash(leaf)):
            stored[node] = h
    root = cr.root()
    build = time.perf_counter() - t

    def prove(i: int) -> list[bytes]:
        return plan_inclusion(i, n).assemble(stored)

    verify_inclusion(5, n, leaf_hash(data[5]), prove(5), root)
    return {
        "build_s": round(build, 3),
        "proof_ms": _time_proofs(prove, n, samples, 1),
        "store": "in memory: CompactRange emitting completed subtrees into a dict (the tree_nodes rows)",
    }


def bench_pymerkle(data: list[bytes], samples: int) -> dict[str, Any]:
    from pymerkle import InmemoryTree

    n = len(data)
    t = time.perf_counter()
    tree = InmemoryTree(algorithm="sha256")
    for leaf in data:
        tree.append_entry(leaf)
    build = time.perf_counter() - t
    ours = CompactRange()
    for leaf in data:
        ours.append(leaf_hash(leaf))
    if tree.get_root() != ours.root():
        raise AssertionError("pymerkle and ledger.tree disagree on the root")
    return {
        "build_s": round(build, 3),
        "proof_ms": _time_proofs(lambda i: tree.prove_inclusion(i + 1, n), n, samples, 1),
        "version": _version("pymerkle"),
    }


def bench_merkletools(data: list[bytes], samples: int) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sha3 is not working!": it is installed without pysha3
        import merkletools

    t = time.perf_counter()
    tree = merkletools.MerkleTools(hash_type="sha256")
    for leaf in data:
        tree.add_leaf(leaf.decode(), do_hash=True)
    tree.make_tree()
    build = time.perf_counter() - t
    return {
        "build_s": round(build, 3),
        "proof_ms": _time_proofs(tree.get_proof, len(data), samples, 1),
        "version": _version("merkletools"),
        "note": "no leaf/node domain separation, no consistency proofs; rebuilds the whole tree",
    }


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def peers(n: int = 100_000, samples: int = 1000) -> dict[str, Any]:
    data = _leaves(n)
    out: dict[str, Any] = {"leaves": n}
    for name, fn in (("merkletools", bench_merkletools), ("pymerkle", bench_pymerkle), ("shulian", bench_shulian)):
        try:
            out[name] = fn(data, samples)
        except ImportError as exc:
            out[name] = {"build_s": None, "proof_ms": None, "reason": f"not installed: {exc}"}
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(peers(), indent=1))
