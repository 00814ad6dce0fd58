"""Appending signed envelopes: the envelope's own Ed25519 signature by a registered key authenticates it."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import NodeDep
from api.problems import PROBLEM_SCHEMA
from ledger.envelope import MAX_ENTRY_BYTES
from ledger.errors import LedgerError

router = APIRouter(prefix="/v1", tags=["entries"])
ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((400, 403, 409, 413, 422, 503), PROBLEM_SCHEMA)


class TooLarge(LedgerError):
    status = 413


class AppendOut(BaseModel):
    seq: int = Field(examples=[42])
    leaf_hash: str = Field(description="base64 RFC 9162 leaf hash")
    tree_size: int = Field(description="size of the checkpoint that seals the entry")
    checkpoint: str = Field(description="the signed checkpoint note sealing the entry")
    inclusion: list[str] = Field(description="inclusion proof (base64) against that checkpoint")


@router.post(
    "/entries",
    status_code=201,
    summary="Append a signed envelope",
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "v": 1,
                        "type": "identity.register",
                        "ts": "2026-11-29T08:00:00.000000Z",
                        "actor": "0123456789abcdef0123456789abcdef",
                        "body": {},
                        "sig": "base64 Ed25519 signature",
                    },
                }
            },
        }
    },
)
async def append(request: Request, node: NodeDep) -> AppendOut:
    body = await request.body()
    if len(body) > MAX_ENTRY_BYTES:
        raise TooLarge(f"entry is {len(body)} bytes, more than {MAX_ENTRY_BYTES}")
    receipt = await run_in_threadpool(node.append, body)
    proof = await run_in_threadpool(node.reader.inclusion, receipt.leaf_hash, receipt.tree_size)
    return AppendOut(
        seq=receipt.seq,
        leaf_hash=base64.b64encode(receipt.leaf_hash).decode(),
        tree_size=receipt.tree_size,
        checkpoint=receipt.checkpoint,
        inclusion=[base64.b64encode(h).decode() for h in proof.hashes],
    )
