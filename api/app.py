"""The FastAPI application: routers per domain, problem responses, the node in app state."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from api import problems
from api.node import Node
from api.routes import entries, transparency


def create_app(node: Node | None = None) -> FastAPI:
    app = FastAPI(
        title="Shulian (数链)",
        version="0.1.0",
        description="A verifiable ledger of government data registration, citizens' consent and data use.",
    )
    app.state.node = node or Node()
    problems.install(app)
    app.include_router(transparency.router)
    app.include_router(entries.router)

    @app.get("/healthz", response_class=PlainTextResponse, tags=["operations"])
    def healthz() -> str:
        return "ok\n"

    return app
