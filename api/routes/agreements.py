"""Scenario sharing agreements (数据共享应用场景授权) between departments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import CallerDep, require
from api.deps import NodeDep
from api.routes.common import ERRORS, SIGNED_HEADERS, envelope_body, envelope_example
from api.schemas import AppendOut, StatusOut
from api.services import proven_entries, submit
from ledger.timefmt import now

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])

_EXAMPLE: dict[str, Any] = {
    "owner": "3f1c0a5e9b2d4c6f8a1b3c5d7e9f0a2b",
    "requester": "9a8b7c6d5e4f30211203f4e5d6c7b8a9",
    "scope": {"mzj.dibao": {"name": "masked", "monthly_allowance": "full"}},
    "purposes": ["住房保障资格审核"],
    "legal_basis": "履行职责",
    "consent_required": True,
    "valid_from": "2026-01-01T00:00:00.000000Z",
    "valid_until": "2027-01-01T00:00:00.000000Z",
    "commitment": None,
}


@router.post(
    "",
    status_code=201,
    responses=ERRORS,
    summary="Approve or revoke an agreement (owning department, signed agreement.approve / agreement.revoke)",
    description=SIGNED_HEADERS,
    openapi_extra=envelope_body(envelope_example("agreement.approve", _EXAMPLE)),
)
def post_agreement(node: NodeDep, caller: CallerDep) -> AppendOut:
    require(caller, "department")
    return submit(node, caller, caller.body, ["agreement.approve", "agreement.revoke"])


@router.get("", responses=ERRORS, summary="Agreements the caller is party to", description=SIGNED_HEADERS)
def list_agreements(node: NodeDep, caller: CallerDep) -> list[StatusOut]:
    """Departments see agreements they own or requested; auditors see all."""
    require(caller, "department", "auditor", "admin")
    at = now()
    with node.view.read() as (_, state):
        if caller.role == "department":
            chosen = [state.agreements[s] for s in state.agreements_of(caller.principal)]
        else:
            chosen = list(state.agreements.values())
        status = {a.seq: (a.status(at), a.revoked_seq) for a in chosen}
    entries = proven_entries(node, sorted(status))
    return [StatusOut(entry=e, status=status[e.seq][0], ended_by=status[e.seq][1]) for e in entries]
