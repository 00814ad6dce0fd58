"""Pseudonymous subject ids: HMAC-SHA256 of the national ID number under a server-side secret.

The raw identity number never reaches the ledger; only this keyed hash does, so nobody without the
secret can test a guessed number against it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from keys.keystore import atomic_write, home

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character of an 18-digit resident identity number."""
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def valid_id_number(number: str) -> bool:
    digits = number[:17]
    return len(number) == 18 and digits.isascii() and digits.isdigit() and id_check_digit(digits) == number[17].upper()


def subject_secret(path: Path | None = None) -> bytes:
    """The server's subject secret (32 random bytes, created once under SHULIAN_HOME, mode 0600)."""
    path = path or home() / "subject.secret"
    if not path.exists():
        atomic_write(path, secrets.token_bytes(32))
    return path.read_bytes()


def subject_id(id_number: str, secret: bytes) -> str:
    """The pseudonymous subject id of a national ID number: 'sub:' + hex HMAC-SHA256."""
    if not valid_id_number(id_number):
        raise ValueError("not a valid 18-character resident identity number")
    return "sub:" + hmac.new(secret, id_number.upper().encode(), hashlib.sha256).hexdigest()
