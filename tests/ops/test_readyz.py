"""GET /healthz and /readyz: ready over a live ledger; 503 with Retry-After while the database is away."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from api.node import Node
from tests.api.conftest import cli_env, run_cli, start_serve
from tests.ops.conftest import Live
from tests.ops.proxy import Forwarder
from tests.support import register

CHECKS = {"database": "ok", "schema": "ok", "log_key": "ok", "sequencer": "ok", "state": "ok"}


def test_ready(live: Live) -> None:
    r = httpx.get(live.url + "/healthz", timeout=30)
    assert (r.status_code, r.text) == (200, "ok\n")
    r = httpx.get(live.url + "/readyz", timeout=30)
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": CHECKS}


def wait_status(url: str, status: int, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url + "/readyz", timeout=30)
        if r.status_code == status or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_readyz_follows_the_database(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL behind a forwarder: cut it and /readyz says 503 (liveness still 200); restore it and it is ready."""
    parsed = make_url(pg_url)
    forwarder = Forwarder((parsed.host or "127.0.0.1", parsed.port or 5432)).start()
    through = parsed.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False)
    env = dict(cli_env(tmp_path), SHULIAN_DB=through)
    run_cli(env, "init", "--origin", "ready.example.gov.cn/shulian")
    proc, url = start_serve(env)
    try:
        assert wait_status(url, 200).json()["checks"] == CHECKS
        forwarder.cut()
        r = wait_status(url, 503)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["retry-after"] == "5"
        doc = r.json()
        assert doc["status"] == 503 and doc["check"] == "database" and doc["request_id"] == r.headers["x-request-id"]
        assert "database does not answer" in doc["detail"]
        assert httpx.get(url + "/healthz", timeout=30).status_code == 200  # alive, only not ready
        forwarder = Forwarder(forwarder.target, forwarder.port).start()  # the database is back, same address
        assert wait_status(url, 200).status_code == 200
    finally:
        proc.terminate()
        proc.wait(20)
        forwarder.cut()


def test_not_ready_until_the_ledger_is_in_memory(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker replaying its ledger (tens of seconds at 10^6 entries) says 503, check "state", with how
    far it got, until the replay is done; then ready, without a request having waited for it."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.view import LedgerView

    register(node, "ready-dept", "department")
    size = node.reader.size()
    gate = threading.Event()
    replay = LedgerView._refresh_now

    def held(self: LedgerView) -> None:
        assert gate.wait(30)
        replay(self)

    monkeypatch.setattr(LedgerView, "_refresh_now", held)
    with TestClient(create_app(node)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        doc = r.json()
        assert doc["check"] == "state" and "replaying the ledger into memory: 0 entries so far" in doc["detail"]
        assert not node.view.warmed
        gate.set()
        r = wait_ready(client)
        assert r.json() == {"status": "ready", "checks": CHECKS}
        assert node.view.scanned == size


def wait_ready(client: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/readyz")
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)
