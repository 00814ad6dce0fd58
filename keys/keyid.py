"""Key ids: lowercase hex of the first 16 bytes of SHA-256 of the raw 32-byte Ed25519 public key."""

from __future__ import annotations

import hashlib
import re

KEY_ID_RE = re.compile(r"[0-9a-f]{32}")


def key_id(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(public_key).digest()[:16].hex()


def is_key_id(value: object) -> bool:
    return isinstance(value, str) and KEY_ID_RE.fullmatch(value) is not None
