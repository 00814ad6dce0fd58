"""The key registry, derived from the ledger's identity entries (pure: entries in, state out).

Seq 0 is the genesis: an ``identity.register`` of an admin, signed by that key itself. Afterwards an
admin registers keys; a key or an admin rotates it (``identity.rotate`` names the new key and the
one it ``replaces``) or revokes it. A key signs validly from the ``ts`` of the entry that registered it
until the ``ts`` of the entry that rotated or revoked it, so old signatures stay verifiable.
"""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keys.keyid import is_key_id, key_id
from keys.roles import ROLES, SIGNER_ROLES
from ledger.envelope import Envelope
from ledger.errors import EnvelopeError, KeyError_, SignatureError
from ledger.timefmt import parse_ts

IDENTITY_TYPES = frozenset({"identity.register", "identity.rotate", "identity.revoke"})


@dataclass(slots=True)
class KeyRecord:
    key_id: str
    role: str
    name: str
    ed25519: bytes
    x25519: bytes | None
    subject: str | None
    registered_seq: int
    valid_from: datetime
    ended_seq: int | None = None
    valid_until: datetime | None = None
    ended_how: str | None = None  # "rotated" or "revoked"
    replaced_by: str | None = None


def _b64key(body: dict[str, Any], field: str) -> bytes:
    value = body.get(field)
    if not isinstance(value, str):
        raise EnvelopeError(f"body.{field} is missing or not a string")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise EnvelopeError(f"body.{field} is not base64") from exc
    if len(raw) != 32:
        raise EnvelopeError(f"body.{field} is not a 32-byte key")
    return raw


def _text(body: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise EnvelopeError(f"body.{field} is missing or not a short string")
    return value


class KeyRegistry:
    """Every key ever registered, with its validity window."""

    def __init__(self) -> None:
        self.keys: dict[str, KeyRecord] = {}
        self.next_seq = 0  # the seq of the next entry to apply

    def copy(self) -> KeyRegistry:
        return copy.deepcopy(self)

    def public_key(self, kid: str) -> bytes | None:
        rec = self.keys.get(kid)
        return rec.ed25519 if rec else None

    def signer(self, env: Envelope, seq: int | None = None) -> KeyRecord:
        """The key that signed ``env``, if it was valid at ``env.ts`` (signature not checked here).

        With ``seq``, a key also stops at the entry that rotated or revoked it, whatever ``ts`` an
        entry after that claims: a revoked key cannot slip in a back-dated entry.
        """
        rec = self.keys.get(env.actor)
        if rec is None:
            raise KeyError_(f"key {env.actor} is not registered")
        if seq is not None and rec.ended_seq is not None and seq > rec.ended_seq:
            raise KeyError_(f"key {env.actor} was {rec.ended_how} at seq {rec.ended_seq}")
        at = env.time
        if at < rec.valid_from:
            raise KeyError_(f"key {env.actor} is not yet valid at {env.ts}")
        if rec.valid_until is not None and at >= rec.valid_until:
            raise KeyError_(f"key {env.actor} was {rec.ended_how} before {env.ts}")
        return rec

    def check(self, seq: int, env: Envelope, *, signature_checked: bool = False) -> KeyRecord | None:
        """Check ``env`` as entry ``seq`` against the registry: key validity, role, signature.

        Returns the signer's record, or None for the genesis entry. Does not change the registry.
        """
        if seq == 0:
            self._check_genesis(env)
            if not signature_checked:
                env.verify_signature(_b64key(env.body, "ed25519"))
            return None
        rec = self.signer(env, seq)
        if not signature_checked:
            env.verify_signature(rec.ed25519)
        allowed = SIGNER_ROLES.get(env.type)
        if env.type == "identity.register":
            if rec.role != "admin":
                raise KeyError_(f"only an admin may register keys; {env.actor} is a {rec.role}")
        elif env.type in ("identity.rotate", "identity.revoke"):
            target = env.body.get("replaces" if env.type == "identity.rotate" else "key_id")
            if rec.role != "admin" and target != env.actor:
                raise KeyError_(f"a {rec.role} may only rotate or revoke its own key")
        elif allowed is not None and rec.role not in allowed:
            raise KeyError_(f"a {rec.role} key may not sign {env.type}")
        if env.type in IDENTITY_TYPES:
            self._validate_identity(env)
        return rec

    def apply(self, seq: int, env: Envelope) -> None:
        """Record the effect of entry ``seq`` (already checked) on the registry."""
        if seq < self.next_seq:
            raise ValueError(f"registry is already past seq {seq}")
        self.next_seq = seq + 1
        if env.type not in IDENTITY_TYPES:
            return
        body = env.body
        at = env.time
        if env.type == "identity.revoke":
            self._end(body["key_id"], seq, at, "revoked", None)
            return
        if env.type == "identity.rotate":
            old = self.keys[body["replaces"]]
            self._end(old.key_id, seq, at, "rotated", body["key_id"])
            role, name, subject = old.role, old.name, old.subject
        else:
            role, name, subject = body["role"], body["name"], body.get("subject")
        x = body.get("x25519")
        self.keys[body["key_id"]] = KeyRecord(
            key_id=body["key_id"],
            role=role,
            name=name,
            ed25519=_b64key(body, "ed25519"),
            x25519=_b64key(body, "x25519") if x is not None else None,
            subject=subject,
            registered_seq=seq,
            valid_from=at,
        )

    def undo(self, seq: int, env: Envelope) -> None:
        """Take back ``apply`` of entry ``seq``, the last one applied: the registry is as it was before it."""
        if seq != self.next_seq - 1:
            raise ValueError(f"registry: seq {seq} is not the last entry applied ({self.next_seq - 1})")
        body = env.body
        if env.type == "identity.revoke":
            self._reopen(body["key_id"], seq)
        elif env.type in IDENTITY_TYPES:
            rec = self.keys.pop(body["key_id"])
            if rec.registered_seq != seq:
                raise ValueError(f"registry: key {rec.key_id} was not registered at seq {seq}")
            if env.type == "identity.rotate":
                self._reopen(body["replaces"], seq)
        self.next_seq = seq

    def _reopen(self, kid: str, seq: int) -> None:
        rec = self.keys[kid]
        if rec.ended_seq != seq:
            raise ValueError(f"registry: key {kid} did not end at seq {seq}")
        rec.ended_seq, rec.valid_until, rec.ended_how, rec.replaced_by = None, None, None, None

    def _end(self, kid: str, seq: int, at: datetime, how: str, by: str | None) -> None:
        rec = self.keys[kid]
        rec.ended_seq, rec.valid_until, rec.ended_how, rec.replaced_by = seq, at, how, by

    def _check_genesis(self, env: Envelope) -> None:
        if env.type != "identity.register" or env.body.get("role") != "admin":
            raise KeyError_("seq 0 must be the genesis: identity.register of an admin")
        self._validate_identity(env)
        if env.actor != env.body["key_id"]:
            raise KeyError_("the genesis entry must be signed by the admin key it registers")

    def _validate_identity(self, env: Envelope) -> None:
        body = env.body
        kid = body.get("key_id")
        if not is_key_id(kid):
            raise EnvelopeError("body.key_id is not a key id")
        assert isinstance(kid, str)
        if env.type == "identity.revoke":
            rec = self.keys.get(kid)
            if rec is None:
                raise KeyError_(f"cannot revoke {kid}: not registered")
            if rec.valid_until is not None:
                raise KeyError_(f"cannot revoke {kid}: already {rec.ended_how}")
            return
        pub = _b64key(body, "ed25519")
        if key_id(pub) != kid:
            raise EnvelopeError("body.key_id is not the key id of body.ed25519")
        if kid in self.keys:
            raise KeyError_(f"key {kid} is already registered")
        if env.type == "identity.rotate":
            old_id = body.get("replaces")
            old = self.keys.get(old_id) if isinstance(old_id, str) else None
            if old is None:
                raise KeyError_(f"cannot rotate {old_id!r}: not registered")
            if old.valid_until is not None:
                raise KeyError_(f"cannot rotate {old_id}: already {old.ended_how}")
            role = old.role
            if body.get("role", role) != role:
                raise EnvelopeError("a rotation keeps the role of the key it replaces")
        else:
            role = str(body.get("role"))
            if role not in ROLES:
                raise EnvelopeError(f"body.role {role!r} is not one of {sorted(ROLES)}")
            _text(body, "name")
        if role == "department" or ("x25519" in body and body["x25519"] is not None):
            _b64key(body, "x25519")
        if role == "citizen" and env.type == "identity.register":
            _text(body, "subject")


def replay_registry(entries: list[tuple[int, Envelope]]) -> KeyRegistry:
    """Build a registry from ``(seq, envelope)`` pairs in order, checking each (for tests and tools)."""
    reg = KeyRegistry()
    for seq, env in entries:
        reg.check(seq, env)
        reg.apply(seq, env)
    return reg


__all__ = ["IDENTITY_TYPES", "KeyRecord", "KeyRegistry", "SignatureError", "parse_ts", "replay_registry"]
