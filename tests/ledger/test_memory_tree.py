"""ledger.tree.MemoryTree against the planners and verifiers it must agree with.

Its stored nodes must be exactly what ``CompactRange.append`` emits (the ledger's ``tree_nodes``), and
its roots and proofs exactly ``fold_range``/``plan_*(...).assemble`` over those nodes, which the
``verify_*`` functions accept: for every size up to N (every index, every pair of sizes, asked of a
tree that has grown past them and of a tree at that size), and for random sizes and indices of a
tree too large to check exhaustively.
"""

from __future__ import annotations

import random
from functools import cache

import pytest

from ledger import tree
from ledger.errors import RangeError

N = 300
LARGE = 70_001


def entry(i: int) -> bytes:
    return b"memory tree entry %d;" % i * (i % 3) if i % 3 else b"%d" % i if i else b""  # varying lengths, one empty


@cache
def leaf_hashes(n: int) -> list[bytes]:
    return [tree.leaf_hash(entry(i)) for i in range(n)]


@cache
def stored(n: int) -> dict[tree.Node, bytes]:
    compact = tree.CompactRange()
    out: dict[tree.Node, bytes] = {}
    for h in leaf_hashes(n):
        for node, value in compact.append(h):
            assert node not in out
            out[node] = value
    return out


@cache
def grown(n: int) -> tree.MemoryTree:
    t = tree.MemoryTree()
    t.extend_entries([entry(i) for i in range(n)])
    return t


def plan_root(nodes: dict[tree.Node, bytes], size: int) -> bytes:
    return tree.fold_range([nodes[n] for n in tree.root_nodes(size)])


def test_stored_nodes_are_what_compact_range_emits() -> None:
    t = tree.MemoryTree()
    compact = tree.CompactRange()
    want: dict[tree.Node, bytes] = {}
    for size, h in enumerate(leaf_hashes(N), start=1):
        assert t.append(h) == size - 1
        want.update(compact.append(h))
        assert t.size == size
        assert t.stored() == want
        assert [len(row) for row in t.levels if row] == [size >> level for level in range(size.bit_length())]
        assert t.root() == compact.root()


def test_append_extend_and_extend_entries_agree() -> None:
    rng = random.Random(7)
    want = grown(N)
    for _ in range(20):
        by_hash, by_entry = tree.MemoryTree(), tree.MemoryTree()
        pos = 0
        while pos < N:
            step = rng.choice([1, 1, 2, 3, 5, 8, 64, 200])
            hashes = leaf_hashes(N)[pos : pos + step]
            if step == 1 and rng.random() < 0.5:
                by_hash.append(hashes[0])
            else:
                by_hash.extend(hashes)
            assert by_entry.extend_entries([entry(i) for i in range(pos, min(pos + step, N))]) == by_entry.size
            pos = min(pos + step, N)
            assert by_hash.levels == by_entry.levels
        assert by_hash.levels == want.levels
        assert by_hash.size == by_entry.size == N
    assert tree.MemoryTree().extend([]) == 0


def test_roots_at_every_size() -> None:
    t, nodes = grown(N), stored(N)
    assert t.root(0) == tree.MemoryTree().root() == tree.EMPTY_ROOT
    for size in range(1, N + 1):
        want = plan_root(nodes, size)
        assert want == tree.root_from_leaves(leaf_hashes(N)[:size])
        assert t.root(size) == want
        assert grown(size).root() == want


def test_inclusion_proofs_at_every_size_and_index() -> None:
    t, nodes = grown(N), stored(N)
    for size in range(1, N + 1):
        now = grown(size)
        root = plan_root(nodes, size)
        for index in range(size):
            proof = t.inclusion_proof(index, size)
            assert proof == tree.plan_inclusion(index, size).assemble(nodes), (index, size)
            assert now.inclusion_proof(index) == proof
            tree.verify_inclusion(index, size, leaf_hashes(N)[index], proof, root)


def test_consistency_proofs_for_every_pair_of_sizes() -> None:
    t, nodes = grown(N), stored(N)
    for second in range(1, N + 1):
        now = grown(second)
        second_root = plan_root(nodes, second)
        for first in range(1, second + 1):
            proof = t.consistency_proof(first, second)
            assert proof == tree.plan_consistency(first, second).assemble(nodes), (first, second)
            assert now.consistency_proof(first) == proof
            tree.verify_consistency(first, second, plan_root(nodes, first), second_root, proof)
    assert t.consistency_proof(N, N) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_large_sizes(seed: int) -> None:
    rng = random.Random(seed)
    t, nodes = grown(LARGE), stored(LARGE)
    assert t.stored() == nodes
    hashes = leaf_hashes(LARGE)
    edges = [LARGE, LARGE - 1, 1 << 16, (1 << 16) + 1, (1 << 16) - 1, 65_535 + 4_097]
    for size in edges + [rng.randint(1, LARGE) for _ in range(40)]:
        root = t.root(size)
        assert root == plan_root(nodes, size)
        for index in {0, size - 1, size // 2, *(rng.randrange(size) for _ in range(20))}:
            proof = t.inclusion_proof(index, size)
            assert proof == tree.plan_inclusion(index, size).assemble(nodes), (index, size)
            tree.verify_inclusion(index, size, hashes[index], proof, root)
        for first in {1, size, size // 2 or 1, *(rng.randint(1, size) for _ in range(10))}:
            proof = t.consistency_proof(first, size)
            assert proof == tree.plan_consistency(first, size).assemble(nodes), (first, size)
            tree.verify_consistency(first, size, t.root(first), root, proof)


def batch_proofs(start: int, end: int) -> tree.BatchNodes:
    """A batch of leaves [start, end) sealed on a tree of ``start`` leaves, as the sequencer keeps it."""
    hashes = leaf_hashes(LARGE)
    compact = tree.CompactRange()
    compact.extend_rows(hashes[:start], [])
    edge = list(zip(tree.root_nodes(start), compact.hashes, strict=True))
    rows: list[tuple[int, int, bytes]] = []
    compact.extend_rows(hashes[start:end], rows)
    return tree.BatchNodes(edge, rows)


def test_a_batch_proves_its_own_leaves_without_the_stored_tree() -> None:
    """Every leaf of every batch [start, end) for end up to 128: the proof from the batch's nodes alone
    is the proof from the whole tree (the sequencer answers appends with these)."""
    for end in range(1, 129):
        full = grown(end)
        for start in range(end):
            kept = batch_proofs(start, end)
            for index in range(start, end):
                assert kept.inclusion(index, end) == full.inclusion_proof(index), (start, end, index)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_batch_proves_its_leaves_at_large_sizes(seed: int) -> None:
    rng = random.Random(seed)
    full = grown(LARGE)
    for _ in range(40):
        end = rng.randrange(2, LARGE + 1)
        start = rng.randrange(max(0, end - 600), end)
        kept = batch_proofs(start, end)
        for index in {start, end - 1, rng.randrange(start, end)}:
            proof = kept.inclusion(index, end)
            assert proof == full.inclusion_proof(index, end), (start, end, index)
            tree.verify_inclusion(index, end, leaf_hashes(LARGE)[index], proof, full.root(end))


def test_bad_arguments() -> None:
    t = grown(10)
    for index, size in [(-1, 10), (10, 10), (0, 0), (0, 11), (5, 3)]:
        with pytest.raises(RangeError):
            t.inclusion_proof(index, size)
    for first, second in [(0, 5), (6, 5), (1, 11)]:
        with pytest.raises(RangeError):
            t.consistency_proof(first, second)
    for size in (-1, 11):
        with pytest.raises(RangeError):
            t.root(size)
    with pytest.raises(RangeError):
        tree.MemoryTree().inclusion_proof(0)
    empty = tree.MemoryTree()
    with pytest.raises(ValueError, match="32"):
        empty.append(b"short")
    with pytest.raises(ValueError, match="32"):
        empty.extend([tree.leaf_hash(b"a"), b"x" * 33])
    assert empty.size == 0
    assert empty.levels == [[]]
