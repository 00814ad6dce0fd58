"""Releases per second: signed access requests from a separate load process against `shulian serve`.

The world: one owning department with a personal dataset, records about ``CITIZENS`` citizens, requester
departments holding agreements that need consent, and every citizen's unlimited consent to each
requester. The server runs with two worker processes over one SQLite ledger. The load process (its
own interpreter) signs each request (RFC 9421) when it sends it; every request must end in an allow,
its sealed release and both entries sealed in a block. Latency is per request, send to answer.
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

CITIZENS = 200
REQUESTERS = 4
DATASET = "mzj.dibao"
FIELDS = ["name", "monthly_allowance", "household_size"]
PURPOSE = "住房保障资格审核"
WARMUP_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_world(home: Path, db: str) -> dict[str, Any]:
    """Seed the world through the real routes (in-process), return what the load process needs."""
    from starlette.testclient import TestClient

    from api.app import create_app
    from api.client import ShulianClient
    from api.node import Node, identity_body
    from api.world import DATASETS
    from keys.keystore import StoredKey, save_keystore
    from ledger.envelope import sign_envelope
    from ledger.timefmt import format_ts, now

    node = Node(db, home)
    node.init("bench.example.gov.cn/shulian")
    admin = node.local_key("admin").signing
    owner = StoredKey.generate("owner", x25519=True, role="department")
    requesters = [StoredKey.generate(f"req-{i}", x25519=True, role="department") for i in range(REQUESTERS)]
    citizens = [StoredKey.generate(f"cit-{i}", x25519=True, role="citizen") for i in range(CITIZENS)]
    subjects = [f"sub:{i:064x}" for i in range(CITIZENS)]
    leaves = [sign_envelope(admin, "identity.register", identity_body(owner, "department", "市民政局"))]
    leaves += [
        sign_envelope(admin, "identity.register", identity_body(k, "department", f"需求部门{i}"))
        for i, k in enumerate(requesters)
    ]
    leaves += [
        sign_envelope(admin, "identity.register", identity_body(k, "citizen", f"市民{i}", subject=subjects[i]))
        for i, k in enumerate(citizens)
    ]
    for result in node.sequencer.append_many(leaves):
        if isinstance(result, Exception):
            raise result
    http = TestClient(create_app(node))
    as_owner = ShulianClient("http://testserver", owner, http=http)
    spec = next(d for d in DATASETS if d.dataset == DATASET)
    as_owner.register_dataset(spec.body(owner.key_id))
    t0 = now()
    window = {"valid_from": format_ts(t0 - timedelta(days=1)), "valid_until": format_ts(t0 + timedelta(days=30))}
    for i, subject in enumerate(subjects):
        values = {
            "name": f"测试{i:04d}",
            "id_number": "330106199001011234",
            "household_size": 1 + i % 5,
            "monthly_allowance": 600 + i,
            "approved_on": "2025-01-01",
            "address": "浙江省杭州市西湖区文三路100号",
            "phone": "13800000000",
        }
        as_owner.commit_record(dataset=DATASET, record=f"rec-{i}", subject=subject, values=values)
    for k in requesters:
        as_owner.approve_agreement(
            {
                "owner": owner.key_id,
                "requester": k.key_id,
                "scope": {DATASET: {"name": "masked", "monthly_allowance": "full", "household_size": "full"}},
                "purposes": [PURPOSE],
                "legal_basis": "履行职责",
                "consent_required": True,
                "commitment": None,
                **window,
            }
        )
    for i, c in enumerate(citizens):
        as_citizen = ShulianClient("http://testserver", c, http=http)
        for k in requesters:
            as_citizen.grant_consent(
                {
                    "subject": subjects[i],
                    "grantee": k.key_id,
                    "scope": {DATASET: FIELDS},
                    "purpose": PURPOSE,
                    "max_uses": None,
                    **window,
                }
            )
    node.close()
    keystore = home / "requesters.json"
    save_keystore(keystore, requesters)
    return {"keystore": str(keystore), "records": CITIZENS}


def run_load(url: str, keystore: str, records: int, threads: int, seconds: float, out: Path) -> None:
    """The load process: ``threads`` threads, each a requester key, sending signed requests for ``seconds``."""
    from api.httpsig import sign_request
    from keys.keystore import load_keystore

    keys = load_keystore(Path(keystore))
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    measure_from = time.perf_counter() + WARMUP_S  # workers open their keys and state first
    stop = measure_from + seconds

    def work(t: int) -> None:
        key = keys[t % len(keys)]
        rng = random.Random(t)
        mine: list[float] = []
        with httpx.Client(timeout=60) as http:
            while time.perf_counter() < stop:
                body = json.dumps(
                    {
                        "dataset": DATASET,
                        "record": f"rec-{rng.randrange(records)}",
                        "fields": FIELDS,
                        "purpose": PURPOSE,
                    }
                ).encode()
                target = url + "/v1/access/requests"
                headers = {"content-type": "application/json"}
                headers.update(
                    sign_request(
                        method="POST", url=target, headers=headers, body=body, key=key.signing, key_id=key.key_id
                    )
                )
                t0 = time.perf_counter()
                r = http.post(target, content=body, headers=headers)
                dt = time.perf_counter() - t0
                if r.status_code == 201 and r.json()["release"]["seq"]:
                    if t0 >= measure_from:
                        mine.append(dt)
                else:
                    with lock:
                        errors.append(f"{r.status_code} {r.text[:200]}")
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - measure_from
    out.write_text(
        json.dumps({"latencies": latencies, "errors": errors[:20], "error_count": len(errors), "wall": wall})
    )


def release_figures(home: Path, threads: int = 16, seconds: float = 20.0, workers: int = 2) -> dict[str, Any]:
    """Seed, serve with ``workers`` processes, load from a separate process; figures and checks."""
    db = f"sqlite:///{home / 'ledger.db'}"
    world = build_world(home, db)
    port = _free_port()
    env = dict(os.environ, SHULIAN_HOME=str(home), SHULIAN_DB=db)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        out = home / "load.json"
        load = subprocess.run(
            [sys.executable, "-m", "bench.release", url, world["keystore"], str(world["records"]), str(threads),
             str(seconds), str(out)],
            env=env,
            check=True,
        )  # fmt: skip
        assert load.returncode == 0
        result = json.loads(out.read_text())
    finally:
        server.terminate()
        server.wait(30)
    lat = sorted(result["latencies"])
    n = len(lat)
    from api.node import Node
    from ledger.store import Store

    node = Node(db, home)
    with node.store.reader() as conn:
        releases = len(Store.entries_of_types(conn, ["usage.release"], 0))
    node.close()
    return {
        "per_s": round(n / result["wall"], 1) if n else None,
        "p50_ms": round(statistics.median(lat) * 1000, 2) if n else None,
        "p99_ms": round(lat[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None,
        "requests": n,
        "errors": result["error_count"],
        "error_samples": result["errors"][:3],
        "releases_on_ledger": releases,
        "all_released": releases >= n and result["error_count"] == 0,
        "seconds": round(result["wall"], 2),
        "server_workers": workers,
        "load_threads": threads,
        "engine": "sqlite",
    }


if __name__ == "__main__":
    run_load(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), Path(sys.argv[6]))
