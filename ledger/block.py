"""Block headers: the Merkle-chained, log-signed record of each sealed batch (pure)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import nacl.signing

from ledger import sodium
from ledger.canonical import canonical_bytes
from ledger.envelope import verify_ed25519
from ledger.errors import LedgerError, SignatureError
from ledger.timefmt import parse_ts

GENESIS_PREV = bytes(32)
_HEADER_FIELDS = ("height", "tree_size", "root", "prev", "first_seq", "time", "sig")


class BlockError(LedgerError):
    """A block header that is malformed, badly signed or badly linked."""

    status = 422


@dataclass(frozen=True, slots=True)
class BlockHeader:
    height: int
    tree_size: int
    root: bytes
    prev: bytes
    first_seq: int
    time: str
    sig: bytes

    def unsigned(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "tree_size": self.tree_size,
            "root": base64.b64encode(self.root).decode(),
            "prev": base64.b64encode(self.prev).decode(),
            "first_seq": self.first_seq,
            "time": self.time,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned(), "sig": base64.b64encode(self.sig).decode()}

    def digest(self) -> bytes:
        """SHA-256 of the canonical header, ``sig`` included: the next block's ``prev``."""
        return hashlib.sha256(canonical_bytes(self.to_json())).digest()

    def verify_signature(self, log_public_key: bytes) -> None:
        try:
            verify_ed25519(log_public_key, canonical_bytes(self.unsigned()), self.sig)
        except SignatureError as exc:
            raise BlockError("header signature does not verify") from exc


def sign_header(
    key: nacl.signing.SigningKey,
    *,
    height: int,
    tree_size: int,
    root: bytes,
    prev: bytes,
    first_seq: int,
    time: str,
) -> BlockHeader:
    draft = BlockHeader(height, tree_size, root, prev, first_seq, time, b"")
    sig = sodium.sign(key, canonical_bytes(draft.unsigned()))
    return BlockHeader(height, tree_size, root, prev, first_seq, time, sig)


def _b64(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise BlockError(f"{what} is not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise BlockError(f"{what} is not base64") from exc
    if len(raw) != size:
        raise BlockError(f"{what} is {len(raw)} bytes, not {size}")
    if base64.b64encode(raw).decode() != value:  # e.g. stray padding bits: another text, same bytes
        raise BlockError(f"{what} is not in canonical base64")
    return raw


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BlockError(f"{what} is not a non-negative integer")
    return value


def parse_header(value: object) -> BlockHeader:
    """Read a header from its JSON form (unknown fields ignored), checking every field's shape."""
    if not isinstance(value, dict):
        raise BlockError("header is not an object")
    missing = [f for f in _HEADER_FIELDS if f not in value]
    if missing:
        raise BlockError(f"header lacks {', '.join(missing)}")
    time = value["time"]
    try:
        parse_ts(time)
    except LedgerError as exc:
        raise BlockError(str(exc)) from exc
    return BlockHeader(
        height=_int(value["height"], "height"),
        tree_size=_int(value["tree_size"], "tree_size"),
        root=_b64(value["root"], 32, "root"),
        prev=_b64(value["prev"], 32, "prev"),
        first_seq=_int(value["first_seq"], "first_seq"),
        time=time,
        sig=_b64(value["sig"], 64, "sig"),
    )


MAX_CLOCK_SKEW_SECONDS = 300


def entry_time_fits(entry_ts: str, block_time: str) -> bool:
    """An entry's ``ts`` lies within ``MAX_CLOCK_SKEW_SECONDS`` of the time of the block sealing it."""
    delta = (parse_ts(entry_ts) - parse_ts(block_time)).total_seconds()
    return abs(delta) <= MAX_CLOCK_SKEW_SECONDS
