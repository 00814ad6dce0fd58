"""Citizens' consent (个人链上授权): grants and revocations signed with the citizen's own key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import CallerDep, require
from api.deps import NodeDep
from api.routes.common import ERRORS, SIGNED_HEADERS, envelope_body, envelope_example
from api.schemas import AppendOut, StatusOut
from api.services import proven_entries, submit
from ledger.timefmt import now

router = APIRouter(prefix="/v1/consents", tags=["consents"])

_EXAMPLE: dict[str, Any] = {
    "subject": "sub:5d1e...",
    "grantee": "9a8b7c6d5e4f30211203f4e5d6c7b8a9",
    "scope": {"mzj.dibao": ["name", "monthly_allowance"]},
    "purpose": "住房保障资格审核",
    "valid_from": "2026-11-29T00:00:00.000000Z",
    "valid_until": "2027-05-29T00:00:00.000000Z",
    "max_uses": 3,
}


@router.post(
    "",
    status_code=201,
    responses=ERRORS,
    summary="Grant or revoke consent (citizen, signed consent.grant / consent.revoke)",
    description=SIGNED_HEADERS,
    openapi_extra=envelope_body(envelope_example("consent.grant", _EXAMPLE)),
)
def post_consent(node: NodeDep, caller: CallerDep) -> AppendOut:
    require(caller, "citizen")
    return submit(node, caller, caller.body, ["consent.grant", "consent.revoke"])


@router.get("", responses=ERRORS, summary="Consents the caller gave or received", description=SIGNED_HEADERS)
def list_consents(node: NodeDep, caller: CallerDep) -> list[StatusOut]:
    """Citizens see their own grants; departments the grants made to them; auditors all."""
    require(caller, "citizen", "department", "auditor", "admin")
    at = now()
    with node.view.read() as (_, state):
        if caller.role == "citizen":
            seqs = state.grants_of_subject(caller.subject or "")
        elif caller.role == "department":
            seqs = state.grants_of_grantee(caller.principal)
        else:
            seqs = list(state.grants)
        info = {s: state.grants[s] for s in seqs}
        rows = {s: (g.status(at), g.revoked_seq, g.uses, g.uses_left) for s, g in info.items()}
    entries = proven_entries(node, sorted(rows))
    return [
        StatusOut(
            entry=e, status=rows[e.seq][0], ended_by=rows[e.seq][1], uses=rows[e.seq][2], uses_left=rows[e.seq][3]
        )
        for e in entries
    ]
