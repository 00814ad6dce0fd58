"""Write the fixed vectors in ``tests/vectors/*.json`` (run: ``.venv/bin/python -m tests.vectors.generate``).

Everything here is computed independently of the code under test: nothing is imported from
``ledger`` or ``keys``. Hashes and proofs come from a naive recursive transcription of RFC 9162
§2.1 and are cross-checked against ``pymerkle`` (an independent RFC 9162 implementation) and the
published Certificate Transparency vectors; canonical JSON comes from the ``rfc8785`` package and
the examples of RFC 8785 itself; notes and envelopes are signed with PyNaCl from fixed seeds
following C2SP signed-note and DESIGN.md §9. Ed25519 is deterministic, so a second run writes the
same bytes (``--check`` says whether the files on disk are what this script writes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nacl.signing
import rfc8785
from pymerkle import InmemoryTree

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# RFC 9162 §2.1, transcribed naively (recursion over leaf lists, O(n) per call)
# ---------------------------------------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf *data*."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = split_point(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 §2.1.3.1)."""
    n = len(leaves)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof_ranges(m: int, start: int, end: int, complete: bool) -> list[tuple[int, int]]:
    """SUBPROOF(m, D[start:end], b) (RFC 9162 §2.1.4.1) as the leaf ranges whose MTHs form it."""
    n = end - start
    if m == n:
        return [] if complete else [(start, end)]
    k = split_point(n)
    if m <= k:
        return [*subproof_ranges(m, start, start + k, complete), (start + k, end)]
    return [*subproof_ranges(m - k, start + k, end, False), (start, start + k)]


def proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 §2.1.4.1)."""
    return [mth(leaves[a:b]) for a, b in subproof_ranges(m, 0, len(leaves), True)]


def ref_inclusion_ok(index: int, size: int, leaf: bytes, hashes: Sequence[bytes], root: bytes) -> bool:
    """Reference verdict: recompute the root by the PATH recursion, consuming the proof from its end."""
    if not (0 <= index < size) or any(len(h) != 32 for h in [leaf, *hashes]) or len(root) != 32:
        return False

    def expected_len(m: int, n: int) -> int:
        if n == 1:
            return 0
        k = split_point(n)
        return 1 + (expected_len(m, k) if m < k else expected_len(m - k, n - k))

    if len(hashes) != expected_len(index, size):
        return False

    def rebuild(m: int, n: int, hs: Sequence[bytes]) -> bytes:
        if n == 1:
            return leaf
        k = split_point(n)
        if m < k:
            return node_hash(rebuild(m, k, hs[:-1]), hs[-1])
        return node_hash(hs[-1], rebuild(m - k, n - k, hs[:-1]))

    return rebuild(index, size, list(hashes)) == root


def ref_consistency_ok(first: int, second: int, first_root: bytes, second_root: bytes, hashes: Sequence[bytes]) -> bool:
    """Reference verdict: rebuild both roots by the SUBPROOF recursion, consuming the proof from its end."""
    if not (1 <= first <= second) or any(len(h) != 32 for h in [first_root, second_root, *hashes]):
        return False
    if len(hashes) != len(subproof_ranges(first, 0, second, True)):
        return False

    def rebuild(m: int, n: int, complete: bool, hs: Sequence[bytes]) -> tuple[bytes, bytes]:
        if m == n:
            return (first_root, first_root) if complete else (hs[-1], hs[-1])
        k = split_point(n)
        if m <= k:
            f, s = rebuild(m, k, complete, hs[:-1])
            return f, node_hash(s, hs[-1])
        f, s = rebuild(m - k, n - k, False, hs[:-1])
        return node_hash(hs[-1], f), node_hash(hs[-1], s)

    f, s = rebuild(first, second, True, list(hashes))
    return f == first_root and s == second_root


# ---------------------------------------------------------------------------------------------
# Anchors: the Certificate Transparency reference leaves, roots and proofs (RFC 6962 test data, as
# published with google/certificate-transparency and Trillian)
# ---------------------------------------------------------------------------------------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}

# A second, larger leaf set: readable UTF-8 strings.
SEQ_LEAVES = [f"shulian vector leaf {i}".encode() for i in range(257)]
LEAF_SETS = {"ct": CT_LEAVES, "seq": SEQ_LEAVES}


def pymerkle_tree(leaves: Sequence[bytes]) -> Any:
    tree = InmemoryTree(algorithm="sha256")  # RFC 9162 hashing: security (0x00/0x01 prefixes) on
    assert tree.security
    for leaf in leaves:
        tree.append_entry(leaf)
    return tree


class CrossCheck:
    """pymerkle's view of a leaf set: roots, inclusion paths, MTH of arbitrary ranges."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = leaves
        self.tree = pymerkle_tree(leaves)
        self._ranges: dict[tuple[int, int], bytes] = {}

    def root(self, size: int) -> bytes:
        return bytes(self.tree.get_root(size))

    def range_root(self, start: int, end: int) -> bytes:
        if (start, end) not in self._ranges:
            self._ranges[start, end] = bytes(pymerkle_tree(self.leaves[start:end]).get_root())
        return self._ranges[start, end]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        p = self.tree.prove_inclusion(index + 1, size)
        assert p.path[0] == leaf_hash(self.leaves[index])
        return [bytes(h) for h in p.path[1:]]

    def consistency(self, first: int, second: int) -> list[bytes]:
        p = self.tree.prove_consistency(first, second)
        p.verify(self.root(first), self.root(second), prior_size=first, later_size=second)
        return [self.range_root(a, b) for a, b in subproof_ranges(first, 0, second, True)]


def check_anchors() -> None:
    for size, want in enumerate(CT_ROOTS):
        assert mth(CT_LEAVES[:size]).hex() == want, size
    for (index, size), want in CT_INCLUSION.items():
        assert [h.hex() for h in path(index, CT_LEAVES[:size])] == want, (index, size)
    for (first, second), want in CT_CONSISTENCY.items():
        assert [h.hex() for h in proof(first, CT_LEAVES[:second])] == want, (first, second)


# ---------------------------------------------------------------------------------------------
# Tree vectors
# ---------------------------------------------------------------------------------------------

ZERO = bytes(32)


def flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(b)


def hexes(hs: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hs]


def verdict(ok: bool) -> str:
    return "ok" if ok else "error"


def tree_hash_vectors() -> dict[str, Any]:
    leaf_cases = [
        {"desc": f"leaf hash of {len(d)} bytes", "leaf": d.hex(), "hash": leaf_hash(d).hex()}
        for d in [*CT_LEAVES, b"\x00" * 64, b"\x01" + bytes(32)]
    ]
    node_cases = [
        {
            "desc": "node hash of the first two CT leaf hashes (the CT root at size 2)",
            "left": leaf_hash(CT_LEAVES[0]).hex(),
            "right": leaf_hash(CT_LEAVES[1]).hex(),
            "hash": node_hash(leaf_hash(CT_LEAVES[0]), leaf_hash(CT_LEAVES[1])).hex(),
        },
        {
            "desc": "node hash of two zero hashes",
            "left": ZERO.hex(),
            "right": ZERO.hex(),
            "hash": node_hash(ZERO, ZERO).hex(),
        },
        {
            "desc": "node hash is not symmetric: swapped children",
            "left": leaf_hash(CT_LEAVES[1]).hex(),
            "right": leaf_hash(CT_LEAVES[0]).hex(),
            "hash": node_hash(leaf_hash(CT_LEAVES[1]), leaf_hash(CT_LEAVES[0])).hex(),
        },
    ]
    # Domain separation: a leaf whose data is 0x01 ‖ l ‖ r must not hash like the node (l, r).
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    leaf_cases.append(
        {
            "desc": "a leaf holding 0x01‖left‖right (second-preimage attempt) hashes differently from the node",
            "leaf": (b"\x01" + left + right).hex(),
            "hash": leaf_hash(b"\x01" + left + right).hex(),
            "not_equal_to_node": {"left": left.hex(), "right": right.hex()},
        }
    )
    roots = []
    check = {name: CrossCheck(leaves) for name, leaves in LEAF_SETS.items()}
    for size in range(9):
        root = mth(CT_LEAVES[:size])
        assert root == check["ct"].root(size)
        roots.append({"desc": f"CT leaves, size {size}", "leaf_set": "ct", "size": size, "root": root.hex()})
    for size in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256, 257]:
        root = mth(SEQ_LEAVES[:size])
        assert root == check["seq"].root(size)
        roots.append({"desc": f"seq leaves, size {size}", "leaf_set": "seq", "size": size, "root": root.hex()})
    roots[0]["desc"] = "the empty tree: SHA-256 of the empty string"
    return {
        "desc": "RFC 9162 §2.1 hashing: leaf = SHA-256(0x00‖data), node = SHA-256(0x01‖left‖right), MTH roots; "
        "leaf sets: 'ct' = the Certificate Transparency reference leaves (hex), 'seq' = UTF-8 strings",
        "leaf_sets": {"ct": [d.hex() for d in CT_LEAVES], "seq": [d.decode() for d in SEQ_LEAVES]},
        "leaf_set_encoding": {"ct": "hex", "seq": "utf-8"},
        "leaf_hashes": leaf_cases,
        "node_hashes": node_cases,
        "roots": roots,
    }


def inclusion_case(
    desc: str, index: int, size: int, leaf: bytes, hashes: Sequence[bytes], root: bytes
) -> dict[str, Any]:
    return {
        "desc": desc,
        "index": index,
        "size": size,
        "leaf_hash": leaf.hex(),
        "proof": hexes(hashes),
        "root": root.hex(),
        "expect": verdict(ref_inclusion_ok(index, size, leaf, hashes, root)),
    }


def inclusion_vectors() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    checks = {name: CrossCheck(leaves) for name, leaves in LEAF_SETS.items()}

    def happy(name: str, index: int, size: int) -> dict[str, Any]:
        leaves = LEAF_SETS[name]
        hashes = path(index, leaves[:size])
        assert hashes == checks[name].inclusion(index, size), (name, index, size)
        root = mth(leaves[:size])
        case = inclusion_case(
            f"{name} leaves: leaf {index} in a tree of {size}", index, size, leaf_hash(leaves[index]), hashes, root
        )
        assert case["expect"] == "ok"
        return case

    for size in range(1, 9):
        for index in range(size):
            cases.append(happy("ct", index, size))
    rng = random.Random(9162)
    seq_pairs = [
        (0, 1),
        (0, 2),
        (1, 2),
        (0, 257),
        (128, 257),
        (256, 257),
        (255, 256),
        (0, 256),
        (99, 100),
        (57, 100),
        (64, 65),
        (63, 64),
        (100, 200),
        (199, 200),
    ]
    seq_pairs += [(rng.randrange(s), s) for s in (rng.randrange(2, 258) for _ in range(10))]
    for index, size in seq_pairs:
        cases.append(happy("seq", index, size))

    broken: list[dict[str, Any]] = []
    for name, index, size in [
        ("ct", 0, 8),
        ("ct", 5, 8),
        ("ct", 2, 3),
        ("ct", 1, 5),
        ("seq", 57, 100),
        ("seq", 256, 257),
        ("seq", 100, 200),
        ("ct", 0, 1),
    ]:
        leaves = LEAF_SETS[name]
        leaf = leaf_hash(leaves[index])
        hashes = path(index, leaves[:size])
        root = mth(leaves[:size])
        where = f"{name} leaf {index} of {size}"

        def add(
            desc: str,
            i: int = index,
            s: int = size,
            lf: bytes = leaf,
            hs: Sequence[bytes] = hashes,
            rt: bytes = root,
            where: str = where,
        ) -> None:
            broken.append(inclusion_case(f"{where}: {desc}", i, s, lf, hs, rt))

        for pos, h in enumerate(hashes):
            bit = (pos * 37 + 5) % 256
            add(f"bit {bit} flipped in proof hash {pos}", hs=[*hashes[:pos], flip(h, bit), *hashes[pos + 1 :]])
        add("bit 0 flipped in the leaf hash", lf=flip(leaf, 0))
        add("bit 255 flipped in the root", rt=flip(root, 255))
        if hashes:
            add("truncated proof: last hash dropped", hs=hashes[:-1])
            add("truncated proof: first hash dropped", hs=hashes[1:])
            add("empty proof", hs=[])
            add("proof hash of 31 bytes", hs=[hashes[0][:31], *hashes[1:]])
            add("proof hash of 33 bytes", hs=[hashes[0] + b"\x00", *hashes[1:]])
        add("trailing garbage: 32 zero bytes appended", hs=[*hashes, ZERO])
        add("trailing garbage: the root appended", hs=[*hashes, root])
        add("preceding garbage: 32 zero bytes prepended", hs=[ZERO, *hashes])
        add("trailing garbage: an empty hash appended", hs=[*hashes, b""])
        add("leaf hash of 31 bytes", lf=leaf[:31])
        add("the leaf data instead of its hash", lf=leaves[index])
        add("the empty-tree hash as the root", rt=sha256(b""))
        for wrong in sorted({index + 1, index - 1, index ^ 2}):
            add(f"wrong index {wrong}", i=wrong)
        for wrong in sorted({size + 1, size - 1, size * 2, size // 2, 0}):
            add(f"wrong size {wrong}", s=wrong)
        add("index equal to the size", i=size)
        add("negative index", i=-1)
    # Label the broken cases that nonetheless verify (a size with the same path shape), so that
    # nobody mistakes them for a bug: the size is bound by the signed checkpoint, not by the proof.
    for case in broken:
        if case["expect"] == "ok":
            case["desc"] += " (still verifies: this size gives the leaf the same path shape)"
    cases += broken
    return {
        "desc": "RFC 9162 §2.1.3 inclusion proofs: verify(index, size, leaf_hash, proof, root); "
        "expect 'ok' if the proof verifies, 'error' if verification must fail; hashes are hex",
        "cases": cases,
    }


def consistency_case(
    desc: str, first: int, second: int, r1: bytes, r2: bytes, hashes: Sequence[bytes]
) -> dict[str, Any]:
    return {
        "desc": desc,
        "first": first,
        "second": second,
        "first_root": r1.hex(),
        "second_root": r2.hex(),
        "proof": hexes(hashes),
        "expect": verdict(ref_consistency_ok(first, second, r1, r2, hashes)),
    }


def consistency_vectors() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    checks = {name: CrossCheck(leaves) for name, leaves in LEAF_SETS.items()}

    def happy(name: str, first: int, second: int) -> dict[str, Any]:
        leaves = LEAF_SETS[name]
        hashes = proof(first, leaves[:second])
        assert hashes == checks[name].consistency(first, second), (name, first, second)
        roots = mth(leaves[:first]), mth(leaves[:second])
        case = consistency_case(f"{name} leaves: from {first} to {second}", first, second, *roots, hashes)
        assert case["expect"] == "ok"
        return case

    for second in range(1, 9):
        for first in range(1, second + 1):
            cases.append(happy("ct", first, second))
    rng = random.Random(6962)
    seq_pairs = [
        (1, 257),
        (128, 257),
        (256, 257),
        (257, 257),
        (100, 200),
        (127, 129),
        (64, 65),
        (3, 200),
        (64, 128),
        (65, 128),
        (7, 9),
    ]
    for _ in range(10):
        second = rng.randrange(2, 258)
        seq_pairs.append((rng.randrange(1, second), second))
    for first, second in seq_pairs:
        cases.append(happy("seq", first, second))

    broken: list[dict[str, Any]] = []
    for name, first, second in [
        ("ct", 1, 8),
        ("ct", 6, 8),
        ("ct", 2, 5),
        ("ct", 3, 7),
        ("ct", 4, 8),
        ("seq", 100, 200),
        ("seq", 128, 257),
        ("seq", 1, 257),
        ("ct", 5, 5),
    ]:
        leaves = LEAF_SETS[name]
        hashes = proof(first, leaves[:second])
        r1, r2 = mth(leaves[:first]), mth(leaves[:second])
        where = f"{name} from {first} to {second}"

        def add(
            desc: str,
            f: int = first,
            s: int = second,
            a: bytes = r1,
            b: bytes = r2,
            hs: Sequence[bytes] = hashes,
            where: str = where,
        ) -> None:
            broken.append(consistency_case(f"{where}: {desc}", f, s, a, b, hs))

        for pos, h in enumerate(hashes):
            bit = (pos * 41 + 3) % 256
            add(f"bit {bit} flipped in proof hash {pos}", hs=[*hashes[:pos], flip(h, bit), *hashes[pos + 1 :]])
        add("bit 7 flipped in the first root", a=flip(r1, 7))
        add("bit 200 flipped in the second root", b=flip(r2, 200))
        if first != second:
            add("swapped roots", a=r2, b=r1)
            add("swapped sizes (first > second)", f=second, s=first)
        else:
            add("equal sizes but different roots", b=mth(leaves[: second - 1]))
            add("equal sizes with a non-empty proof", hs=[r1])
        add("first size 0", f=0)
        add("trailing garbage: 32 zero bytes appended", hs=[*hashes, ZERO])
        add("trailing garbage: the first root appended", hs=[*hashes, r1])
        add(
            "preceding garbage: the first proof hash repeated" if hashes else "preceding garbage: zero hash",
            hs=[hashes[0] if hashes else ZERO, *hashes],
        )
        add("first root of 31 bytes", a=r1[:31])
        add("second root of 33 bytes", b=r2 + b"\x00")
        add("empty second root", b=b"")
        if hashes:
            add("truncated proof: last hash dropped", hs=hashes[:-1])
            add("truncated proof: first hash dropped", hs=hashes[1:])
            add("empty proof", hs=[])
            add("proof hash of 31 bytes", hs=[*hashes[:-1], hashes[-1][:31]])
        for wrong in sorted({first + 1, first - 1, first ^ 2} - {first}):
            add(f"wrong first size {wrong}", f=wrong)
        for wrong in sorted({second + 1, second - 1, second * 2, second // 2} - {second}):
            add(f"wrong second size {wrong}", s=wrong)
    for case in broken:
        if case["expect"] == "ok":
            case["desc"] += " (still verifies: this size gives the proof the same shape)"
    cases += broken
    return {
        "desc": "RFC 9162 §2.1.4 consistency proofs: verify(first, second, first_root, second_root, proof); "
        "expect 'ok' if the proof verifies, 'error' if verification must fail; hashes are hex",
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------------
# Canonical JSON (RFC 8785) for the ledger's subset: objects, arrays, strings, true/false/null and
# integers within ±(2**53-1); floats, NaN, bigger integers and duplicate keys are refused.
# ---------------------------------------------------------------------------------------------

MAX_SAFE = 2**53 - 1

# (desc, JSON text of the input (read by a lenient parser), expected canonical text or None = refused)
SERIALIZE: list[tuple[str, str, str | None]] = [
    ("empty object", "{}", "{}"),
    ("empty array", "[]", "[]"),
    ("literals", "[true, false, null]", "[true,false,null]"),
    ("whitespace removed, keys sorted", '{ "b" : 2 , "a" : [ 1 , 2 ] }', '{"a":[1,2],"b":2}'),
    ("largest safe integer", str(MAX_SAFE), str(MAX_SAFE)),
    ("smallest safe integer", str(-MAX_SAFE), str(-MAX_SAFE)),
    ("2**53 is refused", str(MAX_SAFE + 1), None),
    ("-(2**53) is refused", str(-MAX_SAFE - 1), None),
    ("a big integer is refused", "123456789012345678901234567890", None),
    ("zero", "0", "0"),
    ("negative zero as an integer is 0", "-0", "0"),
    ("a float is refused", "1.5", None),
    ("an integral float is refused", "1.0", None),
    ("an exponent is refused", "1e3", None),
    ("NaN is refused", "NaN", None),
    ("Infinity is refused", "Infinity", None),
    ("-Infinity is refused", "-Infinity", None),
    ("a float deep in an object is refused", '{"a":{"b":[1,2,3.25]}}', None),
    (
        "RFC 8785 §3.2.2.3 numbers example: floats, refused by the ledger",
        '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]}',
        None,
    ),
    (
        "RFC 8785 §3.2.3 sorting example: keys ordered by UTF-16 code units",
        '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",'
        '"\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis",'
        '"€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    ),
    (
        "astral key (UTF-16 D83D DE00) sorts before a BMP private-use key (U+E000), unlike code point order",
        '{"\\ue000":"private use","\\ud83d\\ude00":"astral"}',
        '{"😀":"astral","\ue000":"private use"}',
    ),
    (
        "U+FFFF sorts after U+10000 (D800 DC00) in UTF-16 order",
        '{"\\uffff":1,"\\ud800\\udc00":2,"z":3}',
        '{"z":3,"\U00010000":2,"\uffff":1}',
    ),
    (
        "astral ordering applies in nested objects too",
        '{"outer":[{"\\uf8ff":1,"\\udbff\\udfff":2,"a":0}]}',
        '{"outer":[{"a":0,"\U0010ffff":2,"\uf8ff":1}]}',
    ),
    (
        "keys that share a prefix: shorter first",
        '{"ab":1,"a":2,"abc":3,"":4}',
        '{"":4,"a":2,"ab":1,"abc":3}',
    ),
    (
        "RFC 8785 §3.2.2.2 string example: short escapes, lowercase \\u00XX, '/' unescaped",
        '"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/"',
        '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"',
    ),
    (
        "every C0 control character: \\b \\t \\n \\f \\r short, the rest \\u00xx",
        json.dumps("".join(chr(c) for c in range(32))),
        '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f'
        "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d"
        '\\u001e\\u001f"',
    ),
    ("DEL, U+2028 and U+2029 are not escaped", '"\\u007f\\u2028\\u2029"', '"\x7f\u2028\u2029"'),
    (
        "non-ASCII text is UTF-8, not escaped",
        '{"名称":"市大数据中心","emoji":"🙂"}',
        '{"emoji":"🙂","名称":"市大数据中心"}',
    ),
    ("a lone high surrogate is refused", '"\\ud800"', None),
    ("a lone low surrogate in a key is refused", '{"\\udc00":1}', None),
    ("quote and backslash are escaped", '"a\\"b\\\\c"', '"a\\"b\\\\c"'),
    (
        "a body as the ledger signs it",
        '{"v":1,"type":"consent.grant","body":{"max_uses":null,"purpose":"社保"}}',
        '{"body":{"max_uses":null,"purpose":"社保"},"type":"consent.grant","v":1}',
    ),
]

# (desc, input bytes, accepted by a canonical parser?)
PARSE: list[tuple[str, bytes, bool]] = [
    ("canonical object", b'{"a":1,"b":[true,false,null]}', True),
    ("canonical empty object", b"{}", True),
    ("canonical integer at 2**53-1", str(MAX_SAFE).encode(), True),
    ("canonical negative integer at -(2**53-1)", str(-MAX_SAFE).encode(), True),
    ("canonical UTF-8 text", '{"名称":"数链"}'.encode(), True),
    ("canonical astral ordering", '{"😀":1,"\ue000":2}'.encode(), True),
    ("canonical control escapes", b'"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f"', True),
    ("space after colon", b'{"a": 1}', False),
    ("space after comma", b"[1, 2]", False),
    ("leading space", b' {"a":1}', False),
    ("trailing newline", b'{"a":1}\n', False),
    ("pretty printed", b'{\n  "a": 1\n}', False),
    ("keys out of order", b'{"b":1,"a":2}', False),
    ("astral key in code point order (not UTF-16 order)", '{"\ue000":2,"😀":1}'.encode(), False),
    ("duplicate key", b'{"a":1,"a":1}', False),
    ("duplicate key with different values", b'{"a":1,"a":2}', False),
    ("float", b"1.5", False),
    ("integral float", b"1.0", False),
    ("exponent", b"1e2", False),
    ("NaN", b"NaN", False),
    ("Infinity", b"Infinity", False),
    ("2**53", str(MAX_SAFE + 1).encode(), False),
    ("-(2**53)", str(-MAX_SAFE - 1).encode(), False),
    ("negative zero", b"-0", False),
    ("leading zero", b"01", False),
    ("plus sign", b"+1", False),
    ("escaped ASCII letter", b'"\\u0041"', False),
    ("escaped solidus", b'"\\/"', False),
    ("escaped non-ASCII", b'"\\u00e9"', False),
    ("uppercase hex in a control escape", b'"\\u001F"', False),
    ("\\u escape where a short escape exists", b'"\\u000a"', False),
    ("raw control character in a string", b'"a\x01b"', False),
    ("lone surrogate escape", b'"\\ud800"', False),
    ("UTF-8 byte order mark", b'\xef\xbb\xbf{"a":1}', False),
    ("invalid UTF-8", b'"\xff"', False),
    ("overlong UTF-8 encoding of '/'", b'"\xc0\xaf"', False),
    ("single-quoted string", b"'a'", False),
    ("trailing comma", b"[1,]", False),
    ("two values", b"1 2", False),
    ("empty input", b"", False),
]


def canonical_vectors() -> dict[str, Any]:
    serialize = []
    for desc, text, want in SERIALIZE:
        value = json.loads(text)  # lenient: NaN, floats and big integers parse, so they can be refused
        got: str | None
        if want is None:
            got = None
        else:
            got = rfc8785.dumps(value).decode("utf-8")
            assert got == want, (desc, got, want)
        serialize.append(
            {
                "desc": desc,
                "input": text,
                "expect": "ok" if got is not None else "error",
                **({"canonical": got} if got is not None else {}),
            }
        )
    parse = []
    for desc, data, ok in PARSE:
        if ok:  # an accepted input must be the reference canonical form of what it holds
            assert rfc8785.dumps(json.loads(data)) == data, desc
        case: dict[str, Any] = {"desc": desc}
        try:
            case["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            case["hex"] = data.hex()
        case["expect"] = "ok" if ok else "error"
        parse.append(case)
    return {
        "desc": "RFC 8785 canonical JSON for the ledger's subset (objects, arrays, strings, booleans, null, integers "
        "within ±(2**53-1)). 'serialize': parse 'input' leniently (json.loads), canonicalise, expect the "
        "UTF-8 bytes of 'canonical' or a refusal. 'parse': the bytes ('text' as UTF-8, or 'hex') must be "
        "accepted only if they are exactly canonical.",
        "serialize": serialize,
        "parse": parse,
    }


# ---------------------------------------------------------------------------------------------
# Signed notes and checkpoints (C2SP signed-note, tlog-checkpoint, tlog-cosignature)
# ---------------------------------------------------------------------------------------------

DASH = "\u2014"
ORIGIN = "vectors.shulian.example/log"
LOG_KEY = nacl.signing.SigningKey(sha256(b"shulian vector log key"))
OTHER_KEY = nacl.signing.SigningKey(sha256(b"shulian vector other key"))
WITNESS_KEY = nacl.signing.SigningKey(sha256(b"shulian vector witness key"))
WITNESS_NAME = "witness.vectors.shulian.example"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def note_key_hash(name: str, alg: int, pub: bytes) -> bytes:
    return sha256(name.encode() + b"\n" + bytes([alg]) + pub)[:4]


def vkey(name: str, key: nacl.signing.SigningKey, alg: int = 1) -> str:
    pub = bytes(key.verify_key)
    return f"{name}+{note_key_hash(name, alg, pub).hex()}+{b64(bytes([alg]) + pub)}"


def sig_line(name: str, key_hash: bytes, payload: bytes) -> str:
    return f"{DASH} {name} {b64(key_hash + payload)}\n"


def ed25519_line(text: str, name: str, key: nacl.signing.SigningKey) -> str:
    sig = key.sign(text.encode()).signature
    return sig_line(name, note_key_hash(name, 1, bytes(key.verify_key)), sig)


def cosignature_line(text: str, name: str, key: nacl.signing.SigningKey, timestamp: int) -> str:
    msg = f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()
    payload = timestamp.to_bytes(8, "big") + key.sign(msg).signature
    return sig_line(name, note_key_hash(name, 4, bytes(key.verify_key)), payload)


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{b64(root)}\n"


def note_vectors() -> dict[str, Any]:
    root8 = bytes.fromhex(CT_ROOTS[8])
    text = checkpoint_text(ORIGIN, 8, root8)
    good = text + "\n" + ed25519_line(text, ORIGIN, LOG_KEY)
    log_vkey = vkey(ORIGIN, LOG_KEY)
    sig_payload = base64.b64decode(good.rsplit(" ", 1)[1])
    cases: list[dict[str, Any]] = []

    def add(desc: str, note: str, expect: str, *, key: str = log_vkey, **extra: Any) -> None:
        cases.append({"desc": desc, "vkey": key, "note": note, "expect": expect, **extra})

    want = {"origin": ORIGIN, "size": 8, "root": root8.hex()}
    add("good checkpoint (size 8, the CT root)", good, "ok", checkpoint=want)
    for size, root in [(0, sha256(b"")), (1, bytes.fromhex(CT_ROOTS[1])), (2**40, bytes(range(32)))]:
        t = checkpoint_text(ORIGIN, size, root)
        add(
            f"good checkpoint of size {size}",
            t + "\n" + ed25519_line(t, ORIGIN, LOG_KEY),
            "ok",
            checkpoint={"origin": ORIGIN, "size": size, "root": root.hex()},
        )
    add(
        "good checkpoint with a witness cosignature line after it (kept, not needed)",
        good + cosignature_line(text, WITNESS_NAME, WITNESS_KEY, 1_700_000_000),
        "ok",
        checkpoint=want,
    )
    add(
        "good checkpoint with an unknown key's signature before the log's",
        text + "\n" + ed25519_line(text, "other.example/log", OTHER_KEY) + ed25519_line(text, ORIGIN, LOG_KEY),
        "ok",
        checkpoint=want,
    )
    bad_sig = bytearray(sig_payload)
    bad_sig[10] ^= 0x01
    add(
        "bad signature: one bit flipped",
        text + "\n" + sig_line(ORIGIN, bytes(bad_sig[:4]), bytes(bad_sig[4:])),
        "error",
    )
    add("signed text changed after signing (size 8 -> 9)", good.replace("\n8\n", "\n9\n", 1), "error")
    add(
        "signature by another key under the log's name and the log key's hash",
        text + "\n" + sig_line(ORIGIN, sig_payload[:4], OTHER_KEY.sign(text.encode()).signature),
        "error",
    )
    add(
        "wrong key name on the signature line",
        text + "\n" + sig_line("other.example/log", sig_payload[:4], sig_payload[4:]),
        "error",
    )
    add(
        "wrong key hash on the signature line",
        text + "\n" + sig_line(ORIGIN, bytes(b ^ 0xFF for b in sig_payload[:4]), sig_payload[4:]),
        "error",
    )
    add("signed by the right key but verified with another key", good, "error", key=vkey(ORIGIN, OTHER_KEY))
    add("missing blank line before the signature", text + ed25519_line(text, ORIGIN, LOG_KEY), "error")
    ext = text + "extension line\n"
    add(
        "extra line in the checkpoint body (an extension line), correctly signed",
        ext + "\n" + ed25519_line(ext, ORIGIN, LOG_KEY),
        "error",
    )
    add("extra non-signature line after the signature", good + "garbage\n", "error")
    add("extra blank line at the end", good + "\n", "error")
    add("two blank lines before the signatures", text + "\n\n" + ed25519_line(text, ORIGIN, LOG_KEY), "error")
    add("no newline after the signature line", good[:-1], "error")
    add("no signature lines at all", text + "\n", "error")
    add("bad base64 on the signature line", text + "\n" + f"{DASH} {ORIGIN} !!!notbase64!!!\n", "error")
    assert b64(sig_payload).endswith("=")
    unpadded = b64(sig_payload).rstrip("=")
    add("base64 signature without padding", text + "\n" + f"{DASH} {ORIGIN} {unpadded}\n", "error")
    add(
        "signature line with an ASCII hyphen instead of an em dash",
        text + "\n" + ed25519_line(text, ORIGIN, LOG_KEY).replace(DASH, "-", 1),
        "error",
    )
    short = text + "\n" + sig_line(ORIGIN, sig_payload[:4], b"")
    add("signature payload of 4 bytes (key hash only)", short, "error")
    other_origin = checkpoint_text("evil.example/log", 8, root8)
    add(
        "origin mismatch: signed by the log key but the origin line names another log",
        other_origin + "\n" + ed25519_line(other_origin, ORIGIN, LOG_KEY),
        "error",
    )
    for desc, body in [
        ("a size with a leading zero", f"{ORIGIN}\n08\n{b64(root8)}\n"),
        ("a negative size", f"{ORIGIN}\n-8\n{b64(root8)}\n"),
        ("a size that is not a number", f"{ORIGIN}\neight\n{b64(root8)}\n"),
        ("a size in Arabic-Indic digits", f"{ORIGIN}\n٨\n{b64(root8)}\n"),
        ("a size in superscript digits", f"{ORIGIN}\n⁸\n{b64(root8)}\n"),
        ("a root of 31 bytes", f"{ORIGIN}\n8\n{b64(root8[:31])}\n"),
        ("a root that is not base64", f"{ORIGIN}\n8\n{b64(root8)[:-2]}!!\n"),
        ("no root line", f"{ORIGIN}\n8\n"),
        ("an empty origin line", f"\n8\n{b64(root8)}\n"),
    ]:
        signed_body = body + "\n" + ed25519_line(body, ORIGIN, LOG_KEY)
        add(f"checkpoint body with {desc}, correctly signed", signed_body, "error")

    pub = bytes(LOG_KEY.verify_key)
    vkeys = [
        {
            "desc": "the log's verifier key",
            "vkey": log_vkey,
            "expect": "ok",
            "name": ORIGIN,
            "key_hash": note_key_hash(ORIGIN, 1, pub).hex(),
            "public_key": pub.hex(),
        },
        {"desc": "wrong key hash", "vkey": f"{ORIGIN}+00000000+{b64(bytes([1]) + pub)}", "expect": "error"},
        {
            "desc": "key hash computed for another name",
            "vkey": f"other+{note_key_hash(ORIGIN, 1, pub).hex()}+{b64(bytes([1]) + pub)}",
            "expect": "error",
        },
        {
            "desc": "unknown key type 0x02",
            "vkey": f"{ORIGIN}+{note_key_hash(ORIGIN, 2, pub).hex()}+{b64(bytes([2]) + pub)}",
            "expect": "error",
        },
        {
            "desc": "public key of 31 bytes",
            "vkey": f"{ORIGIN}+{note_key_hash(ORIGIN, 1, pub[:31]).hex()}+{b64(bytes([1]) + pub[:31])}",
            "expect": "error",
        },
        {"desc": "missing key part", "vkey": f"{ORIGIN}+{note_key_hash(ORIGIN, 1, pub).hex()}", "expect": "error"},
        {"desc": "bad base64", "vkey": f"{ORIGIN}+{note_key_hash(ORIGIN, 1, pub).hex()}+%%%%", "expect": "error"},
        {"desc": "name with a space", "vkey": vkey("bad name", LOG_KEY), "expect": "error"},
    ]
    return {
        "desc": "C2SP signed notes and tlog-checkpoints by an Ed25519 log key. 'cases': verify 'note' as a "
        "checkpoint with verifier key 'vkey'; 'ok' cases give the checkpoint's origin, size and root (hex). "
        "'vkeys': parse a verifier key.",
        "origin": ORIGIN,
        "log_vkey": log_vkey,
        "cases": cases,
        "vkeys": vkeys,
    }


# ---------------------------------------------------------------------------------------------
# Entry envelopes (DESIGN.md §9): canonical JSON, Ed25519 over the envelope without "sig"
# ---------------------------------------------------------------------------------------------

ACTOR_KEY = nacl.signing.SigningKey(sha256(b"shulian vector admin key"))


def key_id(pub: bytes) -> str:
    return sha256(pub)[:16].hex()


def envelope_vectors() -> dict[str, Any]:
    pub = bytes(ACTOR_KEY.verify_key)
    unsigned = {
        "v": 1,
        "type": "identity.register",
        "ts": "2024-05-01T08:00:00.000000Z",
        "actor": key_id(pub),
        "body": {"key_id": key_id(pub), "role": "admin", "name": "市大数据中心管理员", "ed25519": b64(pub)},
    }
    sig = ACTOR_KEY.sign(rfc8785.dumps(unsigned)).signature
    good = {**unsigned, "sig": b64(sig)}
    cases: list[dict[str, Any]] = []

    def add(desc: str, leaf: bytes, expect: str) -> None:
        case: dict[str, Any] = {"desc": desc}
        try:
            case["text"] = leaf.decode()
        except UnicodeDecodeError:
            case["hex"] = leaf.hex()
        case["expect"] = expect
        cases.append(case)

    def signed(value: dict[str, Any]) -> bytes:
        body = {k: v for k, v in value.items() if k != "sig"}
        return rfc8785.dumps({**value, "sig": b64(ACTOR_KEY.sign(rfc8785.dumps(body)).signature)})

    add("good self-signed genesis registration", rfc8785.dumps(good), "ok")
    add(
        "good entry with an astral key in the body",
        signed({**unsigned, "type": "dataset.register", "body": {"\ue000": 1, "😀": 2}}),
        "ok",
    )
    add(
        "not canonical: a space after a colon",
        json.dumps(good, ensure_ascii=False, sort_keys=True, separators=(",", ": ")).encode(),
        "error",
    )
    add(
        "not canonical: keys in insertion order",
        json.dumps(good, ensure_ascii=False, separators=(",", ":")).encode(),
        "error",
    )
    add("extra field", signed({**unsigned, "extra": 1}), "error")
    add("missing field ts", signed({k: v for k, v in unsigned.items() if k != "ts"}), "error")
    add("sig missing", rfc8785.dumps(unsigned), "error")
    add("wrong version 2", signed({**unsigned, "v": 2}), "error")
    add("version as a string", signed({**unsigned, "v": "1"}), "error")
    add("version true", signed({**unsigned, "v": True}), "error")
    add("unknown type", signed({**unsigned, "type": "identity.delete"}), "error")
    add("type not a string", signed({**unsigned, "type": 7}), "error")
    add("ts without microseconds", signed({**unsigned, "ts": "2024-05-01T08:00:00Z"}), "error")
    add("ts with an offset", signed({**unsigned, "ts": "2024-05-01T08:00:00.000000+00:00"}), "error")
    add("ts not a date", signed({**unsigned, "ts": "2024-13-01T08:00:00.000000Z"}), "error")
    add("ts with Arabic-Indic digits", signed({**unsigned, "ts": "٢٠٢٤-05-01T08:00:00.000000Z"}), "error")
    add("actor in uppercase hex", signed({**unsigned, "actor": key_id(pub).upper()}), "error")
    add("actor too short", signed({**unsigned, "actor": key_id(pub)[:30]}), "error")
    add("body not an object", signed({**unsigned, "body": []}), "error")
    add("a float in the body", rfc8785.dumps({**good, "body": {"x": 1.5}}), "error")
    add("sig not base64", rfc8785.dumps({**good, "sig": "!" * 88}), "error")
    add("sig of 63 bytes", rfc8785.dumps({**good, "sig": b64(sig[:63])}), "error")
    add("sig base64 without padding", rfc8785.dumps({**good, "sig": b64(sig).rstrip("=")}), "error")
    if base64.urlsafe_b64encode(sig) != base64.b64encode(sig):
        add("sig in base64url", rfc8785.dumps({**good, "sig": base64.urlsafe_b64encode(sig).decode()}), "error")
    add("sig not a string", rfc8785.dumps({**good, "sig": 5}), "error")
    add("not an object", rfc8785.dumps([good]), "error")
    add("not JSON", b"v=1;type=identity.register", "error")
    bad = bytearray(sig)
    bad[0] ^= 1
    flipped = rfc8785.dumps({**good, "sig": b64(bytes(bad))})
    add("bad signature: one bit flipped (well formed)", flipped, "bad_signature")
    add(
        "body changed after signing (well formed)",
        rfc8785.dumps({**good, "body": {**good["body"], "name": "攻击者"}}),
        "bad_signature",
    )
    add(
        "signed by another key (well formed)",
        rfc8785.dumps({**good, "sig": b64(OTHER_KEY.sign(rfc8785.dumps(unsigned)).signature)}),
        "bad_signature",
    )
    return {
        "desc": "Signed entry envelopes: 'text' (UTF-8) or 'hex' are the leaf bytes. 'ok': well formed and "
        "the signature verifies under 'public_key'; 'error': refused as malformed; 'bad_signature': well "
        "formed but the signature does not verify.",
        "public_key": b64(pub),
        "key_id": key_id(pub),
        "cases": cases,
    }


# ---------------------------------------------------------------------------------------------

FILES: dict[str, Callable[[], dict[str, Any]]] = {
    "tree_hashes.json": tree_hash_vectors,
    "inclusion.json": inclusion_vectors,
    "consistency.json": consistency_vectors,
    "canonical.json": canonical_vectors,
    "notes.json": note_vectors,
    "envelopes.json": envelope_vectors,
}


def render() -> dict[str, str]:
    """Every vector file's text."""
    check_anchors()
    return {name: json.dumps(make(), ensure_ascii=False, indent=1) + "\n" for name, make in FILES.items()}


def main(argv: list[str]) -> int:
    texts = render()
    if "--check" in argv:
        stale = [n for n, t in texts.items() if not (HERE / n).exists() or (HERE / n).read_text("utf-8") != t]
        for name in stale:
            print(f"stale: tests/vectors/{name}")
        return 1 if stale else 0
    for name, text in texts.items():
        (HERE / name).write_text(text, "utf-8")
        print(f"wrote tests/vectors/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
