"""ledger.tree against pymerkle 7, an independent RFC 9162 implementation (in memory, SHA-256, 0x00/0x01 prefixes).

Roots are compared at every size. Inclusion proofs have the same shape in both (pymerkle's path is
the leaf hash followed by the RFC 9162 audit path). pymerkle's consistency proofs take another
decomposition, so for those the ledger's proof is checked hash by hash against MTHs that pymerkle
computes over the ranges RFC 9162 §2.1.4.1 names, verified against pymerkle's roots, and pymerkle's
own proof is verified against the ledger's roots.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache

import pytest
from pymerkle import InmemoryTree, InvalidProof
from pymerkle import verify_consistency as pm_verify_consistency
from pymerkle import verify_inclusion as pm_verify_inclusion

from ledger import tree
from ledger.errors import ProofError

MAX_SIZE = 2000


def leaf_data(i: int) -> bytes:
    # Varying lengths, including empty leaves, so that leaf hashing is exercised too.
    return hashlib.sha256(b"pymerkle cross-check %d" % i).digest()[: i % 41]


@cache
def pm_tree() -> InmemoryTree:
    t = InmemoryTree(algorithm="sha256")
    assert t.security and t.algorithm == "sha256"
    for i in range(MAX_SIZE):
        t.append_entry(leaf_data(i))
    return t


@cache
def stored_nodes() -> dict[tree.Node, bytes]:
    """What the ledger stores for MAX_SIZE leaves: every complete subtree, as CompactRange emits them."""
    compact = tree.CompactRange()
    out: dict[tree.Node, bytes] = {}
    for i in range(MAX_SIZE):
        for node, h in compact.append(tree.leaf_hash(leaf_data(i))):
            assert node not in out
            out[node] = h
    return out


def ledger_root(size: int) -> bytes:
    nodes = stored_nodes()
    return tree.fold_range([nodes[n] for n in tree.root_nodes(size)])


def rfc_consistency_ranges(m: int, start: int, end: int, complete: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[start:end], b) of RFC 9162 §2.1.4.1 as leaf ranges (test-local transcription)."""
    n = end - start
    if m == n:
        return [] if complete else [(start, end)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*rfc_consistency_ranges(m, start, start + k, complete), (start + k, end)]
    return [*rfc_consistency_ranges(m - k, start + k, end, False), (start, start + k)]


@cache
def pm_range_root(start: int, end: int) -> bytes:
    sub = InmemoryTree(algorithm="sha256")
    for i in range(start, end):
        sub.append_entry(leaf_data(i))
    return bytes(sub.get_root())


def random_sizes(seed: int, count: int) -> list[int]:
    rng = random.Random(seed)
    edges = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 255, 256, 257, 1023, 1024, 1025, MAX_SIZE - 1, MAX_SIZE]
    return edges + [rng.randint(1, MAX_SIZE) for _ in range(count)]


def test_leaf_hashes_match() -> None:
    t = pm_tree()
    for i in range(0, MAX_SIZE, 7):
        assert tree.leaf_hash(leaf_data(i)) == bytes(t.get_leaf(i + 1))


def test_roots_match_at_every_size() -> None:
    t = pm_tree()
    assert ledger_root(0) == bytes(t.get_root(0)) == tree.EMPTY_ROOT
    compact = tree.CompactRange()
    for size in range(1, MAX_SIZE + 1):
        compact.append(tree.leaf_hash(leaf_data(size - 1)))
        want = bytes(t.get_root(size))
        assert compact.root() == want, size
        if size % 97 == 0 or size in (1, 2, 3, MAX_SIZE):
            assert ledger_root(size) == want, size


@pytest.mark.parametrize("seed", [1, 2])
def test_inclusion_proofs_match(seed: int) -> None:
    t = pm_tree()
    rng = random.Random(seed)
    nodes = stored_nodes()
    for size in random_sizes(seed, 40):
        root = bytes(t.get_root(size))
        for index in {0, size - 1, size // 2, rng.randrange(size), rng.randrange(size)}:
            mine = tree.plan_inclusion(index, size).assemble(nodes)
            theirs = t.prove_inclusion(index + 1, size)
            leaf = tree.leaf_hash(leaf_data(index))
            assert bytes(theirs.path[0]) == leaf
            assert mine == [bytes(h) for h in theirs.path[1:]], (index, size)
            tree.verify_inclusion(index, size, leaf, mine, root)
            pm_verify_inclusion(leaf, root, theirs, index=index + 1, size=size)


@pytest.mark.parametrize("seed", [3, 4])
def test_consistency_proofs_agree(seed: int) -> None:
    t = pm_tree()
    rng = random.Random(seed)
    nodes = stored_nodes()
    sizes = random_sizes(seed, 30)
    pairs = {(a, b) for b in sizes for a in {1, b, b // 2 or 1, rng.randint(1, b), rng.randint(1, b)}}
    for first, second in sorted(pairs):
        r1, r2 = bytes(t.get_root(first)), bytes(t.get_root(second))
        mine = tree.plan_consistency(first, second).assemble(nodes)
        # the same hashes as pymerkle's MTH over the ranges RFC 9162 names
        assert mine == [pm_range_root(a, b) for a, b in rfc_consistency_ranges(first, 0, second, True)]
        tree.verify_consistency(first, second, r1, r2, mine)
        # pymerkle's own proof verifies against the ledger's roots
        pm_verify_consistency(ledger_root(first), ledger_root(second), t.prove_consistency(first, second))


def test_mismatches_are_caught_by_both() -> None:
    """A proof for one tree does not verify against another's root, in either implementation."""
    t = pm_tree()
    nodes = stored_nodes()
    size, index = 1000, 321
    wrong_root = bytes(t.get_root(size + 1))
    leaf = tree.leaf_hash(leaf_data(index))
    with pytest.raises(ProofError):
        tree.verify_inclusion(index, size, leaf, tree.plan_inclusion(index, size).assemble(nodes), wrong_root)
    with pytest.raises(InvalidProof):
        pm_verify_inclusion(leaf, wrong_root, t.prove_inclusion(index + 1, size))
    with pytest.raises(ProofError):
        tree.verify_consistency(
            500, size, ledger_root(500), wrong_root, tree.plan_consistency(500, size).assemble(nodes)
        )
    with pytest.raises(InvalidProof):
        pm_verify_consistency(ledger_root(500), wrong_root, t.prove_consistency(500, size))
