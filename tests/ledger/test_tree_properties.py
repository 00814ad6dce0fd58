"""Properties of ledger.tree: proofs planned from stored nodes verify, and any single-bit change breaks them.

"Stored nodes" are what ``CompactRange.append`` emits as leaves arrive, which is exactly what the
sequencer writes to ``tree_nodes``; proofs are assembled only from those (``ProofPlan.assemble``).
"""

from __future__ import annotations

import hashlib
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import tree
from ledger.errors import ProofError, RangeError

N = 300  # every size up to N, every index and every pair of sizes


def leaf_hash_at(i: int) -> bytes:
    return tree.leaf_hash(b"property leaf %d" % i)


@cache
def leaf_hashes() -> list[bytes]:
    return [leaf_hash_at(i) for i in range(N)]


@cache
def stored() -> dict[tree.Node, bytes]:
    compact = tree.CompactRange()
    out: dict[tree.Node, bytes] = {}
    for h in leaf_hashes():
        out.update(compact.append(h))
    return out


@cache
def root(size: int) -> bytes:
    nodes = stored()
    return tree.fold_range([nodes[n] for n in tree.root_nodes(size)])


def naive_root(hashes: list[bytes]) -> bytes:
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + naive_root(hashes[:k]) + naive_root(hashes[k:])).digest()


def naive_path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    if m < k:
        return [*naive_path(m, hashes[:k]), naive_root(hashes[k:])]
    return [*naive_path(m - k, hashes[k:]), naive_root(hashes[:k])]


def naive_subproof(m: int, hashes: list[bytes], complete: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if complete else [naive_root(hashes)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*naive_subproof(m, hashes[:k], complete), naive_root(hashes[k:])]
    return [*naive_subproof(m - k, hashes[k:], False), naive_root(hashes[:k])]


def inclusion(index: int, size: int) -> list[bytes]:
    return tree.plan_inclusion(index, size).assemble(stored())


def consistency(first: int, second: int) -> list[bytes]:
    return tree.plan_consistency(first, second).assemble(stored())


def flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


# -- exhaustive up to N ----------------------------------------------------------------------------


def test_stored_nodes_are_exactly_the_complete_subtrees() -> None:
    nodes = stored()
    want = {(level, idx) for level in range(N.bit_length()) for idx in range(N >> level)}
    assert set(nodes) == want
    for (level, idx), h in nodes.items():
        if level:
            assert h == tree.node_hash(nodes[level - 1, 2 * idx], nodes[level - 1, 2 * idx + 1])
        else:
            assert h == leaf_hashes()[idx]


def test_roots_match_the_naive_recursion_at_every_size() -> None:
    for size in range(N + 1):
        assert root(size) == naive_root(leaf_hashes()[:size]), size


def test_every_inclusion_proof_verifies() -> None:
    for size in range(1, N + 1):
        r = root(size)
        for index in range(size):
            tree.verify_inclusion(index, size, leaf_hashes()[index], inclusion(index, size), r)


def test_every_consistency_proof_verifies() -> None:
    for second in range(1, N + 1):
        r2 = root(second)
        for first in range(1, second + 1):
            tree.verify_consistency(first, second, root(first), r2, consistency(first, second))


def test_planned_proofs_equal_rfc9162_definitions() -> None:
    """Up to 64 leaves, every planned proof is exactly RFC 9162's PATH / PROOF."""
    hashes = leaf_hashes()
    for size in range(1, 65):
        for index in range(size):
            assert inclusion(index, size) == naive_path(index, hashes[:size]), (index, size)
        for first in range(1, size + 1):
            assert consistency(first, size) == naive_subproof(first, hashes[:size], True), (first, size)


def test_proofs_read_logarithmically_many_nodes() -> None:
    for size in range(1, N + 1):
        bound = 2 * size.bit_length()
        assert len(tree.root_nodes(size)) <= size.bit_length()
        for index in range(size):
            assert len(tree.plan_inclusion(index, size).nodes) <= bound, (index, size)
        for first in range(1, size + 1):
            assert len(tree.plan_consistency(first, size).nodes) <= bound, (first, size)


def test_compact_range_resumes_from_stored_roots() -> None:
    """What the sequencer does after another writer moved the log on: rebuild the right edge from storage."""
    nodes = stored()
    for k in range(N + 1):
        resumed = tree.CompactRange(k, [nodes[n] for n in tree.root_nodes(k)])
        assert resumed.root() == root(k)
        for i in range(k, min(k + 9, N)):
            for node, h in resumed.append(leaf_hashes()[i]):
                assert nodes[node] == h
        assert resumed.root() == root(min(k + 9, N))


def test_compact_range_refuses_a_wrong_number_of_hashes() -> None:
    with pytest.raises(ValueError):
        tree.CompactRange(3, [bytes(32)])


def test_planners_refuse_out_of_range_requests() -> None:
    for index, size in [(0, 0), (1, 1), (-1, 5), (5, 5)]:
        with pytest.raises(RangeError):
            tree.plan_inclusion(index, size)
    for first, second in [(0, 1), (0, 0), (2, 1), (-1, 3)]:
        with pytest.raises(RangeError):
            tree.plan_consistency(first, second)
    assert tree.plan_consistency(7, 7).nodes == []


# -- single-bit flips (hypothesis) -------------------------------------------------------------------

sizes = st.integers(min_value=1, max_value=N)
BITS = st.integers(min_value=0, max_value=255)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def first_and_second(draw: st.DrawFn) -> tuple[int, int]:
    second = draw(sizes)
    return draw(st.integers(min_value=1, max_value=second)), second


@SETTINGS
@given(index_and_size(), st.data(), BITS)
def test_inclusion_fails_on_any_single_bit_flip(pos: tuple[int, int], data: st.DataObject, bit: int) -> None:
    index, size = pos
    proof = inclusion(index, size)
    leaf, r = leaf_hashes()[index], root(size)
    # choose what to flip: one of the proof hashes, the leaf hash or the root
    target = data.draw(st.integers(min_value=-2, max_value=len(proof) - 1), label="target")
    if target == -2:
        leaf = flip(leaf, bit)
    elif target == -1:
        r = flip(r, bit)
    else:
        proof = [*proof[:target], flip(proof[target], bit), *proof[target + 1 :]]
    with pytest.raises(ProofError):
        tree.verify_inclusion(index, size, leaf, proof, r)


@SETTINGS
@given(first_and_second(), st.data(), BITS)
def test_consistency_fails_on_any_single_bit_flip(sizes_: tuple[int, int], data: st.DataObject, bit: int) -> None:
    first, second = sizes_
    proof = consistency(first, second)
    r1, r2 = root(first), root(second)
    target = data.draw(st.integers(min_value=-2, max_value=len(proof) - 1), label="target")
    if target == -2:
        r1 = flip(r1, bit)
    elif target == -1:
        r2 = flip(r2, bit)
    else:
        proof = [*proof[:target], flip(proof[target], bit), *proof[target + 1 :]]
    with pytest.raises(ProofError):
        tree.verify_consistency(first, second, r1, r2, proof)


@SETTINGS
@given(index_and_size(), st.sampled_from(["drop-last", "drop-first", "append", "prepend", "append-root"]))
def test_inclusion_fails_when_the_proof_changes_length(pos: tuple[int, int], how: str) -> None:
    index, size = pos
    proof, r = inclusion(index, size), root(size)
    if how.startswith("drop") and not proof:
        return
    changed = {
        "drop-last": proof[:-1],
        "drop-first": proof[1:],
        "append": [*proof, bytes(32)],
        "prepend": [bytes(32), *proof],
        "append-root": [*proof, r],
    }[how]
    with pytest.raises(ProofError):
        tree.verify_inclusion(index, size, leaf_hashes()[index], changed, r)


@SETTINGS
@given(first_and_second(), st.sampled_from(["drop-last", "drop-first", "append", "prepend", "swap-roots"]))
def test_consistency_fails_when_the_proof_changes(sizes_: tuple[int, int], how: str) -> None:
    first, second = sizes_
    proof, r1, r2 = consistency(first, second), root(first), root(second)
    if first == second and how != "append" and how != "prepend":
        return  # nothing to drop, and swapped equal roots are the same roots
    if how.startswith("drop") and not proof:
        return
    if how == "swap-roots":
        r1, r2 = r2, r1
        changed = proof
    else:
        changed = {
            "drop-last": proof[:-1],
            "drop-first": proof[1:],
            "append": [*proof, bytes(32)],
            "prepend": [proof[0] if proof else bytes(32), *proof],
        }[how]
    with pytest.raises(ProofError):
        tree.verify_consistency(first, second, r1, r2, changed)


@SETTINGS
@given(index_and_size(), index_and_size())
def test_a_proof_does_not_prove_another_leaf(a: tuple[int, int], b: tuple[int, int]) -> None:
    """The proof of leaf i in size n, offered for another leaf at the same position, fails."""
    (index, size), (other, _) = a, b
    if other >= N or other == index:
        return
    with pytest.raises(ProofError):
        tree.verify_inclusion(index, size, leaf_hashes()[other], inclusion(index, size), root(size))
