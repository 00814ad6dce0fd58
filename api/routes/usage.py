"""Who used my data (全程追溯): decisions and releases, each with its inclusion proof."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import CallerDep, Forbidden
from api.deps import NodeDep
from api.routes.common import ERRORS, SIGNED_HEADERS, page
from api.schemas import Page
from api.services import proven_entries
from api.witnesses import witnessed_entries

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get("", responses=ERRORS, summary="Decisions and releases about the caller", description=SIGNED_HEADERS)
def usage(
    node: NodeDep,
    caller: CallerDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page:
    """Citizens: every decision and release about their records. Departments: those on their requests.
    Auditors: all of them. Each entry comes with its inclusion proof against the witnessed checkpoint
    (the one most witnesses cosigned, with its cosignatures), or the latest for entries newer than it."""
    with node.view.read() as (_, state):
        if caller.role == "citizen":
            subject = caller.subject or ""
            seqs = state.decisions_of_subject(subject) + state.releases_of_subject(subject)
        elif caller.role == "department":
            seqs = state.decisions_of_requester(caller.principal) + state.releases_of_requester(caller.principal)
        elif caller.role in ("auditor", "admin"):
            seqs = list(state.decisions) + list(state.releases)
        else:
            raise Forbidden(f"a {caller.role} key has no usage to read")
    chosen, cursor = page(seqs, after, limit)
    entries = witnessed_entries(node.reader, node.store, proven_entries(node, chosen))
    return Page(entries=entries, next_after=cursor)
