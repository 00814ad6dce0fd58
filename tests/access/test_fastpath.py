"""api.fastpath: ``POST /v1/access/requests`` answered in one trip to the thread pool, as its route would.

The same requests, good and bad, go to the app as ``serve`` runs it and to the same app without the fast
path (FastAPI's route and dependencies): the statuses, problem titles and details agree, and an allow
is a release on both. Through the live server, the fast path takes one thread trip and the route's
dependency none, and the request is counted and logged under its route like any other.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import api.auth
import api.fastpath
from api import logs
from api.app import create_app
from api.fastpath import PATH, AccessFastPath
from api.node import Node
from ledger.canonical import canonical_bytes
from tests.access.signing import send_signed
from tests.access.world import CONSENT_PURPOSE, DIBAO, World

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient on httpx: deprecated, still what it runs on
    from starlette.testclient import TestClient

ALLOWED = {"dataset": DIBAO, "record": "mzj-a", "fields": ["name"], "purpose": CONSENT_PURPOSE}


def without_fast_path(node: Node) -> FastAPI:
    app = create_app(node)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not AccessFastPath]
    return app


def cases(world: World) -> list[tuple[str, Callable[[httpx.Client], httpx.Response]]]:
    gjj, rsj, citizen = world.depts["gjj"].key, world.depts["rsj"].key, world.citizens["a"].key

    def signed(key: Any, body: Any) -> Callable[[httpx.Client], httpx.Response]:
        raw = body if isinstance(body, bytes) else canonical_bytes(body)
        return lambda client: send_signed(client, key, "POST", PATH, raw)

    return [
        ("allow", signed(gjj, ALLOWED)),
        ("deny: no agreement", signed(rsj, ALLOWED)),
        ("a citizen's key", signed(citizen, ALLOWED)),
        ("not an access request", signed(gjj, {"dataset": DIBAO})),
        ("not JSON", signed(gjj, b"{")),
        ("no such record", signed(gjj, {**ALLOWED, "record": "mzj-nobody"})),
        ("unsigned", lambda client: client.post(PATH, content=canonical_bytes(ALLOWED))),
        ("too large", signed(gjj, b"x" * (2 << 20))),
    ]


def test_the_fast_path_answers_as_the_route_does(world: World, node: Node) -> None:
    world.grant("a", max_uses=None)
    with TestClient(create_app(node)) as fast, TestClient(without_fast_path(node)) as routed:
        for name, send in cases(world):
            answers = [send(fast), send(routed)]
            statuses = [a.status_code for a in answers]
            assert statuses[0] == statuses[1], (name, statuses, answers[0].text[:200], answers[1].text[:200])
            if statuses[0] == 201:
                docs = [a.json() for a in answers]
                assert [d["decision"]["outcome"] for d in docs] == ["allow", "allow"], name
                assert docs[0]["release"]["seq"] != docs[1]["release"]["seq"]  # two releases, both logged
                continue
            assert {a.headers["content-type"] for a in answers} == {"application/problem+json"}, name
            problems = [a.json() for a in answers]
            assert problems[0]["title"] == problems[1]["title"], name
            if name != "deny: no agreement":  # the logged decision's seq differs
                assert problems[0]["detail"] == problems[1]["detail"], name


class ContextHandler(logging.Handler):
    """Keeps each access line with the request's context as it stood when the line was logged."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[logging.LogRecord, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record, dict(logs.current())))


def test_one_trip_to_the_thread_pool_and_counted_under_its_route(
    world: World, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.grant("a", max_uses=None)
    trips = {"fastpath": 0, "auth": 0}

    def counting(module: str, real: Any) -> Any:
        async def run(func: Any, *args: Any, **kwargs: Any) -> Any:
            trips[module] += 1
            return await real(func, *args, **kwargs)

        return run

    monkeypatch.setattr(api.fastpath, "run_in_threadpool", counting("fastpath", api.fastpath.run_in_threadpool))
    monkeypatch.setattr(api.auth, "run_in_threadpool", counting("auth", api.auth.run_in_threadpool))
    gjj = world.depts["gjj"].key
    access_log = logging.getLogger(logs.ACCESS_LOGGER)
    handler = ContextHandler()
    access_log.addHandler(handler)
    level = access_log.level
    access_log.setLevel(logging.INFO)
    try:
        answer = send_signed(http, gjj, "POST", PATH, canonical_bytes(ALLOWED))
    finally:
        access_log.removeHandler(handler)
        access_log.setLevel(level)
    assert answer.status_code == 201, answer.text
    assert trips == {"fastpath": 1, "auth": 0}
    record, context = next((r, c) for r, c in handler.lines if getattr(r, "path", "") == PATH)
    assert getattr(record, "status", None) == 201 and context["key_id"] == gjj.key_id
    assert context["request_id"] == answer.headers["x-request-id"]
    metrics = http.get("/metrics").text
    counted = [m for m in metrics.splitlines() if m.startswith("shulian_http_requests_total{") and PATH in m]
    assert any('status="201"' in m and 'method="POST"' in m for m in counted), counted
    assert json.loads(answer.text)["release"]["appended"]["inclusion"] is not None
