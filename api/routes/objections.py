"""Data objections (数据异议核实): a citizen disputes a record, the owning department resolves it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import CallerDep, Forbidden
from api.deps import NodeDep
from api.routes.common import ERRORS, SIGNED_HEADERS, envelope_body, envelope_example
from api.schemas import AppendOut, StatusOut
from api.services import proven_entries, submit
from api.witnesses import witnessed_entries

router = APIRouter(prefix="/v1/objections", tags=["objections"])

_EXAMPLE: dict[str, Any] = {
    "subject": "sub:5d1e...",
    "dataset": "mzj.dibao",
    "record": "mzj-000123",
    "fields": ["household_size"],
    "reason": "家庭人口应为3人",
}


@router.post(
    "",
    status_code=201,
    responses=ERRORS,
    summary="File (citizen) or resolve (owning department) an objection",
    description=SIGNED_HEADERS,
    openapi_extra=envelope_body(envelope_example("objection.file", _EXAMPLE)),
)
def post_objection(node: NodeDep, caller: CallerDep) -> AppendOut:
    if caller.role == "citizen":
        return submit(node, caller, caller.body, ["objection.file"])
    if caller.role == "department":
        return submit(node, caller, caller.body, ["objection.resolve"])
    raise Forbidden(f"a {caller.role} key may not file or resolve objections")


@router.get("", responses=ERRORS, summary="Objections the caller filed or must resolve", description=SIGNED_HEADERS)
def list_objections(node: NodeDep, caller: CallerDep) -> list[StatusOut]:
    with node.view.read() as (_, state):
        if caller.role == "citizen":
            seqs = state.objections_of_subject(caller.subject or "")
        elif caller.role == "department":
            seqs = state.objections_of_owner(caller.principal)
        elif caller.role in ("auditor", "admin"):
            seqs = list(state.objections)
        else:
            raise Forbidden(f"a {caller.role} key has no objections")
        rows = {s: state.objections[s] for s in seqs}
        status = {s: ("open" if o.is_open else (o.outcome or "resolved"), o.resolved_seq) for s, o in rows.items()}
    return [
        StatusOut(entry=e, status=status[e.seq][0], ended_by=status[e.seq][1])
        for e in witnessed_entries(node.reader, node.store, proven_entries(node, sorted(status)))
    ]
