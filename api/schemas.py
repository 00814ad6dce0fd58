"""Response models shared by the routers (OpenAPI shows them with examples)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Proof(BaseModel):
    """An RFC 9162 inclusion proof of the entry in the tree of ``tree_size`` entries."""

    tree_size: int = Field(examples=[1024])
    hashes: list[str] = Field(description="base64 audit path", examples=[["b2s+...="]])


class EntryOut(BaseModel):
    """A ledger entry as signed, with its inclusion proof against the checkpoint given."""

    seq: int = Field(examples=[318])
    type: str = Field(examples=["consent.grant"])
    ts: str = Field(examples=["2026-11-29T08:00:00.000000Z"])
    actor: str = Field(examples=["3f1c0a5e9b2d4c6f8a1b3c5d7e9f0a2b"])
    body: dict[str, Any]
    leaf: str = Field(description="base64 of the exact leaf bytes (RFC 8785 canonical envelope)")
    leaf_hash: str = Field(description="base64 RFC 9162 leaf hash")
    proof: Proof
    checkpoint: str = Field(description="the signed checkpoint note the proof is against")


class AppendOut(BaseModel):
    seq: int = Field(examples=[42])
    leaf_hash: str = Field(description="base64 RFC 9162 leaf hash")
    tree_size: int = Field(description="size of the checkpoint that seals the entry")
    checkpoint: str = Field(description="the signed checkpoint note sealing the entry")
    inclusion: list[str] = Field(description="inclusion proof (base64) against that checkpoint")


class Page(BaseModel):
    entries: list[EntryOut]
    next_after: int | None = Field(description="pass as `after` for the next page; null at the end")


class StatusOut(BaseModel):
    """An agreement, consent or objection: its signed entry and its state now, derived from the ledger."""

    entry: EntryOut
    status: str = Field(examples=["live"], description="live | revoked | expired | not_yet_valid | exhausted | open")
    ended_by: int | None = Field(None, description="seq of the revocation or resolution, if any")
    uses: int | None = Field(None, description="consents: allow decisions resting on it")
    uses_left: int | None = Field(None, description="consents: uses left (null: unlimited)")
