"""Helpers for tests: keys and entries, and an independent whole-ledger check.

``check_ledger`` re-derives everything from the stored leaf bytes with its own small RFC 9162 code
(not ``ledger.tree``): seqs, leaf hashes, every stored tree node, every block header (signature, link,
size, root, first_seq), every checkpoint, entry heights, and consistency proofs between consecutive
checkpoints as served by ``LogReader``. It raises ``AssertionError`` naming the first fault.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import itertools
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import nacl.signing
from sqlalchemy import text

from api.node import Node, identity_body
from keys.keyid import key_id
from keys.keystore import StoredKey
from ledger.block import GENESIS_PREV, parse_header
from ledger.canonical import canonical_bytes
from ledger.envelope import parse_envelope, sign_envelope
from ledger.log import LogReader
from ledger.note import VerifierKey, verify_checkpoint
from ledger.sequencer import Receipt
from ledger.store import Store
from ledger.timefmt import format_ts, now, parse_ts
from ledger.tree import verify_consistency, verify_inclusion

# -- keys and entries ---------------------------------------------------------------------------


def fixed_key(label: str) -> nacl.signing.SigningKey:
    """A deterministic Ed25519 key named by ``label``."""
    return nacl.signing.SigningKey(hashlib.sha256(b"shulian test key " + label.encode()).digest())


def stored_key(label: str, role: str, *, x25519: bool | None = None) -> StoredKey:
    key = StoredKey.generate(label, x25519=role == "department" if x25519 is None else x25519, role=role)
    key.signing = fixed_key(label)
    return key


def ts_at(offset_seconds: float = 0.0, base: datetime | None = None) -> str:
    """A ledger time ``offset_seconds`` from ``base`` (default: now)."""
    return format_ts((base or now()) + timedelta(seconds=offset_seconds))


def register_body(key: StoredKey, role: str, name: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if role == "citizen":
        extra["subject"] = hashlib.sha256(b"subject " + key.key_id.encode()).hexdigest()
    return identity_body(key, role, name or f"{role} {key.name}", **extra)


def register(node: Node, label: str, role: str, *, ts: str | None = None) -> StoredKey:
    """Register a new key with ``role`` on ``node``'s ledger, signed by the node's admin."""
    key = stored_key(label, role)
    admin = node.local_key("admin")
    node.append(sign_envelope(admin.signing, "identity.register", register_body(key, role), ts=ts))
    return key


def record_body(i: int, tag: str = "") -> dict[str, Any]:
    digest = hashlib.sha256(f"record {tag} {i}".encode()).digest()
    return {
        "dataset": "ds-population",
        "record": f"rec-{tag}-{i}",
        "subject": hashlib.sha256(f"subject {i}".encode()).hexdigest(),
        "commitment": base64.b64encode(digest).decode(),
    }


def dataset_body(owner: str, i: int, tag: str = "") -> dict[str, Any]:
    """A fresh ``dataset.register`` body: valid for any department, never registered before."""
    name = hashlib.sha256(f"{tag} {i} {secrets.token_hex(8)}".encode()).hexdigest()[:16]
    return {
        "dataset": f"test.ds_{name}",
        "owner": owner,
        "title": f"test dataset {tag} {i}",
        "fields": [{"name": "name", "sensitivity": "high"}, {"name": "status", "sensitivity": "low"}],
        "level": "一般",
        "personal": True,
        "update_frequency": "每日",
    }


def record_entry(key: StoredKey | nacl.signing.SigningKey, i: int, *, tag: str = "", ts: str | None = None) -> bytes:
    """A department-signed leaf that the consent rules accept from a fresh department key
    (a ``dataset.register`` of a new dataset; ``record.commit`` would need a registered dataset)."""
    signing = key.signing if isinstance(key, StoredKey) else key
    owner = key_id(bytes(signing.verify_key))
    return sign_envelope(signing, "dataset.register", dataset_body(owner, i, tag), ts=ts)


def append_all(node: Node, leaves: list[bytes]) -> list[Receipt]:
    return [node.append(leaf) for leaf in leaves]


# -- database snapshots -------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    entries: int
    tree_nodes: int
    blocks: int
    meta: int


def counts(store: Store) -> Counts:
    with store.reader() as conn:
        values = [
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("entries", "tree_nodes", "blocks", "ledger_meta")
        ]
    return Counts(*(int(v) for v in values))


# -- an independent RFC 9162 ---------------------------------------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _leaf(data: bytes) -> bytes:
    return _sha(b"\x00" + data)


def _node(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right)


class MountainRange:
    """Roots of the perfect subtrees of a growing tree (left to right), folded into MTH on demand."""

    def __init__(self) -> None:
        self.peaks: list[tuple[int, bytes]] = []  # (height, hash)
        self.size = 0

    def push(self, leaf_hash: bytes) -> None:
        height, h = 0, leaf_hash
        while self.peaks and self.peaks[-1][0] == height:
            _, left = self.peaks.pop()
            h = _node(left, h)
            height += 1
        self.peaks.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        if not self.peaks:
            return _sha(b"")
        acc = self.peaks[-1][1]
        for _, h in reversed(self.peaks[:-1]):
            acc = _node(h, acc)
        return acc


def naive_root(leaf_hashes: list[bytes]) -> bytes:
    """MTH over leaf hashes by RFC 9162's recursion."""
    n = len(leaf_hashes)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return leaf_hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return _node(naive_root(leaf_hashes[:k]), naive_root(leaf_hashes[k:]))


# -- whole-ledger check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerSummary:
    size: int
    blocks: int
    leaf_hashes: list[bytes]
    checkpoints: list[tuple[int, str]]


def check_ledger(url: str) -> LedgerSummary:
    """Check the whole ledger at ``url`` from its stored bytes; raise ``AssertionError`` on the first fault."""
    store = Store(url)
    try:
        return _check(store)
    finally:
        store.close()


def _check(store: Store) -> LedgerSummary:
    with store.reader() as conn:
        meta = dict(conn.execute(text("SELECT name, value FROM ledger_meta")).all())
        entry_rows = conn.execute(
            text("SELECT seq, leaf, leaf_hash, type, actor, ts, height FROM entries ORDER BY seq")
        ).all()
        node_rows = conn.execute(text("SELECT level, idx, hash FROM tree_nodes")).all()
        block_rows = conn.execute(
            text("SELECT height, tree_size, header, checkpoint FROM blocks ORDER BY height")
        ).all()
    vkey = VerifierKey.parse(meta["log_key"])
    assert vkey.name == meta["origin"], "log key name is not the origin"

    # entries: contiguous seqs, the stored index columns derived from the leaf bytes
    leaf_hashes: list[bytes] = []
    for expected_seq, (seq, leaf, stored_hash, type_, actor, ts, _height) in enumerate(entry_rows):
        assert seq == expected_seq, f"seq gap: expected {expected_seq}, found {seq}"
        leaf = bytes(leaf)
        env = parse_envelope(leaf)
        assert bytes(stored_hash) == _leaf(leaf), f"seq {seq}: leaf_hash column is not H(0x00‖leaf)"
        assert (type_, actor, ts) == (env.type, env.actor, env.ts), f"seq {seq}: index columns differ from the leaf"
        leaf_hashes.append(_leaf(leaf))
    n = len(leaf_hashes)
    assert len(set(leaf_hashes)) == n, "duplicate leaf on the ledger"

    # tree nodes: exactly the complete subtrees of a tree of n leaves, each with the right hash
    stored = {(int(level), int(idx)): bytes(h) for level, idx, h in node_rows}
    assert len(stored) == len(node_rows), "a tree node is stored twice"
    expected_keys = {(level, idx) for level in range(max(n, 1).bit_length()) for idx in range(n >> level)}
    assert set(stored) == expected_keys, (
        f"stored tree nodes differ from the complete subtrees of size {n}: "
        f"missing {sorted(expected_keys - set(stored))[:3]}, extra {sorted(set(stored) - expected_keys)[:3]}"
    )
    for (level, idx), h in sorted(stored.items()):
        want = leaf_hashes[idx] if level == 0 else _node(stored[level - 1, 2 * idx], stored[level - 1, 2 * idx + 1])
        assert h == want, f"tree node ({level}, {idx}) has the wrong hash"

    # blocks: a chain of signed headers, each sealing a non-empty run of entries, with its checkpoint
    mountain = MountainRange()
    prev_digest, prev_size, prev_time = GENESIS_PREV, 0, None
    checkpoints: list[tuple[int, str]] = []
    heights_of_seq: list[int] = []
    for expected_height, (height, tree_size, header_json, checkpoint) in enumerate(block_rows):
        assert height == expected_height, f"block height gap: expected {expected_height}, found {height}"
        header = parse_header(json.loads(header_json))
        assert canonical_bytes(header.to_json()).decode() == header_json, f"block {height}: header not canonical"
        header.verify_signature(vkey.public_key)
        assert header.height == height and header.tree_size == tree_size, f"block {height}: header/columns differ"
        assert header.prev == prev_digest, f"block {height}: prev is not the digest of block {height - 1}"
        assert header.first_seq == prev_size, f"block {height}: first_seq {header.first_seq}, expected {prev_size}"
        assert tree_size > prev_size, f"block {height}: empty or shrinking block"
        assert tree_size <= n, f"block {height}: seals entries that are not stored"
        if prev_time is not None:
            assert parse_ts(header.time) >= prev_time, f"block {height}: time goes back"
        while mountain.size < tree_size:
            mountain.push(leaf_hashes[mountain.size])
        assert header.root == mountain.root(), f"block {height}: root is not the MTH of the first {tree_size} leaves"
        cp = verify_checkpoint(checkpoint, vkey)
        assert (cp.origin, cp.size, cp.root) == (vkey.name, tree_size, header.root), (
            f"block {height}: checkpoint differs"
        )
        heights_of_seq.extend([height] * (tree_size - prev_size))
        checkpoints.append((tree_size, checkpoint))
        prev_digest = hashlib.sha256(header_json.encode()).digest()
        prev_size, prev_time = tree_size, parse_ts(header.time)
    assert prev_size == n, f"{n - prev_size} entries are not sealed by any block"
    for seq, row in enumerate(entry_rows):
        assert row[6] == heights_of_seq[seq], (
            f"seq {seq}: height column {row[6]}, sealed by block {heights_of_seq[seq]}"
        )

    # the read side: consistency between consecutive checkpoints, inclusion of a few entries
    reader = LogReader(store)
    roots = {size: verify_checkpoint(cp, vkey).root for size, cp in checkpoints}
    sizes = [size for size, _ in checkpoints]
    for a, b in itertools.pairwise(sizes):
        verify_consistency(a, b, roots[a], roots[b], reader.consistency(a, b))
    if n:
        for seq in sorted({0, n // 2, n - 1}):
            proof = reader.inclusion(leaf_hashes[seq], n)
            assert proof.seq == seq
            verify_inclusion(seq, n, leaf_hashes[seq], proof.hashes, roots[n])
    return LedgerSummary(n, len(block_rows), leaf_hashes, checkpoints)


def external_verifier() -> Callable[..., Any] | None:
    """The audit package's whole-database verifier (``verify_database(store, ...)``), if it provides one."""
    for module_name in ("audit", "audit.sources", "audit.verify", "audit.verifier"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, "verify_database", None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def audit_verify(url: str, expected_size: int | None = None) -> bool:
    """Run the audit verifier on ``url`` if there is one; assert its verdict is good. False if there is none."""
    verify = external_verifier()
    if verify is None:
        return False
    store = Store(url)
    try:
        try:
            result = verify(store, progress=False, workers=1)
        except TypeError:
            result = verify(store)
    finally:
        store.close()
    assert bool(result), f"audit verifier: {getattr(result, 'message', result)}"
    if expected_size is not None and hasattr(result, "entries"):
        assert result.entries == expected_size, f"audit verifier checked {result.entries} entries, not {expected_size}"
    return True
