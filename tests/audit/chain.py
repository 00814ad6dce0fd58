"""An in-memory ledger for the pure verifier's tests: raw entries and blocks, signed like the sequencer signs.

``Chain`` keeps the leaves and the blocks as lists so a test can bend any of them and re-sign a block
(``seal`` takes overrides) to reach each check on its own.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import nacl.signing

from api.node import identity_body
from audit.verifier import RawBlock, RawEntry, VerificationResult, verify_ledger
from keys.keystore import StoredKey
from ledger.block import GENESIS_PREV, BlockHeader, sign_header
from ledger.envelope import sign_envelope
from ledger.note import Checkpoint, sign_note, signer_vkey
from ledger.timefmt import format_ts, now
from ledger.tree import CompactRange, leaf_hash

ORIGIN = "chain.test/log"


def key(name: str, role: str = "department") -> StoredKey:
    seed = hashlib.sha256(f"chain test key {name}".encode()).digest()
    return StoredKey(name, nacl.signing.SigningKey(seed), None, role)


def register_body(k: StoredKey, role: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"subject": "s" * 64} if role == "citizen" else {}
    if role == "department":
        extra["x25519"] = "A" * 43 + "="
    return identity_body(k, role, f"{role} {k.name}", **extra)


class Chain:
    """Leaves and blocks of a small ledger: genesis admin, one department, its records."""

    def __init__(self, start: datetime | None = None) -> None:
        self.log = nacl.signing.SigningKey(hashlib.sha256(b"chain test log key").digest())
        self.vkey = signer_vkey(ORIGIN, self.log).encode()
        self.time = start or now()
        self.leaves: list[bytes] = []
        self.blocks: list[RawBlock] = []
        self.headers: list[BlockHeader] = []
        self.admin = key("admin", "admin")
        self.dept = key("dept", "department")
        self.add(
            sign_envelope(self.admin.signing, "identity.register", register_body(self.admin, "admin"), ts=self.ts())
        )
        self.add(
            sign_envelope(self.admin.signing, "identity.register", register_body(self.dept, "department"), ts=self.ts())
        )

    def ts(self, offset: float = 0.0) -> str:
        return format_ts(self.time + timedelta(seconds=offset))

    def tick(self, seconds: float = 1.0) -> None:
        self.time += timedelta(seconds=seconds)

    def add(self, leaf: bytes) -> int:
        self.leaves.append(leaf)
        return len(self.leaves) - 1

    def record(self, i: int, *, signer: StoredKey | None = None, ts: str | None = None) -> bytes:
        body = {"dataset": "ds", "record": f"r{i}", "subject": "s" * 64, "commitment": "c" * 44}
        return sign_envelope((signer or self.dept).signing, "record.commit", body, ts=ts or self.ts())

    def records(self, count: int) -> None:
        start = len(self.leaves)
        for i in range(start, start + count):
            self.add(self.record(i))

    def root(self, size: int) -> bytes:
        tree = CompactRange()
        for leaf in self.leaves[:size]:
            tree.append(leaf_hash(leaf))
        return tree.root()

    def seal(self, **override: Any) -> BlockHeader:
        """Seal the leaves since the last block; ``override`` replaces header fields before signing."""
        first = self.headers[-1].tree_size if self.headers else 0
        fields: dict[str, Any] = {
            "height": len(self.headers),
            "tree_size": len(self.leaves),
            "root": self.root(len(self.leaves)),
            "prev": self.headers[-1].digest() if self.headers else GENESIS_PREV,
            "first_seq": first,
            "time": self.ts(),
        }
        fields.update(override)
        header = sign_header(self.log, **fields)
        note = sign_note(Checkpoint(ORIGIN, header.tree_size, header.root).text(), ORIGIN, self.log)
        self.headers.append(header)
        self.blocks.append((header.height, header.to_json(), note))
        self.tick()
        return header

    def entries(self) -> list[RawEntry]:
        return list(enumerate(self.leaves))

    def verify(self, entries: list[RawEntry] | None = None, blocks: list[RawBlock] | None = None) -> VerificationResult:
        return verify_ledger(
            self.vkey, ORIGIN, self.entries() if entries is None else entries, self.blocks if blocks is None else blocks
        )


def standard_chain() -> Chain:
    """Three blocks: the two registrations, five records, three records."""
    chain = Chain()
    chain.seal()
    chain.records(5)
    chain.seal()
    chain.records(3)
    chain.seal()
    return chain
