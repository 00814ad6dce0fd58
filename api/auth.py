"""Signed requests (RFC 9421, Ed25519): who is calling, with which role; replays refused."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from api.deps import NodeDep
from api.httpsig import Reason, SignatureRejected, verify_request
from api.limits import RateLimits
from api.logs import annotate
from api.node import Node
from keys.registry import KeyRecord
from ledger.errors import LedgerError
from ledger.timefmt import now as utcnow


class Forbidden(LedgerError):
    status = 403
    title = "Forbidden"


class TooLarge(LedgerError):
    status = 413
    title = "Request body too large"


# How old the look-up of a key's current state may be for a request whose decision checks the key again.
DECIDED_KEY_AGE_S = 1.0

# The largest request body read (a record version with every field at its longest fits well within it).
MAX_REQUEST_BYTES = 1 << 20


@dataclass(frozen=True)
class Caller:
    """The verified signer of a request."""

    key: KeyRecord
    principal: str  # the first key id of the caller's rotation chain: who it is across rotations
    request_hash: str
    body: bytes

    @property
    def key_id(self) -> str:
        return self.key.key_id

    @property
    def role(self) -> str:
        return self.key.role

    @property
    def subject(self) -> str | None:
        return self.key.subject


def target_uri(request: Request) -> str:
    """The request's URL as the client signed it (raw path, undecoded)."""
    scope = request.scope
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    base = f"{request.url.scheme}://{request.url.netloc}"
    return base + raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def read_body(request: Request, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes (never buffered whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes is more than {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body is more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def authenticate(request: Request, node: NodeDep) -> Caller:
    """Verify the request's signature, the signer's key validity now, and that its nonce is new.

    The body is read on the event loop; the checks (database reads, the nonce write) run in the
    thread pool so that a slow database never stalls other requests.
    """
    body = await read_body(request, body_limit(request))
    url = target_uri(request)
    return await run_in_threadpool(authenticate_now, node, request, url, body)


def body_limit(request: Request) -> int:
    """The operator's limit on request bodies, as api.edge enforces it."""
    settings = getattr(request.app.state, "settings", None)
    return int(getattr(settings, "max_body_bytes", MAX_REQUEST_BYTES))


def authenticate_now(node: Node, request: Request, url: str, body: bytes, *, decided: bool = False) -> Caller:
    """``authenticate`` once the body is read, on a thread that may block (database reads, the nonce
    write); the caller's key is charged against its rate (429 past it, ``api.limits``).

    ``decided``: for a request whose decision is logged with the request's hash (an access request).
    The writer refuses a second one with that hash inside its lock (``Replayed``, nothing appended),
    which is the nonce register's check made on the ledger itself, so no nonce is written here. And
    the decision checks the key again, on the ledger's own registry at its commit, so the look-up of
    the key's current state may be up to ``DECIDED_KEY_AGE_S`` old: a key revoked within that time
    is denied by the decision, logged (``requester_key_invalid``), not refused here unlogged; no data
    is released to it either way. (Every look-up cost a database round trip on PostgreSQL: two
    replicas gave ~540-650 releases/s with one per request, ~740 without.)
    """
    caller = _authenticate(
        node, request.method, url, request.headers, body, remember_nonce=not decided,
        key_age_s=DECIDED_KEY_AGE_S if decided else 0.0,
    )  # fmt: skip
    annotate(key_id=caller.key_id)
    limits: RateLimits | None = getattr(request.app.state, "limits", None)
    if limits is not None:
        limits.charge_key(caller.key_id)
    return caller


def _authenticate(
    node: Node,
    method: str,
    url: str,
    headers: Headers,
    body: bytes,
    *,
    remember_nonce: bool = True,
    key_age_s: float = 0.0,
) -> Caller:
    view = node.view
    verified = verify_request(
        method=method,
        url=url,
        headers=headers,
        body=body,
        resolve_key=view.public_key,
        now=int(time.time()),
    )
    record, principal = view.current_key(verified.key_id, max_age_s=key_age_s)  # revoked or rotated: seen as such
    if record is None:  # pragma: no cover - resolve_key already found it
        raise SignatureRejected(Reason.UNKNOWN_KEY, f"unknown key {verified.key_id}")
    at = utcnow()
    if at < record.valid_from or (record.valid_until is not None and at >= record.valid_until):
        raise Forbidden(f"key {record.key_id} is {record.ended_how or 'not yet valid'}; sign with a current key")
    if remember_nonce:
        node.nonces.remember(verified.nonce, verified.key_id, verified.created)
    return Caller(record, principal, verified.request_hash, body)


CallerDep = Annotated[Caller, Depends(authenticate)]


def require(caller: Caller, *roles: str) -> None:
    if caller.role not in roles:
        raise Forbidden(f"a {caller.role} key may not do this (needs {' or '.join(roles)})")
