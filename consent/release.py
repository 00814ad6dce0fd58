"""Releases (社会链上使用): the disclosure sent to a requester, sealed to its X25519 key.

The payload names the decision and the record version it answers and carries the disclosure leaves
(``commitment.disclose``), so the requester can recompute the record commitment and find it on the
ledger. It is sealed (``nacl.public.SealedBox``) over its canonical bytes; the ``usage.release`` entry
carries the SHA-256 of exactly the sealed bytes delivered.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.public

from consent import validate as v
from consent.catalogue import Dataset
from consent.commitment import DisclosureItem, Value, verify_disclosure
from consent.errors import InvalidBody, ReleaseError
from ledger import sodium
from ledger.canonical import canonical_bytes, parse_canonical
from ledger.errors import LedgerError
from ledger.tree import HASH_SIZE

FORMAT = "shulian-release/1"
PAYLOAD_FIELDS = frozenset({"format", "decision", "record_seq", "dataset", "record", "subject", "commitment", "leaves"})
USAGE_FIELDS = frozenset({"decision", "requester", "record_seq", "delivered"})


def build_release(
    decision_seq: int,
    record_seq: int,
    dataset: str,
    record: str,
    subject: str,
    commitment_root: bytes,
    items: Sequence[DisclosureItem],
) -> dict[str, Any]:
    """The release payload for an allow decision: what the requester gets, before sealing."""
    return {
        "format": FORMAT,
        "decision": decision_seq,
        "record_seq": record_seq,
        "dataset": dataset,
        "record": record,
        "subject": subject,
        "commitment": base64.b64encode(commitment_root).decode(),
        "leaves": [dict(item) for item in items],
    }


def seal(payload: Mapping[str, Any], x25519_public: bytes, *, ahead: sodium.SealKey | None = None) -> bytes:
    """Seal the payload's canonical bytes to the requester's X25519 public key (anonymous sender).

    ``ahead``: a ``SealKey`` made earlier (its X25519 work done outside the writer lock); used if it is
    for this key and has not sealed yet, else the box is made here in full.
    """
    if not isinstance(x25519_public, bytes):
        raise ReleaseError("not an X25519 public key")
    try:
        if ahead is not None and not ahead.used and ahead.recipient == x25519_public:
            return ahead.seal(canonical_bytes(dict(payload)))
        return sodium.seal(canonical_bytes(dict(payload)), x25519_public)
    except ValueError as exc:  # not 32 bytes
        raise ReleaseError(str(exc)) from exc
    except nacl.exceptions.CryptoError as exc:  # e.g. a low-order point: no shared secret
        raise ReleaseError("cannot seal to this X25519 public key") from exc


def open_release(sealed: bytes, x25519_private: bytes | nacl.public.PrivateKey) -> dict[str, Any]:
    """Open a sealed release with the requester's X25519 private key; a wrong key or changed bytes raise."""
    try:
        key = (
            x25519_private
            if isinstance(x25519_private, nacl.public.PrivateKey)
            else nacl.public.PrivateKey(x25519_private)
        )
        plain = nacl.public.SealedBox(key).decrypt(sealed)
    except (nacl.exceptions.CryptoError, TypeError, ValueError) as exc:
        raise ReleaseError("cannot open the release: wrong key or altered bytes") from exc
    try:
        payload = parse_canonical(plain)
    except LedgerError as exc:
        raise ReleaseError(f"release payload is not canonical JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ReleaseError("release payload is not an object")
    return payload


def delivered_hash(sealed: bytes) -> str:
    """The ``delivered`` of a ``usage.release``: base64 SHA-256 of the sealed bytes."""
    return base64.b64encode(hashlib.sha256(sealed).digest()).decode()


def verify_release(
    payload: Mapping[str, Any], expected_commitment: bytes, *, dataset: Dataset | None = None
) -> dict[str, Value]:
    """Check an opened release against the record commitment on the ledger; return the disclosed values.

    ``expected_commitment`` comes from the ``record.commit`` at the payload's ``record_seq``, read from
    the ledger, never from the payload. With ``dataset``, each opened leaf must sit at its field's place.
    """
    if not isinstance(payload, Mapping) or set(payload) != PAYLOAD_FIELDS or payload.get("format") != FORMAT:
        raise ReleaseError(f"release payload is not a {FORMAT} object")
    try:
        claimed = v.b64(payload["commitment"], "release commitment", HASH_SIZE)
    except InvalidBody as exc:
        raise ReleaseError(str(exc)) from exc
    leaves = payload["leaves"]
    if not isinstance(leaves, list):
        raise ReleaseError("release leaves is not a list")
    values = verify_disclosure(leaves, expected_commitment, dataset=dataset)
    if claimed != expected_commitment:
        raise ReleaseError("release names another record commitment than the one expected")
    return values


@dataclass(frozen=True, slots=True)
class UsageRelease:
    """A parsed ``usage.release`` body."""

    decision: int
    requester: str
    record_seq: int
    delivered: bytes


def parse_usage_release(body: Mapping[str, Any]) -> UsageRelease:
    what = "usage.release"
    v.fields_exactly(body, what, USAGE_FIELDS)
    return UsageRelease(
        decision=v.seq(body["decision"], f"{what} decision"),
        requester=v.key_id(body["requester"], f"{what} requester"),
        record_seq=v.seq(body["record_seq"], f"{what} record_seq"),
        delivered=v.b64(body["delivered"], f"{what} delivered", 32),
    )


def usage_release_body(*, decision: int, requester: str, record_seq: int, sealed: bytes) -> dict[str, Any]:
    """The ``usage.release`` body for ``sealed``, delivered for allow decision ``decision``."""
    body: dict[str, Any] = {
        "decision": decision,
        "requester": requester,
        "record_seq": record_seq,
        "delivered": delivered_hash(sealed),
    }
    parse_usage_release(body)
    return body
