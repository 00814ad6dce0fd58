"""Witness pushes from a log served by several processes: `shulian serve --workers 2`, plus a replica.

Only the serving parent process pushes (its workers do not), and when two `serve` processes share one
ledger both push: a witness that already cosigned (or cosigned newer) answers 409 and the pusher reads
the size back. With appends spread over both workers and both servers, every checkpoint ends up with
the witness's cosignature in /v1/checkpoint, verifying under the C2SP spec, and no server logs a
witness warning.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from api.client import ShulianClient
from api.witnesses import list_witnesses
from keys.keystore import load_key
from ledger.envelope import sign_envelope
from ledger.store import Store
from tests.api.conftest import free_port, run_cli, start_serve
from tests.support import register_body, stored_key
from tests.witness.test_cosignature import spec_verify
from tests.witness.test_processes import ORIGIN, env_for, size_of, start, stop, wait_cosigned


@pytest.mark.slow  # six processes (a 2-worker server among them): ~20 s on an idle 2-core machine
def test_two_workers_and_a_replica_push_safely(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    log_env, w_env = env_for(tmp_path, "log"), env_for(tmp_path, "witness")
    log_key = run_cli(log_env, "init", "--origin", ORIGIN).stdout.split("log key: ")[1].strip()
    wkey = run_cli(w_env, "witness", "init", "--name", "audit.example.gov.cn/w-workers").stdout.strip()
    w_port = free_port()
    procs.append(start(w_env, "witness", "serve", "--log-key", log_key, port=w_port, probe="/key"))
    run_cli(log_env, "witness", "add", wkey, f"http://127.0.0.1:{w_port}")
    quiet = ("--log-level", "warning", "--log-format", "text")
    main, url = start_serve(log_env, "--workers", "2", *quiet)
    procs.append(main)
    replica, replica_url = start_serve(log_env, *quiet)
    procs.append(replica)

    first = wait_cosigned(url, wkey, timeout=20)
    spec_verify(first, wkey)

    # appends through both workers of the first server and through the replica, concurrently
    admin = load_key(Path(log_env["SHULIAN_HOME"]) / "keys" / "admin.json", "admin", b"test passphrase")

    def register(i: int) -> int:
        key = stored_key(f"worker-citizen-{i}", "citizen")
        leaf = sign_envelope(admin.signing, "identity.register", register_body(key, "citizen"))
        answer = httpx.post((url, replica_url)[i % 3 == 2] + "/v1/entries", content=leaf, timeout=30)
        assert answer.status_code == 201, answer.text
        return int(answer.json()["tree_size"])

    with ThreadPoolExecutor(max_workers=6) as pool:
        sizes = list(pool.map(register, range(24)))
    latest = max(sizes)
    assert size_of(httpx.get(url + "/v1/checkpoint", timeout=10).text) == latest
    for base in (url, replica_url):
        spec_verify(wait_cosigned(base, wkey, latest, timeout=20), wkey)
    client = ShulianClient(url, log_key=log_key, witnesses=[wkey], quorum=1, witness_wait=0)
    assert client.checkpoint().size == latest
    store = Store(log_env["SHULIAN_DB"])
    try:
        assert [(w.vkey, w.last_size) for w in list_witnesses(store)] == [(wkey, latest)]
    finally:
        store.close()

    # no error storm: neither server logged a witness warning (stale pushes are answered 409 and read back)
    for proc in (main, replica):
        stop(proc)
    logs = "".join(p.stdout.read().decode() if p.stdout else "" for p in (main, replica))
    assert "witness" not in logs.lower(), logs[-2000:]
