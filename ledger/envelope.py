"""The signed envelope: its canonical leaf bytes, signing and the checks that need no ledger state."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nacl.exceptions
import nacl.signing
import orjson

from keys.keyid import is_key_id, key_id
from ledger import sodium
from ledger.canonical import canonical_bytes, parse_canonical
from ledger.errors import EnvelopeError, SignatureError
from ledger.timefmt import format_ts, now, parse_ts

VERSION = 1
MAX_ENTRY_BYTES = 64 * 1024

ENTRY_TYPES = frozenset(
    {
        "identity.register",
        "identity.rotate",
        "identity.revoke",
        "dataset.register",
        "record.commit",
        "agreement.approve",
        "agreement.revoke",
        "consent.grant",
        "consent.revoke",
        "access.decision",
        "usage.release",
        "objection.file",
        "objection.resolve",
    }
)
_FIELDS = frozenset({"v", "type", "ts", "actor", "body", "sig"})


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed, shape-checked envelope. ``leaf`` is its exact canonical bytes."""

    type: str
    ts: str
    actor: str
    body: dict[str, Any]
    sig: bytes
    leaf: bytes
    at: datetime | None = field(default=None, compare=False, repr=False)  # ``ts`` parsed, when known

    @property
    def time(self) -> datetime:
        at = self.at
        if at is None:
            at = parse_ts(self.ts)
            object.__setattr__(self, "at", at)  # a cache of a pure function of ``ts``
        return at

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: the canonical envelope without ``sig``."""
        return canonical_bytes({"v": VERSION, "type": self.type, "ts": self.ts, "actor": self.actor, "body": self.body})

    def verify_signature(self, public_key: bytes) -> None:
        """Raise ``SignatureError`` unless ``sig`` verifies under ``public_key``."""
        verify_ed25519(public_key, self.signed_bytes(), self.sig)


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> None:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError) as exc:
        raise SignatureError("signature does not verify") from exc


def parse_envelope(leaf: bytes) -> Envelope:
    """Parse leaf bytes into an ``Envelope``; they must be canonical and well formed (no signature check)."""
    if len(leaf) > MAX_ENTRY_BYTES:
        raise EnvelopeError(f"entry is {len(leaf)} bytes, more than {MAX_ENTRY_BYTES}")
    value = parse_canonical(leaf)
    if not isinstance(value, dict):
        raise EnvelopeError("entry is not a JSON object")
    if set(value) != _FIELDS:
        missing = sorted(_FIELDS - set(value))
        extra = sorted(set(value) - _FIELDS)
        raise EnvelopeError(f"entry fields wrong: missing {missing}, unknown {extra}")
    if value["v"] != VERSION or isinstance(value["v"], bool):
        raise EnvelopeError(f"entry version {value['v']!r} is not {VERSION}")
    if not isinstance(value["type"], str) or value["type"] not in ENTRY_TYPES:
        raise EnvelopeError(f"entry type {value['type']!r} is unknown")
    at = parse_ts(value["ts"])
    if not is_key_id(value["actor"]):
        raise EnvelopeError("actor is not a key id (32 lowercase hex digits)")
    if not isinstance(value["body"], dict):
        raise EnvelopeError("body is not an object")
    sig_text = value["sig"]
    if not isinstance(sig_text, str):
        raise EnvelopeError("sig is not a string")
    try:
        sig = base64.b64decode(sig_text, validate=True)
    except binascii.Error as exc:
        raise EnvelopeError("sig is not base64") from exc
    if len(sig) != 64 or base64.b64encode(sig).decode() != sig_text:
        raise EnvelopeError("sig is not a base64 Ed25519 signature")
    return Envelope(value["type"], value["ts"], value["actor"], value["body"], sig, leaf, at)


def signed_bytes(env: Envelope) -> bytes:
    """``env.signed_bytes()`` cut from the canonical leaf, without re-encoding it: the leaf less its ``"sig"``.

    Keys sort actor, body, sig, ts, type, v, and nothing after the top-level sig can hold ``,"sig":"``,
    so the last occurrence is that member; removing a member of a canonical object leaves the
    canonical form of the rest.
    """
    member = b',"sig":"' + base64.b64encode(env.sig) + b'"'
    cut = env.leaf.rfind(member)
    if cut < 0:
        return env.signed_bytes()
    return env.leaf[:cut] + env.leaf[cut + len(member) :]


def parse_stored(leaf: bytes) -> Envelope:
    """An entry read back from the ledger, its JSON parsed and nothing re-checked (for replaying state).

    Its canonical form, shape and signature were checked when it was appended (and ``shulian verify``
    checks them again), so only the JSON is parsed; anything unexpected takes the full
    ``parse_envelope``, which says what is wrong.
    """
    try:
        v = orjson.loads(leaf)
        return Envelope(v["type"], v["ts"], v["actor"], v["body"], base64.b64decode(v["sig"]), leaf)
    except (ValueError, TypeError, KeyError):
        return parse_envelope(leaf)


def sign_envelope(
    signing_key: nacl.signing.SigningKey,
    entry_type: str,
    body: dict[str, Any],
    *,
    ts: str | None = None,
) -> bytes:
    """Build and sign an envelope with ``signing_key``; return its canonical leaf bytes."""
    unsigned = {
        "v": VERSION,
        "type": entry_type,
        "ts": ts or format_ts(now()),
        "actor": key_id(bytes(signing_key.verify_key)),
        "body": body,
    }
    signed = canonical_bytes(unsigned)
    sig = sodium.sign(signing_key, signed)  # the same signature, without releasing the GIL
    return with_signature(signed, sig)


def with_signature(signed: bytes, sig: bytes) -> bytes:
    """The canonical leaf from the canonical signed bytes and the signature, without encoding it again.

    The inverse of ``signed_bytes``: ``sig`` sorts between ``body`` and ``ts``, and the last ``,"ts":"``
    is the top-level member's (after it come only its timestamp, ``type`` and ``v``); inserting a
    member into a canonical object where its key sorts leaves the canonical form of the whole.
    """
    cut = signed.rfind(b',"ts":"')
    if cut < 0:
        raise EnvelopeError("signed bytes without a top-level ts")
    return signed[:cut] + b',"sig":"' + base64.b64encode(sig) + b'"' + signed[cut:]
