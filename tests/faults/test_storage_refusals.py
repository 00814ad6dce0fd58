"""A full disk and a read-only database: a clear error (HTTP problem or one CLI line), nothing half-written.

The full disk is real for the process: its RLIMIT_FSIZE is lowered to the size its files have now,
so SQLite's next write past it gets EFBIG (SIGXFSZ is ignored, as CPython does at startup) exactly as
on a full file system. The read-only database is a private PostgreSQL database switched to
``default_transaction_read_only`` with its sessions cut, as an operator fencing it would.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import SHULIAN, start_serve
from tests.faults.conftest import PROBLEM_JSON, PrivateCluster, ledger_env, ledger_size
from tests.support import audit_verify, record_entry


def _files_size(db_path: Path) -> int:
    return max(p.stat().st_size for p in db_path.parent.glob(db_path.name + "*"))


def _assert_problem(r: httpx.Response, *statuses: int) -> dict[str, object]:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == PROBLEM_JSON
    doc = r.json()
    assert doc["status"] == r.status_code and doc["title"] and doc["detail"] and "Traceback" not in r.text
    return dict(doc)


def _one_line_failure(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def _family(pid: int) -> list[int]:
    """``pid`` and every process below it (``serve``'s workers and its writer process)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _full_disk(pid: int, limit: int) -> None:
    """The disk full (``limit`` bytes a file) for ``serve`` and each of its processes, as a real one is."""
    for p in _family(pid):
        resource.prlimit(p, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def _limit_files(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_full_disk_refuses_the_append_and_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "ledger.db"
    env, [dept] = ledger_env(tmp_path, f"sqlite:///{db_path}", monkeypatch, departments=1)
    server, url = start_serve(env)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(3):
                assert client.post("/v1/entries", content=record_entry(dept, i, tag="before")).status_code == 201
            size = ledger_size(env["SHULIAN_DB"])
            full = _files_size(db_path) + 512  # the next WAL frame does not fit
            _full_disk(server.pid, full)
            leaf = record_entry(dept, 0, tag="refused")
            for _ in range(2):  # refused each time, and the service stays up
                doc = _assert_problem(client.post("/v1/entries", content=leaf), 507)
                assert "storage" in str(doc["detail"]).lower()
            assert client.get("/v1/checkpoint").status_code == 200  # reads still work
            assert ledger_size(env["SHULIAN_DB"]) == size
            _full_disk(server.pid, resource.RLIM_INFINITY)
            r = client.post("/v1/entries", content=leaf)  # space again: the same envelope is taken
            assert r.status_code == 201 and r.json()["seq"] == size, r.text
        assert audit_verify(env["SHULIAN_DB"], size + 1)
    finally:
        server.terminate()
        server.wait(10)
    # the CLI on a full disk: one line, exit 1, and the ledger as it was
    limit = _files_size(db_path) + 512
    proc = subprocess.run(
        [*SHULIAN, "demo"], env=env, capture_output=True, text=True, timeout=300, preexec_fn=lambda: _limit_files(limit)
    )
    assert "storage" in _one_line_failure(proc).lower()
    assert audit_verify(env["SHULIAN_DB"], size + 1)


@pytest.mark.pg
def test_read_only_database_refuses_appends(
    private_pg: PrivateCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"readonly_{uuid.uuid4().hex[:8]}"
    db = private_pg.create_database(name)
    env, [dept] = ledger_env(tmp_path, db, monkeypatch, departments=1)
    server, url = start_serve(env)
    fence = [
        f'ALTER DATABASE "{name}" SET default_transaction_read_only = on',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    ]
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post("/v1/entries", content=record_entry(dept, 0)).status_code == 201
            size = ledger_size(db)
            private_pg.execute(*fence)
            leaf = record_entry(dept, 1)
            for _ in range(2):
                doc = _assert_problem(client.post("/v1/entries", content=leaf), 503)
                assert "read-only" in str(doc["detail"]), doc
            assert client.get("/v1/checkpoint").status_code == 200
            proc = subprocess.run([*SHULIAN, "demo"], env=env, capture_output=True, text=True, timeout=300)
            assert "read-only" in _one_line_failure(proc)
            assert ledger_size(db) == size
            private_pg.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only', fence[1])
            r = client.post("/v1/entries", content=leaf)
            assert r.status_code == 201 and r.json()["seq"] == size, r.text
        assert audit_verify(db, size + 1)
    finally:
        server.terminate()
        server.wait(10)
