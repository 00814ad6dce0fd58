"""The ledger's tree against two Python Merkle libraries at the same size (DESIGN §8).

Every contender gets the same raw leaves (bytes; ``merkletools`` takes ``str``, so it is handed the
same leaves decoded once, before any timing) and does the same work: hash each leaf itself, build what
it keeps, then answer inclusion proofs for the same random leaf indices.

- ``merkletools`` 1.0.3 (installed with ``--no-deps``, SHA-256): ``add_leaf(leaves, do_hash=True)``
  then ``make_tree()``, which builds every level in memory, root included; no leaf/node domain
  separation. Proofs: ``get_proof(i)`` (sibling hashes as hex).
- ``pymerkle`` (RFC 9162, ``InmemoryTree``): ``append_entries(leaves)``, a node object per node, the
  right edge rehashed on every append. Proofs: ``prove_inclusion(i + 1, n)``.
- ``shulian`` is ``ledger.tree.MemoryTree``: the tree's stored nodes (every complete subtree, the
  rows the ledger keeps in ``tree_nodes``) as one list per level; ``extend_entries(leaves)`` hashes the
  leaves and completes the nodes a level at a time, then ``root()``. Proofs: ``inclusion_proof(i, n)``
  reads the stored siblings by walking the index bits and folds the ragged right-edge sibling from
  stored nodes on every call (nothing derived is cached between proofs).

``build_s`` is each library's batch path (the one above); ``build_per_leaf_s`` feeds the same leaves
one call at a time (``merkletools.add_leaf(leaf)``, ``pymerkle.append_entry(leaf)``,
``MemoryTree.append(leaf_hash(leaf))``), then the same ``make_tree``/``root``. Timing: ``reps``
rounds, the libraries interleaved within each round (so background load hits all of them alike),
``gc.collect()`` before each timed build, the garbage collector otherwise left on; a figure is the
median over the rounds of wall-clock time (``time.perf_counter``), with the process CPU time
(``time.process_time``) beside it. ``proof_ms`` times each proof call on its own; per round it is the
median over the ``samples`` indices, and the figure is the median over rounds. Results are checked
outside the timed sections: ``shulian``'s and ``pymerkle``'s roots and proofs agree and verify, and
``merkletools``'s proofs validate with its own ``validate_proof``.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from ledger.tree import MemoryTree, leaf_hash, verify_inclusion

REPS = 5


def _leaves(n: int) -> list[bytes]:
    return [f'{{"seq":{i},"type":"record.commit","body":"{i * 7919:x}"}}'.encode() for i in range(n)]


class _Contender:
    """One library: how it builds (batch and per leaf), proves, and is checked."""

    name = ""
    note: str | None = None

    def __init__(self, data: list[bytes]) -> None:
        self.data = data
        self.n = len(data)

    def build(self) -> Any:
        raise NotImplementedError

    def build_per_leaf(self) -> Any:
        raise NotImplementedError

    def prover(self, tree: Any) -> Callable[[int], Any]:
        raise NotImplementedError

    def check(self, tree: Any, indices: list[int]) -> None:
        raise NotImplementedError


class _Shulian(_Contender):
    name = "shulian"

    def build(self) -> MemoryTree:
        tree = MemoryTree()
        tree.extend_entries(self.data)
        tree.root()
        return tree

    def build_per_leaf(self) -> MemoryTree:
        tree = MemoryTree()
        append = tree.append
        for leaf in self.data:
            append(leaf_hash(leaf))
        tree.root()
        return tree

    def prover(self, tree: MemoryTree) -> Callable[[int], list[bytes]]:
        n = self.n
        return lambda i: tree.inclusion_proof(i, n)

    def check(self, tree: MemoryTree, indices: list[int]) -> None:
        root = tree.root()
        for i in indices:
            verify_inclusion(i, self.n, leaf_hash(self.data[i]), tree.inclusion_proof(i, self.n), root)


class _Pymerkle(_Contender):
    name = "pymerkle"

    def __init__(self, data: list[bytes], ours: MemoryTree) -> None:
        super().__init__(data)
        from pymerkle import InmemoryTree

        self.cls = InmemoryTree
        self.ours = ours

    def build(self) -> Any:
        tree = self.cls(algorithm="sha256")
        tree.append_entries(self.data)
        tree.get_root()
        return tree

    def build_per_leaf(self) -> Any:
        tree = self.cls(algorithm="sha256")
        append = tree.append_entry
        for leaf in self.data:
            append(leaf)
        tree.get_root()
        return tree

    def prover(self, tree: Any) -> Callable[[int], Any]:
        n = self.n
        return lambda i: tree.prove_inclusion(i + 1, n)

    def check(self, tree: Any, indices: list[int]) -> None:
        if bytes(tree.get_root()) != self.ours.root():
            raise AssertionError("pymerkle and ledger.tree disagree on the root")
        for i in indices[:50]:
            theirs = [bytes(h) for h in tree.prove_inclusion(i + 1, self.n).path]
            if theirs != [leaf_hash(self.data[i]), *self.ours.inclusion_proof(i, self.n)]:
                raise AssertionError(f"pymerkle and ledger.tree disagree on the inclusion proof of {i}")


class _Merkletools(_Contender):
    name = "merkletools"
    note = "no leaf/node domain separation, no consistency proofs; rebuilds the whole tree"

    def __init__(self, data: list[bytes]) -> None:
        super().__init__(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sha3 is not working!": it is installed without pysha3
            import merkletools

        self.cls = merkletools.MerkleTools
        self.texts = [leaf.decode() for leaf in data]  # its input type, converted before any timing

    def build(self) -> Any:
        tree = self.cls(hash_type="sha256")
        tree.add_leaf(self.texts, do_hash=True)
        tree.make_tree()
        return tree

    def build_per_leaf(self) -> Any:
        tree = self.cls(hash_type="sha256")
        add = tree.add_leaf
        for text in self.texts:
            add(text, do_hash=True)
        tree.make_tree()
        return tree

    def prover(self, tree: Any) -> Callable[[int], Any]:
        return tree.get_proof  # type: ignore[no-any-return]

    def check(self, tree: Any, indices: list[int]) -> None:
        root = tree.get_merkle_root()
        for i in indices[:50]:
            if not tree.validate_proof(tree.get_proof(i), tree.get_leaf(i), root):
                raise AssertionError(f"merkletools does not validate its own proof of {i}")


def _timed(build: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds of one build (after a full collection; the tree is dropped after timing)."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    tree = build()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    del tree  # freed after the clock stops
    return wall, cpu


def _proof_round(prove: Callable[[int], Any], indices: list[int]) -> tuple[float, float]:
    """Median wall seconds of one proof over ``indices``, and the CPU seconds per proof overall."""
    times = []
    perf = time.perf_counter
    cpu = time.process_time()
    for i in indices:
        t = perf()
        prove(i)
        times.append(perf() - t)
    return statistics.median(times), (time.process_time() - cpu) / len(indices)


def _med(values: list[float], scale: float, digits: int) -> float:
    return round(statistics.median(values) * scale, digits)


def peers(n: int = 100_000, samples: int = 1000, reps: int = REPS) -> dict[str, Any]:
    data = _leaves(n)
    rng = random.Random(1)
    indices = [rng.randrange(n) for _ in range(samples)]
    out: dict[str, Any] = {
        "leaves": n,
        "method": (
            f"medians over {reps} interleaved rounds; builds from the same raw leaves, each library hashing "
            f"its own; proofs for the same {samples} random indices, each call timed alone"
        ),
    }
    ours = _Shulian(data)
    contenders: list[_Contender] = []
    for name, make in (
        ("merkletools", lambda: _Merkletools(data)),
        ("pymerkle", lambda: _Pymerkle(data, ours.build())),
        ("shulian", lambda: ours),
    ):
        try:
            contenders.append(make())
        except ImportError as exc:
            out[name] = {"build_s": None, "proof_ms": None, "reason": f"not installed: {exc}"}

    runs: dict[str, dict[str, list[float]]] = {c.name: {} for c in contenders}
    for _ in range(reps):
        for c in contenders:  # each tree is dropped as soon as it is timed: no live tree slows another's build
            for kind, build in (("build", c.build), ("build_per_leaf", c.build_per_leaf)):
                wall, cpu = _timed(build)
                runs[c.name].setdefault(kind, []).append(wall)
                runs[c.name].setdefault(kind + "_cpu", []).append(cpu)
    trees = {c.name: c.build() for c in contenders}
    for c in contenders:
        c.check(trees[c.name], indices)
    for _ in range(reps):
        for c in contenders:
            median, cpu = _proof_round(c.prover(trees[c.name]), indices)
            runs[c.name].setdefault("proof", []).append(median)
            runs[c.name].setdefault("proof_cpu", []).append(cpu)

    for c in contenders:
        r = runs[c.name]
        fig: dict[str, Any] = {
            "build_s": _med(r["build"], 1, 3),
            "proof_ms": _med(r["proof"], 1000, 4),
            "build_cpu_s": _med(r["build_cpu"], 1, 3),
            "build_per_leaf_s": _med(r["build_per_leaf"], 1, 3),
            "build_per_leaf_cpu_s": _med(r["build_per_leaf_cpu"], 1, 3),
            "proof_cpu_ms": _med(r["proof_cpu"], 1000, 4),
            "build_s_rounds": [round(x, 3) for x in r["build"]],
        }
        if c.name == "shulian":
            fig["store"] = (
                "in memory: ledger.tree.MemoryTree, the stored nodes (every complete subtree, as in tree_nodes) "
                "as one list per level; batch build extend_entries(); proofs inclusion_proof() walking the "
                "index bits, the ragged right-edge sibling folded from stored nodes on every call"
            )
        else:
            fig["version"] = _version(c.name)
        if c.note:
            fig["note"] = c.note
        out[c.name] = fig
    return out


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    import json

    print(json.dumps(peers(), indent=1))
