"""Pieces every domain router shares: error responses, the signed-envelope request body, paging."""

from __future__ import annotations

from typing import Any

from api.problems import PROBLEM_SCHEMA

# 507: the database is out of space (api/dbfaults.py)
ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((400, 401, 403, 404, 409, 413, 422, 503, 507), PROBLEM_SCHEMA)

SIGNED_HEADERS = (
    "Requests are signed with HTTP Message Signatures (RFC 9421, Ed25519): `Signature-Input` covering "
    '`"@method" "@target-uri" "content-digest"` with `created`, `nonce`, `keyid` (the Shulian key id), '
    '`alg="ed25519"` and `tag="shulian"`; `Signature`; and `Content-Digest` (RFC 9530, sha-256).'
)


def envelope_body(example: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI request body of a route that takes one signed envelope (its canonical bytes)."""
    return {
        "requestBody": {
            "required": True,
            "description": "the signed envelope, as its exact RFC 8785 canonical bytes",
            "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
        }
    }


def envelope_example(entry_type: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "v": 1,
        "type": entry_type,
        "ts": "2026-11-29T08:00:00.000000Z",
        "actor": "3f1c0a5e9b2d4c6f8a1b3c5d7e9f0a2b",
        "body": body,
        "sig": "base64 Ed25519 signature over the canonical envelope without sig",
    }


def page(seqs: list[int], after: int | None, limit: int) -> tuple[list[int], int | None]:
    """Seqs after ``after`` (ascending), at most ``limit``, and the cursor for the next page."""
    chosen = sorted(s for s in seqs if after is None or s > after)
    more = len(chosen) > limit
    chosen = chosen[:limit]
    return chosen, (chosen[-1] if more and chosen else None)
