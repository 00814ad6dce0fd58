"""api.writer: access requests decided and committed by the node's writer process, on SQLite and PostgreSQL.

A real writer process (``python -m api.writer``, as ``serve`` starts it) over the test's ledger; the live
server of these tests sends it the requests through ``Node.async_writer`` (its event loop) and the tests
call it through ``Node.writer`` (a thread's). What must hold: the answers are
those a worker would give (allows verified by the SDK, denies as 403 problems, refusals of their own
class), a worker decides by itself when the writer cannot be reached, a writer that dies during a
request yields 503 and no half-written decision, and a writer never outlives its ``serve``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import api.fastpath
import api.services
from api import writer
from api.client import ClientError
from api.node import Node
from api.nonces import Replayed
from consent.masking import mask
from tests.access.world import CONSENT_PURPOSE, DIBAO, World
from tests.support import check_ledger

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def writer_proc(
    world: World, node: Node, ledger_url: str, shulian_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[subprocess.Popen[bytes]]:
    """A writer process over the world's ledger, the live server's node sending it the access requests."""
    monkeypatch.setenv("SHULIAN_DB", ledger_url)
    monkeypatch.setenv("SHULIAN_HOME", str(shulian_home))
    proc, path = writer.start()
    node.writer = writer.WriterClient(str(path))
    node.async_writer = writer.AsyncWriterClient(str(path))  # the live server's event loop uses this one
    try:
        yield proc
    finally:
        node.writer.close()
        node.writer = None
        node.async_writer = None  # its connections are the server loop's to close (not this thread's)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        writer.stop(proc, path)


def ask(world: World, dept: str = "gjj", record: str = "mzj-a") -> object:
    return world.depts[dept].client.request(dataset=DIBAO, record=record, fields=["name"], purpose=CONSENT_PURPOSE)


def test_the_writer_process_decides_and_the_answers_are_unchanged(
    world: World, writer_proc: subprocess.Popen[bytes], ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_here(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("decided in the test's process, not in the writer process")

    monkeypatch.setattr(api.services, "decide_and_release", not_here)
    world.grant("a", max_uses=None)
    before = world.size()
    release = ask(world)  # the SDK checks both inclusion proofs and the record commitment
    assert release.values == {"name": mask("name", world.citizens["a"].name)}  # type: ignore[attr-defined]
    assert world.types_from(before) == ["access.decision", "usage.release"]
    with pytest.raises(ClientError) as denied:  # rsj holds no agreement: a logged deny, 403
        ask(world, "rsj")
    assert denied.value.status == 403 and denied.value.problem is not None
    assert denied.value.problem["reasons"]
    assert world.types_from(before) == ["access.decision", "usage.release", "access.decision"]
    check_ledger(ledger_url)


def test_the_http_worker_waits_for_the_writer_on_its_event_loop(
    world: World, writer_proc: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a writer process an access request takes no pool thread: authenticated, sent, awaited and
    answered on the event loop (a thread woken per request cost the HTTP worker a sixth of its time)."""

    def no_thread(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the request went through a pool thread")

    monkeypatch.setattr(api.fastpath, "run_in_threadpool", no_thread)
    monkeypatch.setattr(writer.WriterClient, "access", no_thread)
    world.grant("a", max_uses=None)
    before = world.size()
    release = ask(world)
    assert release.values == {"name": mask("name", world.citizens["a"].name)}  # type: ignore[attr-defined]
    with pytest.raises(ClientError) as denied:
        ask(world, "rsj")
    assert denied.value.status == 403 and denied.value.problem is not None and denied.value.problem["reasons"]
    assert world.types_from(before) == ["access.decision", "usage.release", "access.decision"]


def test_a_writer_dying_while_a_request_waits_on_the_loop_answers_503(
    world: World, writer_proc: subprocess.Popen[bytes], ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.grant("a", max_uses=None)
    ask(world)  # the writer is warm and the loop's connection idle
    before = world.size()
    os.kill(writer_proc.pid, signal.SIGSTOP)
    sent = threading.Event()
    real_encode = writer.encode_frame

    def encode_then_tell(value: object) -> bytes:
        data = real_encode(value)
        sent.set()
        return data

    monkeypatch.setattr(writer, "encode_frame", encode_then_tell)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(ask(world))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert sent.wait(30)
    time.sleep(0.2)  # written to the stopped writer's socket (the kernel holds it)
    assert thread.is_alive()  # waiting for the answer
    writer_proc.kill()
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], ClientError), outcome
    assert outcome[0].status == 503 and outcome[0].problem is not None
    assert "nothing was written" in outcome[0].problem["detail"]
    assert world.size() == before
    check_ledger(ledger_url)


def test_a_refusal_in_the_writer_keeps_its_class(
    world: World, writer_proc: subprocess.Popen[bytes], node: Node
) -> None:
    world.grant("a", max_uses=None)
    requester = world.depts["gjj"].key_id
    assert node.writer is not None
    kwargs = {"dataset": DIBAO, "record": "mzj-a", "fields": ["name"], "purpose": CONSENT_PURPOSE}
    first = node.writer.access(requester, "a" * 64, **kwargs)  # type: ignore[arg-type]
    assert first is not None and first.decision.allowed
    assert [r.inclusion() for r in first.receipts] == [
        node.reader.inclusion(r.leaf_hash, r.tree_size).hashes for r in first.receipts
    ]
    with pytest.raises(Replayed, match="already received"):
        node.writer.access(requester, "a" * 64, **kwargs)  # type: ignore[arg-type]


def test_a_worker_decides_itself_when_the_writer_is_gone(
    world: World, writer_proc: subprocess.Popen[bytes], ledger_url: str
) -> None:
    world.grant("a", max_uses=None)
    ask(world)
    writer_proc.kill()
    writer_proc.wait(10)
    before = world.size()
    release = ask(world)
    assert release.values == {"name": mask("name", world.citizens["a"].name)}  # type: ignore[attr-defined]
    assert world.types_from(before) == ["access.decision", "usage.release"]
    check_ledger(ledger_url)


def test_a_writer_dying_during_a_request_answers_503_and_writes_nothing(
    world: World, writer_proc: subprocess.Popen[bytes], node: Node, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.grant("a", max_uses=None)
    assert node.writer is not None
    client = node.writer
    ask(world)  # the writer is warm and a connection idle
    before = world.size()
    os.kill(writer_proc.pid, signal.SIGSTOP)
    outcome: list[object] = []

    requester = world.depts["gjj"].key_id
    asked = {"dataset": DIBAO, "record": "mzj-a", "fields": ["name"], "purpose": CONSENT_PURPOSE}

    sent = threading.Event()

    def write_then_tell(stream: Any, value: object) -> None:
        real_write_frame(stream, value)
        sent.set()

    def call() -> None:
        try:
            outcome.append(client.access(requester, "b" * 64, **asked))
        except Exception as exc:
            outcome.append(exc)

    real_write_frame = writer.write_frame
    monkeypatch.setattr(writer, "write_frame", write_then_tell)
    thread = threading.Thread(target=call)
    thread.start()
    assert sent.wait(30)  # the whole request is with the stopped writer (not a fixed sleep: CI may be slow)
    time.sleep(0.2)
    assert thread.is_alive()  # waiting for the answer
    writer_proc.kill()
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], writer.WriterGone), outcome
    assert outcome[0].status == 503
    assert world.size() == before
    check_ledger(ledger_url)


def test_a_writer_ends_with_its_serve(shulian_home: Path, node: Node, ledger_url: str) -> None:
    """A ``serve`` killed outright (no clean-up) takes its writer process with it."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from api import writer\n"
        "proc, path = writer.start()\n"
        "print(proc.pid, path, flush=True)\n"
        "time.sleep(120)\n"
    )
    env = dict(os.environ, SHULIAN_DB=ledger_url, SHULIAN_HOME=str(shulian_home), PYTHONPATH=str(ROOT))
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(shulian_home)], env=env, stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert parent.stdout is not None
        pid_text, path = parent.stdout.readline().decode().split()
        pid = int(pid_text)
        os.kill(pid, 0)  # running
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):  # reap it, should it have become our child
                os.waitpid(pid, os.WNOHANG)
            assert time.monotonic() < deadline, "the writer process outlived its serve"
            time.sleep(0.1)
        assert not Path(path).parent.exists()  # its socket and private directory went with it
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


def test_its_socket_is_the_service_user_s_alone(writer_proc: subprocess.Popen[bytes], node: Node) -> None:
    assert node.writer is not None
    path = Path(node.writer.path)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_ISSOCK(path.stat().st_mode)
    assert not str(path).startswith(os.environ["SHULIAN_HOME"])  # nothing of it in what a backup copies


def test_run_by_hand_without_its_socket_it_prints_its_usage() -> None:
    out = subprocess.run([sys.executable, "-m", "api.writer"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("usage: python -m api.writer SOCKET_PATH")


def stopped(pid: int, timeout: float = 30.0) -> None:
    """Wait until process ``pid`` is stopped (state T in /proc): a SIGSTOP is delivered asynchronously."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.005)


def test_requests_arriving_together_are_decided_in_one_commit_and_a_refusal_stops_no_other(
    world: World, writer_proc: subprocess.Popen[bytes], node: Node, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.grant("a", max_uses=None)
    assert node.writer is not None
    client = node.writer
    requester = world.depts["gjj"].key_id
    asked = {"dataset": DIBAO, "record": "mzj-a", "fields": ["name"], "purpose": CONSENT_PURPOSE}
    client.access(requester, "d" * 64, **asked)  # type: ignore[arg-type]
    before = world.size()
    os.kill(writer_proc.pid, signal.SIGSTOP)  # the requests queue on its socket meanwhile
    stopped(writer_proc.pid)  # before any is sent: else its loop may wake for the first and stop after
    hashes = [c * 64 for c in "0123456"] + ["d" * 64]  # the last was decided already
    outcome: dict[str, object] = {}

    def call(request_hash: str) -> None:
        try:
            outcome[request_hash] = client.access(requester, request_hash, **asked)  # type: ignore[arg-type]
        except Exception as exc:
            outcome[request_hash] = exc

    written = threading.Semaphore(0)
    real_write_frame = writer.write_frame

    def write_then_count(stream: Any, value: object) -> None:
        real_write_frame(stream, value)
        written.release()

    monkeypatch.setattr(writer, "write_frame", write_then_count)
    threads = [threading.Thread(target=call, args=(h,)) for h in hashes]
    for thread in threads:
        thread.start()
    for _ in hashes:  # every request with the stopped writer (not a fixed sleep: 0.5 s was short on a loaded CI)
        assert written.acquire(timeout=30)
    os.kill(writer_proc.pid, signal.SIGCONT)
    for thread in threads:
        thread.join(30)
    refused = outcome.pop("d" * 64)
    assert isinstance(refused, Replayed), refused
    results = list(outcome.values())
    assert len(results) == 7 and all(isinstance(r, api.services.AccessResult) for r in results), results
    sizes = {r.receipts[-1].tree_size for r in results}  # type: ignore[attr-defined]
    assert sizes == {before + 14}, sizes  # all fourteen entries sealed by one block
    seqs = sorted(seq for r in results for seq in (x.seq for x in r.receipts))  # type: ignore[attr-defined]
    assert seqs == list(range(before, before + 14))
    for r in results:
        assert [x.inclusion() for x in r.receipts] == [  # type: ignore[attr-defined]
            node.reader.inclusion(x.leaf_hash, x.tree_size).hashes
            for x in r.receipts  # type: ignore[attr-defined]
        ]
    check_ledger(ledger_url)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_gives_its_workers_both_writer_clients(
    node: Node, ledger_url: str, shulian_home: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """``serve`` with one worker (its own node) or several (nodes from the environment): each worker's node
    reaches the writer process from its threads and from its event loop (the access requests' path)."""
    import uvicorn

    from api import asgi, cli

    monkeypatch.setenv("SHULIAN_HOME", str(shulian_home))
    seen: list[tuple[object, object]] = []

    def run(app: Any, **_options: Any) -> None:
        built = asgi.app_from_env() if isinstance(app, str) else app
        worker_node = built.state.node
        seen.append((worker_node.writer, worker_node.async_writer))
        if isinstance(app, str):
            worker_node.close()

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr(cli, "start_witness_follower", lambda _db: None)  # a thread that would outlive the test
    yielded: list[str | None] = []  # each worker lowers its priority below its writer's (not this test's)
    monkeypatch.setattr(asgi, "yield_to_writer", lambda: yielded.append(os.environ.get(writer.SOCKET_VARIABLE)))
    assert cli.main(["--db", ledger_url, "serve", "--port", "1", "--workers", str(workers)]) == 0
    assert len(seen) == 1
    sync_client, async_client = seen[0]
    assert isinstance(sync_client, writer.WriterClient)
    assert isinstance(async_client, writer.AsyncWriterClient)
    assert async_client.path == sync_client.path
    assert yielded == [async_client.path]


@pytest.mark.parametrize("socket_set", [True, False])
def test_an_http_worker_yields_the_cpu_to_its_writer(socket_set: bool) -> None:
    """With a writer process the HTTP worker runs WORKER_NICENESS below it; without one, as it was
    (in a child process: the test's own priority stays)."""
    from api import asgi

    env = {k: v for k, v in os.environ.items() if k != writer.SOCKET_VARIABLE}
    if socket_set:
        env[writer.SOCKET_VARIABLE] = "/nonexistent/writer.sock"
    code = (
        "import os; from api.asgi import yield_to_writer; "
        "before = os.nice(0); yield_to_writer(); print(os.nice(0) - before)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert int(out.stdout) == (asgi.WORKER_NICENESS if socket_set else 0)


def test_a_database_failure_in_the_writer_reaches_the_worker_as_what_it_is(tmp_path: Path) -> None:
    """A pickle drops an exception's cause: the writer judges a database failure before sending it, so
    a full disk is still 507 with its Retry-After in the worker, a read-only database 503 (real SQLite
    errors, raised by the driver)."""
    import sqlite3

    from api.dbfaults import FULL, READ_ONLY
    from ledger.store import StorageError

    def failure(cause: sqlite3.Error) -> StorageError:
        try:
            raise cause
        except sqlite3.Error as exc:
            try:
                raise StorageError(f"append failed: {exc}") from exc
            except StorageError as wrapped:
                return wrapped

    path = tmp_path / "ro.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        ro.execute("INSERT INTO t VALUES (1)")
    except sqlite3.OperationalError as exc:
        read_only = failure(exc)
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]  # SQLITE_FULL, as the driver sets it
    for exc, fault in ((read_only, READ_ONLY), (failure(full), FULL)):
        sent = writer._portable(exc)
        back = pickle.loads(pickle.dumps(sent))
        assert isinstance(back, writer.Refusal)
        assert (back.status, back.title, back.retry_after, str(back)) == (
            fault.status,
            fault.title,
            fault.retry_after,
            fault.detail,
        )
    gone = writer.WriterGone("gone")
    assert writer._portable(gone) is gone


def test_a_worker_sends_its_appends_to_the_writer_process(
    world: World, writer_proc: subprocess.Popen[bytes], node: Node, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain entries and record commits (with their vault rows) go to the writer process, so a replica
    keeps one sequencer; what the writer refuses keeps its class and status in the worker."""
    import base64

    from ledger.envelope import sign_envelope
    from ledger.errors import DuplicateEntryError
    from ledger.sequencer import Sequencer
    from tests.support import register_body, stored_key

    here: list[int] = []
    monkeypatch.setattr(Sequencer, "_wait", lambda self, items: here.append(len(items)))  # nothing commits here
    admin = node.local_key("admin").signing
    leaf = sign_envelope(admin, "identity.register", register_body(stored_key("sent", "department"), "department"))
    out = api.services.append_entry(node, leaf)
    assert node.reader.size() == out.seq + 1 == out.tree_size
    proof = node.reader.inclusion(base64.b64decode(out.leaf_hash), out.tree_size).hashes
    assert out.inclusion == [base64.b64encode(h).decode() for h in proof]
    with pytest.raises(DuplicateEntryError, match=f"already on the ledger at seq {out.seq}") as again:
        api.services.append_entry(node, leaf)
    assert again.value.status == 409
    rows = world.vault_rows()
    seq = world.commit_dibao("mzj-sent", "a")  # over HTTP to the live server in this process, then the writer
    assert here == []
    assert world.vault_rows() == rows + 1 and seq == node.reader.size() - 1
    check_ledger(ledger_url)
