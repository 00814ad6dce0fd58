"""Fault tests with real processes: `shulian serve` replicas on loopback, client threads, a private PostgreSQL.

``private_pg`` is a throwaway PostgreSQL cluster of this test session (initdb + pg_ctl in a temp dir,
on a free port, run as the ``postgres`` OS user when the tests run as root), so a test may stop,
restart or reconfigure it without touching the shared server that other tests use. ``Load`` drives
replicas with signed envelopes (``POST /v1/entries``) from several threads and records every answer.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

import keys.keystore
from api.node import Node
from keys.keystore import StoredKey
from ledger.store import Store
from ledger.tree import leaf_hash
from tests.api.conftest import cli_env, free_port, start_serve
from tests.conftest import FAST_ARGON2
from tests.support import record_entry, register

PROBLEM_JSON = "application/problem+json"


# -- a private PostgreSQL cluster ----------------------------------------------------------------


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster in ``root`` listening on 127.0.0.1:``port`` (trust auth, user postgres)."""

    bindir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if proc.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:] if argv[0] == "pg_ctl" else ""
            raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()} {log}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def execute(self, *statements: str, database: str = "postgres") -> None:
        engine = create_engine(self.url(database), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()

    def create_database(self, name: str) -> str:
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivateCluster]:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) for a private cluster")
    root = Path(tempfile.mkdtemp(prefix="shulian-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PrivateCluster(bindir, root, free_port())
    try:
        cluster._run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):  # never started, or stopped
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


# -- an initialised ledger and its departments --------------------------------------------------


def ledger_env(
    tmp: Path, db: str, monkeypatch: pytest.MonkeyPatch, *, departments: int = 2
) -> tuple[dict[str, str], list[StoredKey]]:
    """The environment of `shulian` commands on an initialised ledger at ``db`` (keys under ``tmp``),
    and ``departments`` department keys registered on it by its admin.

    Initialised in this process, with keystores written under cheap Argon2id parameters (stored in
    each file, so the servers open them as any other) to keep server start-up short."""
    env = cli_env(tmp)
    env["SHULIAN_DB"] = db
    monkeypatch.setenv("SHULIAN_PASSPHRASE", env["SHULIAN_PASSPHRASE"])
    monkeypatch.setattr(keys.keystore, "ARGON2", dict(FAST_ARGON2))
    node = Node(db, Path(env["SHULIAN_HOME"]))
    try:
        node.init(origin="faults.shulian.example/log")
        stamp = time.time_ns()
        return env, [register(node, f"faults-dept-{i}-{stamp}", "department") for i in range(departments)]
    finally:
        node.close()


def start_replicas(*envs: dict[str, str]) -> list[tuple[subprocess.Popen[bytes], str]]:
    """`shulian serve` once per environment, started side by side (each start takes seconds)."""
    with ThreadPoolExecutor(len(envs)) as pool:
        return list(pool.map(start_serve, envs))


# -- load ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes


@dataclass
class Load:
    """Threads appending signed envelopes to ``urls`` until stopped.

    Each thread signs a fresh envelope, posts it to its next replica and keeps re-sending that same
    envelope (to the next live replica, after ``Retry-After`` on a 503) until it is acknowledged
    (201) or refused as already on the ledger (409: an earlier attempt committed but its answer was
    lost). A replica that stops answering (connection refused or reset) is dropped.
    """

    urls: list[str]
    keys: list[StoredKey]
    retry_pause: float = 0.2
    acks: dict[int, str] = field(default_factory=dict)  # seq -> leaf hash hex, from 201 answers
    settled: dict[str, int | None] = field(default_factory=dict)  # leaf hash hex -> seq (None: 409)
    answers: list[Answer] = field(default_factory=list)  # every answer other than 201
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    on_answer: Callable[[str, Answer], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _dead: set[str] = field(default_factory=set)

    def start(self, threads: int) -> None:
        for t in range(threads):
            worker = threading.Thread(target=self._work, args=(t,), daemon=True)
            self._threads.append(worker)
            worker.start()

    def halt(self) -> None:
        """Stop the threads without waiting (for cleanup after a failure)."""
        self._stop.set()

    def stop(self, timeout: float = 60) -> None:
        self._stop.set()
        for worker in self._threads:
            worker.join(timeout)
            assert not worker.is_alive(), "a client thread is stuck"
        assert not self.errors, self.errors[:3]

    def wait_acks(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acks) < count:
            assert not self.errors, self.errors[:3]
            assert time.monotonic() < deadline, f"only {len(self.acks)} of {count} appends acknowledged in {timeout} s"
            time.sleep(0.02)

    def live(self) -> list[str]:
        return [u for u in self.urls if u not in self._dead]

    def _work(self, t: int) -> None:
        key = self.keys[t % len(self.keys)]
        turn = t
        with httpx.Client(timeout=30) as client:
            for i in range(1_000_000):
                if self._stop.is_set():
                    return
                leaf = record_entry(key, i, tag=f"load-{t}")
                digest = leaf_hash(leaf).hex()
                while True:  # one envelope until it is settled
                    live = self.live()
                    if not live:
                        self.errors.append("no replica answers")
                        return
                    url = live[turn % len(live)]
                    turn += 1
                    try:
                        r = client.post(url + "/v1/entries", content=leaf, headers={"content-type": "application/json"})
                    except httpx.TransportError:
                        with self._lock:
                            self._dead.add(url)
                        continue
                    answer = Answer(r.status_code, r.headers, r.content)
                    with self._lock:
                        self.statuses[r.status_code] += 1
                        if r.status_code != 201:
                            self.answers.append(answer)
                    if self.on_answer is not None:
                        self.on_answer(url, answer)
                    if r.status_code == 201:
                        seq = int(r.json()["seq"])
                        with self._lock:
                            if seq in self.acks:
                                self.errors.append(f"seq {seq} acknowledged twice")
                            self.acks[seq] = digest
                            self.settled[digest] = seq
                        break
                    if r.status_code == 409:
                        with self._lock:
                            self.settled[digest] = None
                        break
                    if r.status_code != 503:
                        self.errors.append(f"{url}: {r.status_code} {r.text[:300]}")
                        return
                    if self._stop.is_set():
                        break  # unsettled: left out of the checks
                    time.sleep(min(float(r.headers.get("retry-after", "1")), self.retry_pause))


def assert_problem_503(answer: Answer) -> None:
    """A 503 answered as an RFC 9457 problem with Retry-After: never a 500, never a traceback."""
    assert answer.status == 503, (answer.status, answer.body[:300])
    assert answer.headers.get("content-type") == PROBLEM_JSON, answer.headers.get("content-type")
    assert int(answer.headers["retry-after"]) >= 1
    text_ = answer.body.decode()
    assert "Traceback" not in text_ and 'File "' not in text_
    doc = json.loads(text_)
    assert doc["status"] == 503 and doc["title"] and doc["detail"], doc


def check_settled(db: str, load: Load) -> None:
    """Every acknowledged entry at its seq (the whole ledger checked, and by the audit verifier), and
    every settled envelope on the ledger exactly once (a duplicate leaf fails the ledger check)."""
    from tests.storage.test_processes import verify_everything

    verify_everything(db, load.acks)
    store = Store(db)
    try:
        with store.reader() as conn:
            found = Store.seqs_of_hashes(conn, [bytes.fromhex(d) for d in load.settled])
    finally:
        store.close()
    for digest, seq in load.settled.items():
        where = found.get(bytes.fromhex(digest))
        assert where is not None, f"envelope {digest[:16]}… was settled ({seq}) but is not on the ledger"
        assert seq is None or where == seq, f"envelope {digest[:16]}… acknowledged at seq {seq}, stored at {where}"


def ledger_size(db: str) -> int:
    store = Store(db)
    try:
        with store.reader() as conn:
            return Store.entry_count(conn)
    finally:
        store.close()
