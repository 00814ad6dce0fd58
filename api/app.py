"""The FastAPI application: one router per domain, problem responses, the node in app state."""

from __future__ import annotations

from fastapi import FastAPI

from api import problems
from api.edge import Edge
from api.fastpath import PATH, AccessFastPath
from api.limits import RateLimits
from api.node import Node
from api.routes import (
    access,
    agreements,
    audit,
    catalogue,
    consents,
    entries,
    identities,
    objections,
    operations,
    portal,
    records,
    transparency,
    usage,
)
from api.settings import Settings, load_settings

DESCRIPTION = """A verifiable ledger of government data registration, citizens' consent and data use
(政务数据上链、个人链上授权、社会链上使用、全程追溯监管).

The transparency endpoints are public. Everything else needs a request signed with HTTP Message
Signatures (RFC 9421, Ed25519) by a key registered on the ledger, and answers according to its role.
Errors are RFC 9457 problem documents."""


def create_app(node: Node | None = None, settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings(export=False)
    app = FastAPI(
        title="Shulian (数链)",
        version="0.2.0",
        description=DESCRIPTION,
        responses={413: problems.PROBLEM_SCHEMA, 429: problems.PROBLEM_SCHEMA},
    )
    app.state.node = node or Node()
    app.state.settings = settings
    app.state.limits = limits = RateLimits(
        settings.rate_key_per_s, settings.rate_key_burst, settings.rate_ip_per_s, settings.rate_ip_burst
    )
    problems.install(app)
    app.add_middleware(AccessFastPath, route=next((r for r in access.router.routes if r.path == PATH), None))  # type: ignore[attr-defined]
    app.add_middleware(Edge, limits=limits, max_body_bytes=settings.max_body_bytes)  # outside the fast path
    for module in (
        operations,
        transparency,
        entries,
        identities,
        catalogue,
        records,
        agreements,
        consents,
        access,
        usage,
        objections,
        audit,
        portal,
    ):
        app.include_router(module.router)
    return app
