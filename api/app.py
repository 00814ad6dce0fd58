"""The FastAPI application: one router per domain, problem responses, the node in app state."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from api import problems
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
    portal,
    records,
    transparency,
    usage,
)

DESCRIPTION = """A verifiable ledger of government data registration, citizens' consent and data use
(政务数据上链、个人链上授权、社会链上使用、全程追溯监管).

The transparency endpoints are public. Everything else needs a request signed with HTTP Message
Signatures (RFC 9421, Ed25519) by a key registered on the ledger, and answers according to its role.
Errors are RFC 9457 problem documents."""


def create_app(node: Node | None = None) -> FastAPI:
    app = FastAPI(title="Shulian (数链)", version="0.2.0", description=DESCRIPTION)
    app.state.node = node or Node()
    problems.install(app)
    for module in (
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

    @app.get("/healthz", response_class=PlainTextResponse, tags=["operations"])
    def healthz() -> str:
        return "ok\n"

    return app
