"""The authorisation decision: may this requester see these fields of this record, for this purpose, now?

Key valid → a live agreement covers (dataset, fields, purpose, now) → where it requires consent, a live
consent with uses left covers it too → allow, with the seqs that justify it. Anything else is a deny
with a stable reason code. ``decide`` is the one rule: the service asks it before answering, and
``ConsentState.check`` asks it again before an ``access.decision`` allow may be appended.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from consent import validate as v
from consent.catalogue import FIELD_NAME_RE, MAX_FIELDS, dataset_id
from consent.commitment import MODES
from consent.errors import InvalidBody
from consent.principal import key_valid_at
from consent.record import record_id
from keys.registry import KeyRegistry

if TYPE_CHECKING:
    from consent.state import AgreementState, ConsentState, GrantState

ALLOW = "allow"
DENY = "deny"
DENY_REASONS = (
    "requester_key_invalid",  # the requester's key is not a department key valid now
    "no_agreement",  # no agreement of the owner with the requester covers the dataset
    "agreement_revoked",  # every such agreement was revoked
    "agreement_expired",  # every unrevoked one has ended
    "agreement_not_yet_valid",  # none in force yet, and at least one will be
    "field_out_of_scope",  # none in force covers every field asked for
    "purpose_not_allowed",  # none in force covers the fields for this purpose
    "consent_missing",  # consent is required and the subject never granted it for this
    "consent_revoked",  # every such grant was revoked
    "consent_expired",  # every unrevoked one is outside its validity window
    "consent_uses_exhausted",  # every live one has used up its max_uses
)
DECISION_FIELDS = frozenset(
    {
        "request",
        "requester",
        "dataset",
        "record",
        "record_seq",
        "subject",
        "fields",
        "purpose",
        "outcome",
        "reasons",
        "basis",
        "modes",
    }
)
MAX_REASONS = 20


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``decide`` answers. ``basis``: [agreement seq] or [agreement seq, grant seq] for an allow."""

    outcome: str
    reasons: list[str]
    basis: list[int]
    modes: dict[str, str]
    subject: str
    record_seq: int

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOW


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    """A parsed ``access.decision`` body."""

    request: str
    requester: str
    dataset: str
    record: str
    record_seq: int
    subject: str
    fields: tuple[str, ...]
    purpose: str
    outcome: str
    reasons: tuple[str, ...]
    basis: tuple[int, ...]
    modes: dict[str, str] = field(default_factory=dict)

    def as_decision(self) -> Decision:
        return Decision(
            self.outcome, list(self.reasons), list(self.basis), dict(self.modes), self.subject, self.record_seq
        )


def request_digest(signed_request: bytes) -> str:
    """The ``request`` of a decision: lowercase hex SHA-256 of the signed request it answers."""
    return hashlib.sha256(signed_request).hexdigest()


def check_request_fields(fields: Sequence[str]) -> list[str]:
    if isinstance(fields, str) or not 1 <= len(fields) <= MAX_FIELDS:
        raise InvalidBody(f"fields is not a list of 1 to {MAX_FIELDS} field names")
    out = list(fields)
    if not all(isinstance(f, str) for f in out):
        raise InvalidBody("fields holds something that is not a field name")
    if len(set(out)) != len(out):
        raise InvalidBody("fields repeats a field")
    return out


def decide(
    state: ConsentState,
    registry: KeyRegistry,
    *,
    requester: str,
    dataset: str,
    record: str,
    fields: Sequence[str],
    purpose: str,
    at: datetime,
) -> Decision:
    """Decide a request by key ``requester`` at ``at``; pure: reads the state, changes nothing.

    An unknown dataset, record or field raises (``UnknownDataset``, ``UnknownRecord``, ``UnknownField``):
    such a request is refused before any decision is logged.
    """
    ds = state.require_dataset(dataset)
    rec = state.require_record(dataset, record)
    wanted = check_request_fields(fields)
    ds.dataset.require_fields(wanted)
    v.text(purpose, "purpose")

    def deny(reason: str) -> Decision:
        return Decision(DENY, [reason], [], {}, rec.subject, rec.seq)

    key = registry.keys.get(requester)
    if key is None or key.role != "department" or not key_valid_at(key, at):
        return deny("requester_key_invalid")
    who = state.principal_of(registry, requester)
    agreement, reason = _choose_agreement(state.agreements_for(who, dataset), dataset, wanted, purpose, at)
    if agreement is None:
        return deny(reason)
    basis = [agreement.seq]
    if agreement.agreement.consent_required:
        grant, reason = _choose_grant(state.grants_for(rec.subject, who, dataset), dataset, wanted, purpose, at)
        if grant is None:
            return deny(reason)
        basis.append(grant.seq)
    granted = agreement.agreement.scope[dataset]
    return Decision(ALLOW, [], basis, {f: granted[f] for f in wanted}, rec.subject, rec.seq)


def _choose_agreement(
    candidates: Sequence[AgreementState], dataset: str, fields: Sequence[str], purpose: str, at: datetime
) -> tuple[AgreementState | None, str]:
    """The agreement an allow rests on (one not needing consent first, then the earliest), or the reason."""
    if not candidates:
        return None, "no_agreement"
    unrevoked = [a for a in candidates if a.revoked_seq is None]
    if not unrevoked:
        return None, "agreement_revoked"
    current = [a for a in unrevoked if a.agreement.in_window(at)]
    if not current:
        pending = any(at < a.agreement.valid_from for a in unrevoked)
        return None, "agreement_not_yet_valid" if pending else "agreement_expired"
    covering = [a for a in current if all(f in a.agreement.scope[dataset] for f in fields)]
    if not covering:
        return None, "field_out_of_scope"
    fitting = [a for a in covering if purpose in a.agreement.purposes]
    if not fitting:
        return None, "purpose_not_allowed"
    return min(fitting, key=lambda a: (a.agreement.consent_required, a.seq)), ""


def _choose_grant(
    candidates: Sequence[GrantState], dataset: str, fields: Sequence[str], purpose: str, at: datetime
) -> tuple[GrantState | None, str]:
    """The earliest live grant with uses left covering the request, or the reason there is none."""
    covering = [g for g in candidates if g.grant.covers(dataset, fields, purpose)]
    if not covering:
        return None, "consent_missing"
    unrevoked = [g for g in covering if g.revoked_seq is None]
    if not unrevoked:
        return None, "consent_revoked"
    current = [g for g in unrevoked if g.grant.in_window(at)]
    if not current:
        return None, "consent_expired"
    usable = [g for g in current if g.has_uses_left]
    if not usable:
        return None, "consent_uses_exhausted"
    return min(usable, key=lambda g: g.seq), ""


def parse_decision(body: Mapping[str, Any]) -> DecisionEntry:
    """Validate an ``access.decision`` body's shape and internal rules (not the ledger state)."""
    what = "access.decision"
    v.fields_exactly(body, what, DECISION_FIELDS)
    outcome = body["outcome"]
    if outcome not in (ALLOW, DENY):
        raise InvalidBody(f"{what} outcome is not allow or deny")
    fields = v.text_list(body["fields"], f"{what} fields", max_items=MAX_FIELDS, pattern=FIELD_NAME_RE)
    reasons = v.text_list(
        body["reasons"], f"{what} reasons", min_items=0, max_items=MAX_REASONS, pattern=v.SNAKE_CODE_RE
    )
    basis = body["basis"]
    if not isinstance(basis, list) or len(basis) > 2:
        raise InvalidBody(f"{what} basis is not a list of at most 2 seqs")
    seqs = tuple(v.seq(s, f"{what} basis[{i}]") for i, s in enumerate(basis))
    modes = body["modes"]
    if not isinstance(modes, dict):
        raise InvalidBody(f"{what} modes is not an object")
    if outcome == ALLOW:
        if reasons:
            raise InvalidBody(f"{what}: an allow carries no reasons")
        if not seqs:
            raise InvalidBody(f"{what}: an allow names its basis")
        if set(modes) != set(fields) or any(m not in MODES for m in modes.values()):
            raise InvalidBody(f"{what}: an allow gives full or masked for exactly its fields")
    else:
        if not reasons:
            raise InvalidBody(f"{what}: a deny gives at least one reason")
        if modes:
            raise InvalidBody(f"{what}: a deny has no modes")
    return DecisionEntry(
        request=v.matching(body["request"], f"{what} request", v.SHA256_HEX_RE, "a hex SHA-256"),
        requester=v.key_id(body["requester"], f"{what} requester"),
        dataset=dataset_id(body["dataset"], f"{what} dataset"),
        record=record_id(body["record"], f"{what} record"),
        record_seq=v.seq(body["record_seq"], f"{what} record_seq"),
        subject=v.name(body["subject"], f"{what} subject"),
        fields=fields,
        purpose=v.name(body["purpose"], f"{what} purpose"),
        outcome=outcome,
        reasons=reasons,
        basis=seqs,
        modes=dict(modes),
    )


def decision_body(
    decision: Decision,
    *,
    request: str,
    requester: str,
    dataset: str,
    record: str,
    fields: Sequence[str],
    purpose: str,
) -> dict[str, Any]:
    """The ``access.decision`` body logging ``decision`` (as ``decide`` returned it) for a request."""
    body: dict[str, Any] = {
        "request": request,
        "requester": requester,
        "dataset": dataset,
        "record": record,
        "record_seq": decision.record_seq,
        "subject": decision.subject,
        "fields": list(fields),
        "purpose": purpose,
        "outcome": decision.outcome,
        "reasons": list(decision.reasons),
        "basis": list(decision.basis),
        "modes": dict(decision.modes),
    }
    parse_decision(body)
    return body
