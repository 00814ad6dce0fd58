"""The records vault (政务数据上链): record commitments on the ledger, values encrypted off it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.auth import CallerDep, Forbidden, require
from api.deps import NodeDep
from api.routes.common import ERRORS, SIGNED_HEADERS
from api.schemas import AppendOut
from api.services import b64, commit_record_version
from consent.errors import InvalidBody

router = APIRouter(prefix="/v1/records", tags=["records"])


class RecordOut(BaseModel):
    dataset: str
    record: str
    subject: str
    version: int
    seq: int = Field(description="seq of the latest record.commit")
    commitment: str
    versions: list[int] = Field(description="seqs of every commit of this record, oldest first")


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["entry", "values", "salts"],
                    "properties": {
                        "entry": {"type": "object", "description": "the signed record.commit envelope"},
                        "values": {"type": "object", "description": "field → value (string or integer)"},
                        "salts": {"type": "object", "description": "field → [raw salt, masked salt], base64"},
                    },
                },
                "example": {
                    "entry": {"v": 1, "type": "record.commit", "...": "..."},
                    "values": {"name": "张三", "monthly_allowance": 860},
                    "salts": {"name": ["base64", "base64"], "monthly_allowance": ["base64", "base64"]},
                },
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    responses=ERRORS,
    summary="Commit a record version (owning department)",
    description=SIGNED_HEADERS + " The values and salts must open the commitment in the signed entry.",
    openapi_extra=_BODY,
)
def commit(node: NodeDep, caller: CallerDep) -> AppendOut:
    require(caller, "department")
    try:
        doc: Any = json.loads(caller.body)
    except ValueError as exc:
        raise InvalidBody("body is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("entry"), dict):
        raise InvalidBody("body must be an object with entry, values and salts")
    return commit_record_version(node, caller, doc["entry"], doc.get("values"), doc.get("salts"))


@router.get("", responses=ERRORS, summary="Records visible to the caller", description=SIGNED_HEADERS)
def list_records(
    node: NodeDep,
    caller: CallerDep,
    dataset: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[RecordOut]:
    """Citizens see the records about themselves; departments those of their datasets; auditors all."""
    with node.view.read() as (_, state):
        if caller.role == "citizen":
            found = state.records_of_subject(caller.subject or "")
        elif caller.role == "department":
            owned = set(state.datasets_of_owner(caller.principal))
            found = [r for r in state.records.values() if r.dataset in owned]
        elif caller.role in ("auditor", "admin"):
            found = list(state.records.values())
        else:
            raise Forbidden(f"a {caller.role} key may not list records")
        chosen = [r for r in found if dataset is None or r.dataset == dataset][:limit]
        return [
            RecordOut(
                dataset=r.dataset,
                record=r.record,
                subject=r.subject,
                version=r.version,
                seq=r.seq,
                commitment=b64(r.commitment),
                versions=list(r.seqs),
            )
            for r in chosen
        ]
