"""Operations: liveness (/healthz), readiness (/readyz) and Prometheus metrics (/metrics)."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api import metrics
from api.deps import NodeDep
from api.node import Node
from api.problems import PROBLEM_SCHEMA, problem
from api.settings import Settings
from keys.errors import KeystoreError
from ledger.errors import LedgerError
from ledger.note import signer_vkey
from ledger.store import Store

router = APIRouter(tags=["operations"])
READY_RETRY_AFTER = 5  # seconds: what a 503 from /readyz asks a client or balancer to wait
WARM_WAIT_S = 1.0  # how long /readyz waits for the ledger's state to be in memory (a small one: at once)


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]


class NotReady(Exception):
    def __init__(self, check: str, detail: str) -> None:
        super().__init__(detail)
        self.check = check


def _database(node: Node, checks: dict[str, str]) -> dict[str, str]:
    store = node.store
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
            try:
                meta = Store.meta(conn)
            except SQLAlchemyError as exc:
                raise NotReady("schema", "the ledger's tables are missing") from exc
        if store.read_engine is not store.engine:
            with store.read_engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["read_database"] = "ok"
    except SQLAlchemyError as exc:
        raise NotReady("database", f"the database does not answer ({type(exc).__name__})") from exc
    except LedgerError as exc:
        raise NotReady("database", str(exc)) from exc
    if "origin" not in meta or "log_key" not in meta:
        raise NotReady("schema", "the ledger is not initialised (no origin or log key)")
    checks["schema"] = "ok"
    return meta


def readiness(node: Node) -> dict[str, str]:
    """Every check passed, by name; ``NotReady`` naming the first that did not."""
    checks: dict[str, str] = {}
    meta = _database(node, checks)
    try:
        log_key = node.local_key("log").signing
    except (KeystoreError, OSError) as exc:
        raise NotReady("log_key", f"the log key does not open: {exc}") from exc
    checks["log_key"] = "ok"
    # The sequencer refuses for good to sign with a key that is not the ledger's (LogKeyMismatch).
    if signer_vkey(meta["origin"], log_key).encode() != meta["log_key"]:
        raise NotReady("sequencer", "the log key under SHULIAN_HOME is not this ledger's log key")
    checks["sequencer"] = "ok"
    view = node.view
    if not view.warm(WARM_WAIT_S):
        raise NotReady("state", f"replaying the ledger into memory: {view.scanned} entries so far")
    checks["state"] = "ok"
    return checks


@router.get("/healthz", response_class=PlainTextResponse)
def healthz() -> str:
    """Liveness: the process answers (nothing else is checked)."""
    return "ok\n"


@router.get("/readyz", response_model=ReadyOut, responses={503: PROBLEM_SCHEMA})
def readyz(node: NodeDep) -> Any:
    """Readiness: the database answers, the schema is there, the log key opens and is the ledger's, and
    this worker holds the ledger's state in memory (replayed once when it starts: at 10^6 entries tens
    of seconds, during which it is not ready and a balancer sends its requests elsewhere)."""
    try:
        checks = readiness(node)
    except NotReady as exc:
        return problem(503, f"not ready: {exc}", retry_after=READY_RETRY_AFTER, check=exc.check)
    return ReadyOut(status="ready", checks=checks)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}}, 401: PROBLEM_SCHEMA},
)
def prometheus_metrics(request: Request, node: NodeDep) -> Response:
    """Prometheus text exposition; with ``SHULIAN_METRICS_TOKEN`` set, only for ``Authorization: Bearer`` it."""
    settings: Settings = request.app.state.settings
    if settings.metrics_token is not None:
        given = request.headers.get("authorization", "")
        wanted = "Bearer " + settings.metrics_token.get_secret_value()
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            response = problem(401, "GET /metrics needs the metrics bearer token")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
    extra: list[Any] = [metrics.LedgerStateCollector(node.store)]
    if settings.verify_metrics is not None:
        extra.append(metrics.TextfileCollector(settings.verify_metrics))
    return Response(metrics.render(extra), media_type=metrics.CONTENT_TYPE)
