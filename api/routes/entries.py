"""Appending signed envelopes: the envelope's own Ed25519 signature by a registered key authenticates it."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, CallerDep, read_body, require
from api.deps import NodeDep
from api.problems import PROBLEM_SCHEMA
from api.routes.common import ERRORS as SIGNED_ERRORS
from api.routes.common import SIGNED_HEADERS
from api.schemas import AppendOut, EntryOut, Page
from api.services import append_entry, proven_entries
from ledger.envelope import MAX_ENTRY_BYTES, Envelope, parse_envelope
from ledger.errors import NotFoundError

router = APIRouter(prefix="/v1", tags=["entries"])
ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((400, 403, 409, 413, 422, 503, 507), PROBLEM_SCHEMA)


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
    body = await read_body(request, MAX_ENTRY_BYTES)
    return await run_in_threadpool(append_entry, node, body)


def _is_party(node: NodeDep, caller: Caller, seq: int, env: Envelope) -> bool:
    """Whether the caller signed the entry, is its subject, or is a department it names."""
    if caller.role in ("auditor", "admin"):
        return True
    with node.view.read() as (registry, state):
        if state.principal_of(registry, env.actor) == caller.principal:
            return True
        body = env.body
        if caller.subject is not None:
            release = state.releases.get(seq)
            return body.get("subject") == caller.subject or (release is not None and release.subject == caller.subject)
        named = [body.get(k) for k in ("owner", "requester", "grantee")]
        if any(isinstance(k, str) and state.principal_of(registry, k) == caller.principal for k in named):
            return True
        if env.type != "record.commit":
            return False
        # a record version released to this department: it needs the commitment to check the release
        decisions = (state.decisions.get(d) for d in state.decisions_of_requester(caller.principal))
        return any(d is not None and d.entry.record_seq == seq and d.released_seq is not None for d in decisions)


@router.get(
    "/entries/{seq}", responses=SIGNED_ERRORS, summary="One entry with its inclusion proof", description=SIGNED_HEADERS
)
def get_entry(node: NodeDep, caller: CallerDep, seq: Annotated[int, Path(ge=0, le=2**62)]) -> EntryOut:
    """Auditors read any entry; others the entries they are party to (anything else is 404)."""
    found = proven_entries(node, [seq])
    if not found or not _is_party(node, caller, seq, parse_envelope(base64.b64decode(found[0].leaf))):
        raise NotFoundError(f"no entry {seq} visible to this key")
    return found[0]


@router.get("/entries", responses=SIGNED_ERRORS, summary="Entries in seq order (auditors)", description=SIGNED_HEADERS)
def list_entries(
    node: NodeDep,
    caller: CallerDep,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page:
    require(caller, "auditor", "admin")
    size = node.reader.size()
    start = 0 if after is None else after + 1
    chosen = list(range(start, min(size, start + limit)))
    return Page(
        entries=proven_entries(node, chosen), next_after=chosen[-1] if start + limit < size and chosen else None
    )
