"""PostgreSQL restarted under load: 503 with Retry-After and a problem body, then recovery without a restart."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.access.signing import send_signed
from tests.api.conftest import start_serve
from tests.faults.conftest import (
    Answer,
    Load,
    PrivateCluster,
    assert_problem_503,
    check_settled,
    ledger_env,
    ledger_size,
)
from tests.support import record_entry


@pytest.mark.slow
@pytest.mark.pg
def test_database_restart_gives_503_then_recovers(
    private_pg: PrivateCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = private_pg.create_database(f"restart_{uuid.uuid4().hex[:8]}")
    env, keys = ledger_env(tmp_path, db, monkeypatch)
    server, url = start_serve(env)
    down = threading.Event()
    during: list[Answer] = []

    def note(_url: str, answer: Answer) -> None:
        if down.is_set():
            during.append(answer)

    load = Load([url], keys, on_answer=note)
    try:
        load.start(4)
        load.wait_acks(20)
        private_pg.stop("fast")  # every connection of the service is cut
        down.set()
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 20
            while len(during) < 8:  # the appenders retry after each Retry-After
                assert time.monotonic() < deadline, f"only {len(during)} answers while the database was down"
                time.sleep(0.05)
            reads = [client.get(path) for path in ("/v1/checkpoint", "/v1/proof/consistency?first=1&second=2")]
            reads += [send_signed(client, keys[0], "GET", path) for path in ("/v1/me", "/v1/datasets")]
        for answer in [*during, *(Answer(r.status_code, r.headers, r.content) for r in reads)]:
            assert_problem_503(answer)
        assert load.statuses[500] == 0
        down.clear()
        private_pg.start()  # shulian is not restarted: it must reconnect by itself
        at_restart = len(load.acks)
        load.wait_acks(at_restart + 20, timeout=30)
        load.stop()
        assert server.poll() is None, "the server died"
        assert set(load.statuses) <= {201, 409, 503}, load.statuses
        check_settled(db, load)
        size = ledger_size(db)
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/v1/checkpoint").status_code == 200
            r = client.post("/v1/entries", content=record_entry(keys[0], 0, tag=f"after-{uuid.uuid4().hex}"))
            assert r.status_code == 201 and r.json()["seq"] == size, r.text
    finally:
        load.halt()
        server.terminate()
        server.wait(10)
