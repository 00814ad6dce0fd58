"""The four public transparency endpoints of DESIGN §9 (no authentication; sealed state only)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from api.deps import NodeDep
from api.problems import PROBLEM_SCHEMA
from api.witnesses import with_cosignatures
from ledger.errors import LedgerError

router = APIRouter(prefix="/v1", tags=["transparency"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: PROBLEM_SCHEMA,
    404: PROBLEM_SCHEMA,
    422: PROBLEM_SCHEMA,
    503: PROBLEM_SCHEMA,
}


class BadHash(LedgerError):
    status = 400


class InclusionOut(BaseModel):
    seq: int = Field(examples=[41])
    tree_size: int = Field(examples=[1000])
    hashes: list[str] = Field(examples=[["3q2+7w==..."]], description="RFC 9162 §2.1.3 audit path, base64")


class ConsistencyOut(BaseModel):
    first: int = Field(examples=[10])
    second: int = Field(examples=[1000])
    hashes: list[str] = Field(examples=[["3q2+7w==..."]], description="RFC 9162 §2.1.4 proof, base64")


def decode_hash(value: str) -> bytes:
    """A base64url leaf hash, padding optional; exactly 32 bytes."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadHash("hash is not base64url") from exc
    if len(raw) != 32 or base64.urlsafe_b64encode(raw).decode().rstrip("=") != value.rstrip("="):
        raise BadHash("hash is not the base64url of 32 bytes")
    return raw


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


@router.get("/log/key", response_class=PlainTextResponse, responses=ERRORS, summary="The log's note verifier key")
def log_key(node: NodeDep) -> PlainTextResponse:
    return PlainTextResponse(node.reader.vkey.encode() + "\n")


@router.get("/checkpoint", response_class=PlainTextResponse, responses=ERRORS, summary="The latest checkpoint")
def checkpoint(node: NodeDep) -> PlainTextResponse:
    size, note = node.reader.checkpoint()
    return PlainTextResponse(with_cosignatures(node.store, size, note))


@router.get("/proof/inclusion", responses=ERRORS, summary="Inclusion proof of a leaf hash")
def inclusion(
    node: NodeDep,
    hash: Annotated[str, Query(max_length=64, description="base64url SHA-256 leaf hash (RFC 9162)")],
    size: Annotated[int | None, Query(ge=1, le=2**62, description="tree size; default the latest")] = None,
) -> InclusionOut:
    proof = node.reader.inclusion(decode_hash(hash), size)
    return InclusionOut(seq=proof.seq, tree_size=proof.tree_size, hashes=_b64(proof.hashes))


@router.get("/proof/consistency", responses=ERRORS, summary="Consistency proof between two tree sizes")
def consistency(
    node: NodeDep,
    first: Annotated[int, Query(ge=1, le=2**62)],
    second: Annotated[int, Query(ge=1, le=2**62)],
) -> ConsistencyOut:
    return ConsistencyOut(first=first, second=second, hashes=_b64(node.reader.consistency(first, second)))
