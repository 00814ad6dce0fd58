"""Who am I: the caller's identity as the ledger records it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import CallerDep
from api.routes.common import ERRORS, SIGNED_HEADERS

router = APIRouter(prefix="/v1", tags=["identities"])


class MeOut(BaseModel):
    key_id: str
    principal: str = Field(description="the first key id of this identity's rotation chain")
    role: str = Field(examples=["department"])
    name: str = Field(examples=["市民政局"])
    subject: str | None = Field(description="citizens: the pseudonymous subject id")
    valid_from: str
    has_x25519: bool


@router.get("/me", responses=ERRORS, summary="The calling identity", description=SIGNED_HEADERS)
def me(caller: CallerDep) -> MeOut:
    key = caller.key
    return MeOut(
        key_id=key.key_id,
        principal=caller.principal,
        role=key.role,
        name=key.name,
        subject=key.subject,
        valid_from=key.valid_from.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        has_x25519=key.x25519 is not None,
    )
