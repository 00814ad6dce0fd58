"""Data-encryption keys: AES-256-GCM per dataset, each wrapped by the vault's master key (pure)."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import KeystoreError

NONCE = 12


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """nonce ‖ AES-256-GCM(plaintext) bound to ``aad``."""
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE], sealed[NONCE:], aad)
    except (InvalidTag, ValueError) as exc:
        raise KeystoreError("sealed data does not open: wrong key, or it was altered") from exc


def wrap(master: bytes, dek: bytes, dataset: str) -> bytes:
    return seal(master, dek, b"shulian-dek/1:" + dataset.encode())


def unwrap(master: bytes, wrapped: bytes, dataset: str) -> bytes:
    return open_sealed(master, wrapped, b"shulian-dek/1:" + dataset.encode())
