"""SIGKILL of one of two `shulian serve` replicas on one PostgreSQL database during concurrent appends."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import run_cli
from tests.faults.conftest import Load, check_settled, ledger_env, ledger_size, start_replicas
from tests.support import record_entry


@pytest.mark.slow
@pytest.mark.pg
def test_killed_replica_loses_no_acknowledged_entry(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, keys = ledger_env(tmp_path, pg_url, monkeypatch, departments=3)
    (victim, victim_url), (survivor, survivor_url) = start_replicas(env, env)
    load = Load([victim_url, survivor_url], keys)
    try:
        load.start(6)
        load.wait_acks(30)
        os.kill(victim.pid, signal.SIGKILL)  # in the middle of group commits from both replicas
        assert victim.wait(10) == -signal.SIGKILL
        at_kill = len(load.acks)
        load.wait_acks(at_kill + 30)  # the survivor takes over every client
        load.stop()
        assert victim_url not in load.live(), "the killed replica was never noticed"
        assert load.statuses[201] >= 60 and not load.errors
        # each envelope whose answer the kill swallowed was re-sent to the survivor: a 201 if the
        # killed replica had not committed it, a 409 if it had; either way it is on the ledger once
        check_settled(pg_url, load)
        size = ledger_size(pg_url)
        proc = run_cli(env, "verify", "-q")
        assert proc.stdout.startswith(f"OK: {size} entries"), proc.stdout
        # the survivor keeps serving: reads and a new append
        with httpx.Client(base_url=survivor_url, timeout=30) as client:
            assert client.get("/v1/checkpoint").status_code == 200
            r = client.post("/v1/entries", content=record_entry(keys[0], 1, tag=f"after-{time.time_ns()}"))
            assert r.status_code == 201, r.text
            assert r.json()["seq"] == size
    finally:
        load.halt()
        for proc_ in (victim, survivor):
            if proc_.poll() is None:
                proc_.terminate()
                proc_.wait(10)
