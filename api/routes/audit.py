"""Audit reports over the API (全程追溯监管): ``audit.report`` on the ledger, for auditors and departments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from api.auth import CallerDep, Forbidden
from api.deps import NodeDep
from api.node import Node
from api.routes.common import ERRORS, SIGNED_HEADERS
from audit.report import RENDERERS, build_report, parse_when
from ledger.envelope import Envelope, parse_envelope
from ledger.errors import LedgerError

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class BadQuery(LedgerError):
    status = 400


def _entries(node: Node) -> Iterator[tuple[int, Envelope]]:
    for seq, leaf in node.store.iter_entries():
        yield seq, parse_envelope(leaf)


@router.get(
    "/report",
    responses=ERRORS,
    summary="Figures per department and period, with the anomaly rules' alerts",
    description=SIGNED_HEADERS + "\n\nAuditors and admins: every department, or one with `department`. "
    "Departments: their own. `from`/`to`: `YYYY-MM-DD` (a day in UTC+8; `to` inclusive) or ISO 8601 with offset.",
)
def report(
    node: NodeDep,
    caller: CallerDep,
    start: Annotated[str, Query(alias="from")],
    end: Annotated[str, Query(alias="to")],
    format: Literal["json", "csv", "html"] = "json",
    department: str | None = None,
) -> Response:
    if caller.role == "department":
        if department is not None and department != caller.principal and department != caller.key_id:
            raise Forbidden("a department reads its own report only")
        department = caller.principal
    elif caller.role not in ("auditor", "admin"):
        raise Forbidden(f"a {caller.role} key has no audit report")
    try:
        first, last = parse_when(start), parse_when(end, end=True)
        result = build_report(_entries(node), start=first, end=last, department=department)
    except ValueError as exc:
        raise BadQuery(str(exc)) from None
    text = RENDERERS[format](result)
    if format == "html":
        return HTMLResponse(text)
    if format == "csv":
        return PlainTextResponse(text, media_type="text/csv; charset=utf-8")
    return JSONResponse(result.as_dict())
