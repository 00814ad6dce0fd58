"""Consent grants (个人链上授权): ``consent.grant`` and ``consent.revoke`` bodies, signed by the citizen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consent import validate as v
from consent.catalogue import FIELD_NAME_RE, MAX_FIELDS, dataset_id
from consent.errors import InvalidBody
from ledger.timefmt import format_ts

MAX_DATASETS = 20
MAX_USES = 1_000_000
GRANT_FIELDS = frozenset({"subject", "grantee", "scope", "purpose", "valid_from", "valid_until", "max_uses"})
REVOKE_FIELDS = frozenset({"grant", "reason"})


@dataclass(frozen=True, slots=True)
class ConsentGrant:
    """A parsed ``consent.grant`` body: ``scope`` is ``{dataset: (field, …)}``; ``max_uses`` None is unlimited."""

    subject: str
    grantee: str
    scope: dict[str, tuple[str, ...]]
    purpose: str
    valid_from: datetime
    valid_until: datetime
    max_uses: int | None

    def in_window(self, at: datetime) -> bool:
        return self.valid_from <= at < self.valid_until

    def covers(self, dataset: str, fields: Sequence[str], purpose: str) -> bool:
        granted = self.scope.get(dataset)
        return granted is not None and purpose == self.purpose and all(f in granted for f in fields)


@dataclass(frozen=True, slots=True)
class GrantRevoke:
    """A parsed ``consent.revoke`` body."""

    grant: int
    reason: str


def parse_grant(body: Mapping[str, Any]) -> ConsentGrant:
    """Validate a ``consent.grant`` body's shape (not the ledger state)."""
    what = "consent.grant"
    v.fields_exactly(body, what, GRANT_FIELDS)
    raw_scope = body["scope"]
    if not isinstance(raw_scope, dict) or not 1 <= len(raw_scope) <= MAX_DATASETS:
        raise InvalidBody(f"{what} scope is not an object of 1 to {MAX_DATASETS} datasets")
    scope: dict[str, tuple[str, ...]] = {}
    for ds, fields in raw_scope.items():
        scope[dataset_id(ds, f"{what} scope key")] = v.text_list(
            fields, f"{what} scope[{ds}]", max_items=MAX_FIELDS, pattern=FIELD_NAME_RE
        )
    max_uses = body["max_uses"]
    start, end = v.window(body, what)
    return ConsentGrant(
        subject=v.name(body["subject"], f"{what} subject"),
        grantee=v.key_id(body["grantee"], f"{what} grantee"),
        scope=scope,
        purpose=v.name(body["purpose"], f"{what} purpose"),
        valid_from=start,
        valid_until=end,
        max_uses=None if max_uses is None else v.integer(max_uses, f"{what} max_uses", minimum=1, maximum=MAX_USES),
    )


def parse_grant_revoke(body: Mapping[str, Any]) -> GrantRevoke:
    v.fields_exactly(body, "consent.revoke", REVOKE_FIELDS)
    return GrantRevoke(
        grant=v.seq(body["grant"], "consent.revoke grant"),
        reason=v.text(body["reason"], "consent.revoke reason", max_len=v.MAX_REASON),
    )


def grant_body(
    *,
    subject: str,
    grantee: str,
    scope: Mapping[str, Sequence[str]],
    purpose: str,
    valid_from: datetime,
    valid_until: datetime,
    max_uses: int | None = None,
) -> dict[str, Any]:
    """A ``consent.grant`` body, checked by ``parse_grant``."""
    body: dict[str, Any] = {
        "subject": subject,
        "grantee": grantee,
        "scope": {ds: list(fields) for ds, fields in scope.items()},
        "purpose": purpose,
        "valid_from": format_ts(valid_from),
        "valid_until": format_ts(valid_until),
        "max_uses": max_uses,
    }
    parse_grant(body)
    return body


def grant_revoke_body(grant: int, reason: str) -> dict[str, Any]:
    body: dict[str, Any] = {"grant": grant, "reason": reason}
    parse_grant_revoke(body)
    return body
