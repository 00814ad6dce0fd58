"""Sharing agreements (数据共享应用场景授权): ``agreement.approve`` and ``agreement.revoke`` bodies.

An owner department authorises a requester department for a scenario: which fields of which of its
datasets (each in full or masked), for which purposes, on which legal basis, in which window, and
whether each data subject's consent is also required. Under the 告知承诺 basis (notification and
commitment) the requester's signed commitment is part of the approval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nacl.signing

from consent import validate as v
from consent.catalogue import MAX_FIELDS, dataset_id, field_name
from consent.commitment import MODES
from consent.errors import CommitmentSignatureError, InvalidBody
from keys.keyid import key_id
from ledger.canonical import canonical_bytes
from ledger.envelope import verify_ed25519
from ledger.errors import SignatureError
from ledger.timefmt import format_ts

# The legal bases of a sharing agreement and what each means.
LEGAL_BASES: dict[str, str] = {
    "法律法规": "law",  # laws and regulations require or permit the sharing
    "履行职责": "statutory_duty",  # needed to perform the requester's statutory duties
    "告知承诺": "notification_commitment",  # notification plus the requester's signed commitment
    "个人同意": "consent",  # the data subject's consent
}
COMMITMENT_BASIS = "告知承诺"
CONSENT_BASIS = "个人同意"
MAX_DATASETS = 20
MAX_PURPOSES = 20
MAX_STATEMENT = 2000
APPROVE_FIELDS = frozenset(
    {
        "owner",
        "requester",
        "scope",
        "purposes",
        "legal_basis",
        "consent_required",
        "valid_from",
        "valid_until",
        "commitment",
    }
)
REVOKE_FIELDS = frozenset({"agreement", "reason"})

Scope = dict[str, dict[str, str]]  # {dataset: {field: "full" | "masked"}}


@dataclass(frozen=True, slots=True)
class Commitment:
    """The requester's signed 告知承诺: a statement signed over the scope and purposes it covers."""

    statement: str
    signer: str
    sig: bytes

    def to_body(self) -> dict[str, str]:
        return {"statement": self.statement, "signer": self.signer, "sig": v.b64encode(self.sig)}


@dataclass(frozen=True, slots=True)
class Agreement:
    """A parsed ``agreement.approve`` body."""

    owner: str
    requester: str
    scope: Scope
    purposes: tuple[str, ...]
    legal_basis: str
    consent_required: bool
    valid_from: datetime
    valid_until: datetime
    commitment: Commitment | None

    def in_window(self, at: datetime) -> bool:
        return self.valid_from <= at < self.valid_until

    def covers(self, dataset: str, fields: Sequence[str], purpose: str) -> bool:
        """Whether the scope holds every field of ``dataset`` and the purposes hold ``purpose``."""
        granted = self.scope.get(dataset)
        return granted is not None and all(f in granted for f in fields) and purpose in self.purposes


@dataclass(frozen=True, slots=True)
class AgreementRevoke:
    """A parsed ``agreement.revoke`` body."""

    agreement: int
    reason: str


def parse_scope(value: object, where: str) -> Scope:
    if not isinstance(value, dict) or not 1 <= len(value) <= MAX_DATASETS:
        raise InvalidBody(f"{where} is not an object of 1 to {MAX_DATASETS} datasets")
    scope: Scope = {}
    for ds, fields in value.items():
        dataset_id(ds, f"{where} key")
        if not isinstance(fields, dict) or not 1 <= len(fields) <= MAX_FIELDS:
            raise InvalidBody(f"{where}[{ds}] is not an object of 1 to {MAX_FIELDS} fields")
        for name, mode in fields.items():
            field_name(name, f"{where}[{ds}] key")
            if mode not in MODES:
                raise InvalidBody(f"{where}[{ds}][{name}] is not full or masked")
        scope[ds] = dict(fields)
    return scope


def commitment_message(*, statement: str, requester: str, scope: Mapping[str, Any], purposes: Sequence[str]) -> bytes:
    """The bytes a 告知承诺 signature covers: canonical {statement, requester, scope, purposes}."""
    return canonical_bytes(
        {"statement": statement, "requester": requester, "scope": dict(scope), "purposes": list(purposes)}
    )


def sign_commitment(
    signing_key: nacl.signing.SigningKey,
    *,
    statement: str,
    scope: Mapping[str, Any],
    purposes: Sequence[str],
    requester: str | None = None,
) -> dict[str, str]:
    """The requester's signed 告知承诺, as the ``commitment`` of an ``agreement.approve`` body.

    ``requester`` is the key id the approval will name (default: the signing key's own id).
    """
    signer = key_id(bytes(signing_key.verify_key))
    message = commitment_message(statement=statement, requester=requester or signer, scope=scope, purposes=purposes)
    return Commitment(statement, signer, signing_key.sign(message).signature).to_body()


def verify_commitment(agreement: Agreement, public_key: bytes) -> None:
    """Raise ``CommitmentSignatureError`` unless the agreement's commitment verifies under ``public_key``."""
    c = agreement.commitment
    if c is None:
        raise CommitmentSignatureError("the agreement carries no commitment")
    message = commitment_message(
        statement=c.statement, requester=agreement.requester, scope=agreement.scope, purposes=agreement.purposes
    )
    try:
        verify_ed25519(public_key, message, c.sig)
    except SignatureError as exc:
        raise CommitmentSignatureError(f"commitment by {c.signer} does not verify") from exc


def _parse_commitment(value: object) -> Commitment | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"statement", "signer", "sig"}:
        raise InvalidBody("agreement.approve commitment is neither null nor {statement, signer, sig}")
    return Commitment(
        statement=v.text(value["statement"], "agreement.approve commitment.statement", max_len=MAX_STATEMENT),
        signer=v.key_id(value["signer"], "agreement.approve commitment.signer"),
        sig=v.b64(value["sig"], "agreement.approve commitment.sig", 64),
    )


def parse_agreement(body: Mapping[str, Any]) -> Agreement:
    """Validate an ``agreement.approve`` body's shape and internal rules (not the ledger state)."""
    what = "agreement.approve"
    v.fields_exactly(body, what, APPROVE_FIELDS)
    legal_basis = body["legal_basis"]
    if not isinstance(legal_basis, str) or legal_basis not in LEGAL_BASES:
        raise InvalidBody(f"{what} legal_basis is not one of {' | '.join(LEGAL_BASES)}")
    consent_required = v.boolean(body["consent_required"], f"{what} consent_required")
    if legal_basis == CONSENT_BASIS and not consent_required:
        raise InvalidBody(f"{what}: the legal basis {CONSENT_BASIS} needs consent_required true")
    commitment = _parse_commitment(body["commitment"])
    if legal_basis == COMMITMENT_BASIS and commitment is None:
        raise InvalidBody(f"{what}: the legal basis {COMMITMENT_BASIS} needs the requester's signed commitment")
    start, end = v.window(body, what)
    return Agreement(
        owner=v.key_id(body["owner"], f"{what} owner"),
        requester=v.key_id(body["requester"], f"{what} requester"),
        scope=parse_scope(body["scope"], f"{what} scope"),
        purposes=v.text_list(body["purposes"], f"{what} purposes", max_items=MAX_PURPOSES),
        legal_basis=legal_basis,
        consent_required=consent_required,
        valid_from=start,
        valid_until=end,
        commitment=commitment,
    )


def parse_agreement_revoke(body: Mapping[str, Any]) -> AgreementRevoke:
    v.fields_exactly(body, "agreement.revoke", REVOKE_FIELDS)
    return AgreementRevoke(
        agreement=v.seq(body["agreement"], "agreement.revoke agreement"),
        reason=v.text(body["reason"], "agreement.revoke reason", max_len=v.MAX_REASON),
    )


def agreement_body(
    *,
    owner: str,
    requester: str,
    scope: Mapping[str, Mapping[str, str]],
    purposes: Sequence[str],
    legal_basis: str,
    consent_required: bool,
    valid_from: datetime,
    valid_until: datetime,
    commitment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An ``agreement.approve`` body, checked by ``parse_agreement``."""
    body: dict[str, Any] = {
        "owner": owner,
        "requester": requester,
        "scope": {ds: dict(fields) for ds, fields in scope.items()},
        "purposes": list(purposes),
        "legal_basis": legal_basis,
        "consent_required": consent_required,
        "valid_from": format_ts(valid_from),
        "valid_until": format_ts(valid_until),
        "commitment": dict(commitment) if commitment is not None else None,
    }
    parse_agreement(body)
    return body


def agreement_revoke_body(agreement: int, reason: str) -> dict[str, Any]:
    body: dict[str, Any] = {"agreement": agreement, "reason": reason}
    parse_agreement_revoke(body)
    return body
