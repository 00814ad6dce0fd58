"""Using data (社会链上使用): a department asks, the service decides, releases what is authorised."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from api.auth import Caller, CallerDep, require
from api.deps import NodeDep
from api.node import Node
from api.problems import problem
from api.routes.common import ERRORS, SIGNED_HEADERS
from api.schemas import AppendOut
from api.services import AccessAsk, AccessResult, append_outs, b64, request_access
from consent.errors import InvalidBody
from consent.release import delivered_hash

router = APIRouter(prefix="/v1/access", tags=["access"])


class AccessRequest(BaseModel):
    dataset: str = Field(max_length=80, examples=["mzj.dibao"])
    record: str = Field(max_length=120, examples=["mzj-000123"])
    fields: list[str] = Field(max_length=64, examples=[["name", "monthly_allowance"]])
    purpose: str = Field(max_length=200, examples=["住房保障资格审核"])


class DecisionOut(BaseModel):
    seq: int
    outcome: str = Field(examples=["allow"])
    reasons: list[str]
    basis: list[int] = Field(description="seqs of the agreement and, where required, the consent")
    modes: dict[str, str] = Field(description="field → full | masked")
    appended: AppendOut


class ReleaseOut(BaseModel):
    seq: int
    sealed: str = Field(description="base64 NaCl sealed box to the requester's X25519 key")
    delivered: str = Field(description="base64 SHA-256 of the sealed bytes, as logged in usage.release")
    appended: AppendOut


class AccessOut(BaseModel):
    decision: DecisionOut
    release: ReleaseOut


@router.post(
    "/requests",
    status_code=201,
    responses=ERRORS,
    summary="Request fields of a record (department)",
    description=SIGNED_HEADERS
    + " An allow answers 201 with the decision and the sealed release, both on the ledger with their proofs;"
    " a deny answers 403 with the logged decision's seq and reasons.",
)
def request(node: NodeDep, caller: CallerDep) -> Response:
    """Declared here for routing and OpenAPI; ``serve`` answers it through ``api.fastpath`` (same ``answer``)."""
    return answer(node, caller)


def answer(node: Node, caller: Caller) -> Response:
    """Decide the caller's access request and answer it: 201 with the release, or the logged deny's 403."""
    ask = ask_of(caller)
    result = request_access(
        node, ask.requester, ask.request_hash, dataset=ask.dataset, record=ask.record, fields=ask.fields,
        purpose=ask.purpose,
    )  # fmt: skip
    return respond(node, result)


def ask_of(caller: Caller) -> AccessAsk:
    """The caller's access request, once it is known to be a department's and its body one (422 if not)."""
    require(caller, "department")
    try:
        doc = AccessRequest.model_validate_json(caller.body)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidBody(f"body is not an access request: {where + ': ' if where else ''}{first['msg']}") from exc
    return AccessAsk(caller.key_id, caller.request_hash, doc.dataset, doc.record, list(doc.fields), doc.purpose)


def respond(node: Node, result: AccessResult) -> Response:
    """The answer to a decided request: 201 with the release, or the logged deny's 403."""
    d = result.decision
    decision_receipt = result.receipts[0]
    if not d.allowed:
        return problem(
            403,
            f"request denied: {', '.join(d.reasons)}",
            title="Access denied",
            decision=decision_receipt.seq,
            reasons=list(d.reasons),
        )
    release_receipt = result.receipts[1]
    assert result.sealed is not None
    decision_appended, release_appended = append_outs(node, [decision_receipt, release_receipt])
    out = AccessOut(
        decision=DecisionOut(
            seq=decision_receipt.seq,
            outcome=d.outcome,
            reasons=list(d.reasons),
            basis=list(d.basis),
            modes=dict(d.modes),
            appended=decision_appended,
        ),
        release=ReleaseOut(
            seq=release_receipt.seq,
            sealed=b64(result.sealed),
            delivered=delivered_hash(result.sealed),
            appended=release_appended,
        ),
    )
    return Response(out.model_dump_json(), status_code=201, media_type="application/json")
