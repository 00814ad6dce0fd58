"""Data objections (数据异议核实): a citizen's ``objection.file`` and the owner's ``objection.resolve``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consent import validate as v
from consent.catalogue import FIELD_NAME_RE, MAX_FIELDS, dataset_id
from consent.errors import InvalidBody
from consent.record import record_id

OUTCOMES = ("corrected", "rejected")
MAX_REASONS = 20
FILE_FIELDS = frozenset({"subject", "dataset", "record", "fields", "reason"})
RESOLVE_FIELDS = frozenset({"objection", "outcome", "reasons", "correction"})


@dataclass(frozen=True, slots=True)
class Objection:
    """A parsed ``objection.file`` body: the citizen says these fields of the record are wrong."""

    subject: str
    dataset: str
    record: str
    fields: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """A parsed ``objection.resolve`` body; ``correction`` is the seq of the corrected ``record.commit``."""

    objection: int
    outcome: str
    reasons: tuple[str, ...]
    correction: int | None


def parse_objection(body: Mapping[str, Any]) -> Objection:
    what = "objection.file"
    v.fields_exactly(body, what, FILE_FIELDS)
    return Objection(
        subject=v.name(body["subject"], f"{what} subject"),
        dataset=dataset_id(body["dataset"], f"{what} dataset"),
        record=record_id(body["record"], f"{what} record"),
        fields=v.text_list(body["fields"], f"{what} fields", max_items=MAX_FIELDS, pattern=FIELD_NAME_RE),
        reason=v.text(body["reason"], f"{what} reason", max_len=v.MAX_REASON),
    )


def parse_resolution(body: Mapping[str, Any]) -> Resolution:
    what = "objection.resolve"
    v.fields_exactly(body, what, RESOLVE_FIELDS)
    outcome = body["outcome"]
    if outcome not in OUTCOMES:
        raise InvalidBody(f"{what} outcome is not corrected or rejected")
    correction = v.optional_seq(body["correction"], f"{what} correction")
    if outcome == "corrected" and correction is None:
        raise InvalidBody(f"{what}: a corrected objection names the seq of the corrected record.commit")
    if outcome == "rejected" and correction is not None:
        raise InvalidBody(f"{what}: a rejected objection has no correction")
    return Resolution(
        objection=v.seq(body["objection"], f"{what} objection"),
        outcome=outcome,
        reasons=v.text_list(body["reasons"], f"{what} reasons", max_items=MAX_REASONS, max_len=v.MAX_REASON),
        correction=correction,
    )


def objection_body(*, subject: str, dataset: str, record: str, fields: Sequence[str], reason: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": subject,
        "dataset": dataset,
        "record": record,
        "fields": list(fields),
        "reason": reason,
    }
    parse_objection(body)
    return body


def resolution_body(
    *, objection: int, outcome: str, reasons: Sequence[str], correction: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "objection": objection,
        "outcome": outcome,
        "reasons": list(reasons),
        "correction": correction,
    }
    parse_resolution(body)
    return body
