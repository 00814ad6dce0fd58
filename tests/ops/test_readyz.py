"""GET /healthz and /readyz: ready over a live ledger; 503 with Retry-After while the database is away."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from tests.api.conftest import cli_env, run_cli, start_serve
from tests.ops.conftest import Live
from tests.ops.proxy import Forwarder

CHECKS = {"database": "ok", "schema": "ok", "log_key": "ok", "sequencer": "ok"}


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
