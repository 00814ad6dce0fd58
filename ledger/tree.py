"""RFC 9162 §2.1 Merkle tree hashing and proofs, pure: ints and bytes in, bytes or a verdict out.

Storage keeps the hash of every complete subtree, addressed ``(level, index)``: the subtree of
``2**level`` leaves starting at leaf ``index * 2**level``. Every range that a root or a proof needs
splits into O(log n) such subtrees (``range_nodes``), so the planner functions here name the nodes
to read and the assemblers fold the hashes read back; nothing is ever rebuilt. ``MemoryTree`` keeps
the same stored nodes in memory (one list per level) and answers roots and proofs straight from them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ledger.errors import ProofError, RangeError, RootMismatchError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32

Node = tuple[int, int]  # (level, index)
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 ‖ leaf)."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly less than ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete subtrees, left to right, whose concatenation is leaves [start, end).

    Valid for the ranges RFC 9162's recursion produces: ``start`` a multiple of a power of two at
    least as large as ``end - start``.
    """
    size = end - start
    if size & (size - 1) == 0 and size:  # one complete subtree (the common case in proofs)
        level = size.bit_length() - 1
        return [(level, start >> level)]
    nodes: list[Node] = []
    pos = start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append((level, pos >> level))
            pos += 1 << level
    return nodes


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its ``range_nodes`` hashes (right-to-left fold)."""
    if len(hashes) == 1:
        return hashes[0]
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_nodes(size: int) -> list[Node]:
    """The nodes to read for the root of a tree of ``size`` leaves."""
    return range_nodes(0, size)


def _ranges_inclusion(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(index, D[size]) as leaf ranges, leaf-side first."""
    out: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start = start + k
    out.reverse()
    return out


def _ranges_consistency(first: int, second: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[second]) as leaf ranges, in proof order."""
    out: list[tuple[int, int]] = []
    start, end, m, complete = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                out.append((start, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start, m, complete = start + k, m - k, False
    out.reverse()
    return out


def _parts_inclusion(index: int, size: int) -> list[list[Node]]:
    """``range_nodes`` of each range of ``_ranges_inclusion(index, size)``, straight from the bits.

    Below level ``inner`` (where ``index`` and ``size - 1`` part), every sibling is a complete subtree,
    except that the top one may be the tree's ragged right edge (several nodes, folded). Above it the
    path follows the right edge: a 1 bit means a complete left sibling, a 0 bit no sibling at all.
    """
    inner = (index ^ (size - 1)).bit_length()
    parts = [[(level, (index >> level) ^ 1)] for level in range(inner - 1)]
    if inner:
        level = inner - 1
        start = ((index >> level) ^ 1) << level
        parts.append([(level, start >> level)] if start + (1 << level) <= size else range_nodes(start, size))
    rest, level = index >> inner, inner
    while rest:
        if rest & 1:
            parts.append([(level, rest ^ 1)])
        rest >>= 1
        level += 1
    return parts


class ProofPlan:
    """Which stored nodes a proof needs and how to fold them into the proof's hashes."""

    def __init__(self, ranges: list[tuple[int, int]], *, parts: list[list[Node]] | None = None) -> None:
        self.parts = parts if parts is not None else [range_nodes(a, b) for a, b in ranges]

    @property
    def nodes(self) -> list[Node]:
        return [n for part in self.parts for n in part]

    def assemble(self, stored: Mapping[Node, bytes]) -> list[bytes]:
        """The proof's hashes from the nodes read (``stored`` must hold every node of the plan)."""
        return [stored[part[0]] if len(part) == 1 else fold_range([stored[n] for n in part]) for part in self.parts]


def plan_inclusion(index: int, size: int) -> ProofPlan:
    """Plan the inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise RangeError(f"leaf index {index} outside a tree of size {size}")
    return ProofPlan([], parts=_parts_inclusion(index, size))


def plan_consistency(first: int, second: int) -> ProofPlan:
    """Plan the consistency proof between sizes ``first`` and ``second`` (1 ≤ first ≤ second)."""
    if not 1 <= first <= second:
        raise RangeError(f"consistency needs 1 <= first <= second, got first={first} second={second}")
    if first == second:
        return ProofPlan([])
    return ProofPlan(_ranges_consistency(first, second))


class BatchNodes:
    """The nodes that prove a batch of appended leaves, kept from sealing it: no stored tree is read.

    ``edge`` is the tree's right edge before the batch (the roots of its complete subtrees, as
    ``(node, hash)``) and ``rows`` every node the batch completed (``CompactRange.extend_rows``). On the
    path of a batch leaf in the tree the batch sealed, a sibling to the right lies in the batch, and a
    sibling to the left either lies in the batch or is a complete subtree whose parent straddles the
    batch's first leaf, which is a root of the old right edge; so every node of those proofs is here.
    The map is built on the first proof asked for, outside the sequencer's commit path.
    """

    __slots__ = ("_edge", "_map", "_rows")

    def __init__(self, edge: Sequence[tuple[Node, bytes]], rows: Sequence[tuple[int, int, bytes]]) -> None:
        self._edge = edge
        self._rows = rows
        self._map: dict[Node, bytes] | None = None

    def _stored(self) -> dict[Node, bytes]:
        stored = self._map
        if stored is None:
            stored = dict(self._edge)
            stored.update(((level, i), h) for level, i, h in self._rows)
            self._map = stored
        return stored

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[size]) for a leaf of the batch and the size the batch sealed."""
        return plan_inclusion(index, size).assemble(self._stored())

    def narrowed(self, index: int, size: int) -> BatchNodes:
        """Only the nodes of ``inclusion(index, size)``: what to send another process with one receipt."""
        stored = self._stored()
        return BatchNodes([(n, stored[n]) for n in plan_inclusion(index, size).nodes], ())


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf *hashes* by RFC 9162's recursion (reference for tests; O(n) memory)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _largest_power_of_two_below(len(leaves))
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))


class CompactRange:
    """The right edge of a growing tree: the roots of its complete subtrees, biggest first.

    Appending a leaf yields the nodes that complete (to store), so the stored set is exactly every
    complete subtree. ``root()`` is the root at the current size.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError("compact range hashes do not match the size")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf_hash_: bytes) -> list[tuple[Node, bytes]]:
        """Add one leaf hash; return the ``(node, hash)`` pairs this completes, leaf first."""
        index = self.size
        done: list[tuple[Node, bytes]] = [((0, index), leaf_hash_)]
        h = leaf_hash_
        level = 0
        hashes = self.hashes
        while index & 1:
            h = _sha256(NODE_PREFIX + hashes.pop() + h).digest()  # node_hash, inlined: the hot loop
            index >>= 1
            level += 1
            done.append(((level, index), h))
        hashes.append(h)
        self.size += 1
        return done

    def extend_rows(self, leaf_hashes: Sequence[bytes], rows: list[tuple[int, int, bytes]]) -> None:
        """``append`` each leaf hash, adding the completed nodes to ``rows`` as ``(level, index, hash)``."""
        hashes = self.hashes
        push = rows.append
        index = self.size
        for h in leaf_hashes:
            push((0, index, h))
            i = index
            level = 0
            while i & 1:
                h = _sha256(NODE_PREFIX + hashes.pop() + h).digest()
                i >>= 1
                level += 1
                push((level, i, h))
            hashes.append(h)
            index += 1
        self.size = index

    def root(self) -> bytes:
        return fold_range(self.hashes)


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by an inclusion proof of leaf hash ``leaf``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        _check_hash(p, "proof hash")
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise unless ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree with ``root``."""
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    if calculated != root:
        raise RootMismatchError(root, calculated)


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise unless ``proof`` shows the tree at ``first`` is a prefix of ``second``."""
    _check_hash(first_root, "first root")
    _check_hash(second_root, "second root")
    if not 1 <= first <= second:
        raise ProofError(f"consistency needs 1 <= first <= second, got first={first} second={second}")
    for p in proof:
        _check_hash(p, "proof hash")
    if first == second:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise RootMismatchError(second_root, first_root)
        return
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first root is itself the first node
        path.insert(0, first_root)
    if not path:
        raise ProofError("consistency proof is empty")
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof too short")
    if fr != first_root:
        raise RootMismatchError(first_root, fr)
    if sr != second_root:
        raise RootMismatchError(second_root, sr)


class MemoryTree:
    """An RFC 9162 tree held in memory as its stored nodes: one list per level, index → hash.

    ``levels[level][index]`` is the hash of the complete subtree ``(level, index)``, so level ``L``
    holds ``size >> L`` hashes: exactly the nodes ``CompactRange.append`` emits and the ledger keeps
    in ``tree_nodes``, nothing more (no ragged right-edge node is ever stored). A root or a proof reads
    O(log n) of them. The only hashes that are not stored are the ragged right edge's (the root itself
    when the size is not a power of two, and at most one hash per proof); those are folded from the
    stored nodes on each call, as ``fold_range`` folds ``range_nodes``, and never cached.

    ``append`` takes one leaf hash, ``extend`` many, ``extend_entries`` raw entries (hashed here as
    RFC 9162 leaves); a batch completes its nodes a level at a time. ``root``, ``inclusion_proof``
    and ``consistency_proof`` answer for any size up to the current one, with the same results as
    ``plan_*(...).assemble`` over the stored nodes. Not thread-safe: one writer, no concurrent reads
    during a write.
    """

    __slots__ = ("levels", "size")

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]
        self.size = 0

    def append(self, leaf_hash_: bytes) -> int:
        """Add one leaf hash and store the subtrees it completes; return the leaf's index."""
        if len(leaf_hash_) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(leaf_hash_)} bytes, not {HASH_SIZE}")
        index = self.size
        levels = self.levels
        row = levels[0]
        row.append(leaf_hash_)
        h = leaf_hash_
        i, level = index, 0
        while i & 1:  # the new node is a right child: its parent completes now
            h = _sha256(NODE_PREFIX + row[i - 1] + h).digest()
            i >>= 1
            level += 1
            if level == len(levels):
                levels.append([])
            row = levels[level]
            row.append(h)
        self.size = index + 1
        return index

    def extend(self, leaf_hashes: Sequence[bytes]) -> int:
        """Add many leaf hashes, in order; return the new size."""
        for h in leaf_hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash is {len(h)} bytes, not {HASH_SIZE}")
        self.levels[0].extend(leaf_hashes)
        return self._complete()

    def extend_entries(self, entries: Sequence[bytes]) -> int:
        """Add many entries (raw leaf bytes), hashing each as an RFC 9162 leaf; return the new size."""
        sha256, prefix = _sha256, LEAF_PREFIX
        self.levels[0].extend([sha256(prefix + e).digest() for e in entries])
        return self._complete()

    def _complete(self) -> int:
        """Store every node completed by the leaves just added to level 0, a level at a time."""
        sha256, prefix = _sha256, NODE_PREFIX
        levels = self.levels
        lower, level = levels[0], 0
        while True:
            if level + 1 == len(levels):
                if len(lower) < 2:
                    break
                levels.append([])
            upper = levels[level + 1]
            start, stop = 2 * len(upper), len(lower) & ~1
            if start >= stop:  # nothing new here, so nothing new above
                break
            lefts, rights = lower[start:stop:2], lower[start + 1 : stop : 2]
            upper.extend([sha256(prefix + a + b).digest() for a, b in zip(lefts, rights, strict=True)])
            lower, level = upper, level + 1
        self.size = len(levels[0])
        return self.size

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise RangeError(f"size {size} outside a tree of size {self.size}")

    def _edge(self, size: int, below: int) -> bytes:
        """MTH of the leaves [size with its low ``below`` bits cleared, size), from stored nodes.

        Those leaves are the stored nodes for the set bits of ``size`` under ``below`` (the node for
        bit ``b`` is ``(b, (size >> b) - 1)``), folded right to left (lowest level first) exactly as
        ``fold_range`` folds ``range_nodes``. ``size`` must have a set bit under ``below``.
        """
        levels = self.levels
        rem = size & ((1 << below) - 1)
        low = rem & -rem
        level = low.bit_length() - 1
        acc = levels[level][(size >> level) - 1]
        rem ^= low
        while rem:
            low = rem & -rem
            level = low.bit_length() - 1
            acc = _sha256(NODE_PREFIX + levels[level][(size >> level) - 1] + acc).digest()
            rem ^= low
        return acc

    def root(self, size: int | None = None) -> bytes:
        """The tree head (MTH) at ``size`` leaves, default the current size."""
        if size is None:
            size = self.size
        self._check_size(size)
        if not size:
            return EMPTY_ROOT
        return self._edge(size, size.bit_length())

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[size]), leaf side first, read by walking the index bits.

        Below level ``inner`` (where ``index`` and ``size - 1`` part) every sibling is stored, except
        that the sibling at ``inner - 1`` may be the ragged right edge (folded by ``_edge``); above it,
        ``index`` follows the right edge, where a 1 bit has a stored left sibling and a 0 bit none.
        """
        if size is None:
            size = self.size
        if not 0 <= index < size <= self.size:
            raise RangeError(f"leaf index {index} and size {size} outside a tree of size {self.size}")
        levels = self.levels
        inner = (index ^ (size - 1)).bit_length()
        proof: list[bytes] = []
        if inner:
            i = index
            for row in levels[: inner - 1]:  # complete siblings, bottom up
                proof.append(row[i ^ 1])
                i >>= 1
            level = inner - 1
            if ((i ^ 1) + 1) << level <= size:
                proof.append(levels[level][i ^ 1])
            else:
                proof.append(self._edge(size, level))
        rest = index >> inner
        while rest:
            low = rest & -rest
            level = low.bit_length() - 1
            proof.append(levels[inner + level][(rest >> level) ^ 1])
            rest ^= low
        return proof

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(first, D[second]) for 1 ≤ first ≤ second (default the current size)."""
        if second is None:
            second = self.size
        self._check_size(second)
        if not 1 <= first <= second:
            raise RangeError(f"consistency needs 1 <= first <= second, got first={first} second={second}")
        levels = self.levels
        return [
            levels[part[0][0]][part[0][1]]
            if len(part) == 1
            else fold_range([levels[level][index] for level, index in part])
            for part in plan_consistency(first, second).parts
        ]

    def stored(self) -> dict[Node, bytes]:
        """Every stored node, ``{(level, index): hash}`` (what ``CompactRange.append`` emits)."""
        return {(level, index): h for level, row in enumerate(self.levels) for index, h in enumerate(row)}
