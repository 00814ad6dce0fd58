"""A witness, a log and its fork as real processes on loopback (`shulian witness serve`, `shulian serve`).

One scenario, in order: the log's checkpoints get cosignatures that verify under the spec with the
witness key alone; a fork of the same log key gets none (409, 422) and the monitor alerts; the witness
restarted keeps its state; the witness down leaves appends running and checkpoints uncosigned; the
k-of-n policy (SDK and `shulian verify`) fails closed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.client import ClientError, ShulianClient
from ledger.cosignature import AddCheckpoint, witness_vkey
from tests.api.conftest import SHULIAN, free_port, run_cli, wait_answering
from tests.support import fixed_key
from tests.witness.test_cosignature import spec_verify

ORIGIN = "test.example.gov.cn/shulian"


def env_for(tmp: Path, name: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SHULIAN_HOME=str(tmp / name / "home"),
        SHULIAN_DB=f"sqlite:///{tmp / name / 'ledger.db'}",
        SHULIAN_PASSPHRASE="test passphrase",
    )
    return env


APPEND = (
    "import sys\n"
    "from api.node import Node\n"
    "from tests.support import register\n"
    "node = Node()\n"
    "for i in range(int(sys.argv[2])): register(node, f'{sys.argv[1]}-{i}', 'citizen')\n"
)
ROOT = Path(__file__).resolve().parents[2]


def append(env: dict[str, str], count: int, label: str) -> None:
    """Append ``count`` entries to the ledger of ``env`` from another process (one block each)."""
    subprocess.run([sys.executable, "-c", APPEND, label, str(count)], env=env, cwd=ROOT, check=True, timeout=60)


def start(env: dict[str, str], *args: str, port: int, probe: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*SHULIAN, *args, "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )

    def output() -> str:  # read once the process is stopped: never blocks
        return proc.stdout.read().decode(errors="replace") if proc.stdout else ""

    wait_answering(proc, f"http://127.0.0.1:{port}{probe}", output, seconds=30, what=" ".join(args))
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def checkpoint(url: str) -> str:
    return httpx.get(url + "/v1/checkpoint", timeout=5).text


def size_of(note: str) -> int:
    return int(note.split("\n")[1])


def wait_cosigned(url: str, vkey: str, size: int | None = None, timeout: float = 10) -> str:
    name = vkey.split("+", 1)[0]
    deadline = time.monotonic() + timeout
    while True:
        note = checkpoint(url)
        if f"\u2014 {name} " in note and (size is None or size_of(note) == size):
            return note
        if time.monotonic() > deadline:
            raise AssertionError(f"no cosignature by {name} within {timeout}s: {note}")
        time.sleep(0.1)


def test_witness_log_fork_monitor_and_quorum(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    log_env, fork_env, w_env = env_for(tmp_path, "log"), env_for(tmp_path, "fork"), env_for(tmp_path, "witness")
    log_key = run_cli(log_env, "init", "--origin", ORIGIN).stdout.split("log key: ")[1].strip()
    wkey = run_cli(w_env, "witness", "init", "--name", "audit.example.gov.cn/w1").stdout.strip()
    assert run_cli(w_env, "witness", "init", "--name", "audit.example.gov.cn/w1").stdout.strip() == wkey
    w_port, log_port, fork_port = free_port(), free_port(), free_port()
    w_url, log_url, fork_url = (f"http://127.0.0.1:{p}" for p in (w_port, log_port, fork_port))
    witness_args = ("witness", "serve", "--log-key", log_key)
    procs.append(start(w_env, *witness_args, port=w_port, probe="/key"))
    run_cli(log_env, "witness", "add", wkey, w_url)
    procs.append(start(log_env, "serve", port=log_port, probe="/healthz"))

    # 1. the log's checkpoint is cosigned; the cosignature verifies with the witness key alone
    note = wait_cosigned(log_url, wkey, 2)
    spec_verify(note, wkey)
    bare_first = note.split("\u2014 audit.example.gov.cn/w1 ")[0]  # the size-2 checkpoint, log signature only
    append(log_env, 3, "s1")
    note = wait_cosigned(log_url, wkey)
    assert size_of(note) > 2
    spec_verify(note, wkey)
    cosigned_size = size_of(note)
    assert "OK:" in run_cli(log_env, "verify", "-q", "--witness", wkey, "--quorum", "1").stdout
    export = tmp_path / "log.jsonl"
    run_cli(log_env, "export", "-q", "-o", str(export))
    assert "OK:" in run_cli(log_env, "verify", "-q", "--export", str(export), "--witness", wkey).stdout

    # 2. a fork: the same log key file, another history; the witness never cosigns it
    shutil.copytree(Path(log_env["SHULIAN_HOME"]), Path(fork_env["SHULIAN_HOME"]))
    run_cli(fork_env, "init", "--origin", ORIGIN)
    append(fork_env, 6, "s2")
    run_cli(fork_env, "witness", "add", wkey, w_url)
    pushed = run_cli(fork_env, "witness", "push", check=False)
    assert pushed.returncode == 1 and "422" in pushed.stdout, pushed.stdout
    procs.append(start(fork_env, "serve", port=fork_port, probe="/healthz"))
    fork_note_text = checkpoint(fork_url)
    assert "\u2014 audit.example.gov.cn/w1 " not in fork_note_text
    assert size_of(fork_note_text) > cosigned_size
    stale = httpx.post(w_url + "/add-checkpoint", content=AddCheckpoint(0, (), fork_note_text).encode())
    assert stale.status_code == 409 and stale.headers["content-type"].startswith("text/x.tlog.size")
    assert int(stale.text) >= cosigned_size
    # the other refusals of DESIGN §6
    bad = {
        404: AddCheckpoint(0, (), fork_note_text.replace(ORIGIN, "other.example/log")).encode(),
        400: b"old 1\n",
    }
    for status, body in bad.items():
        assert httpx.post(w_url + "/add-checkpoint", content=body).status_code == status
    forged = fork_note_text.split("\n\n")[0] + "\n\n\u2014 " + ORIGIN + " " + "A" * 86 + "==\n"
    assert httpx.post(w_url + "/add-checkpoint", content=AddCheckpoint(0, (), forged).encode()).status_code == 403
    too_old = AddCheckpoint(size_of(fork_note_text) + 1, (), fork_note_text).encode()
    assert httpx.post(w_url + "/add-checkpoint", content=too_old).status_code == 400

    # 3. the monitor follows the log, then catches the fork signed by the same key
    state = tmp_path / "monitor.json"
    monitor = [*SHULIAN, "monitor", "--log-key", log_key, "--state", str(state), "--once"]
    ok = subprocess.run([*monitor, "--log", log_url], env=log_env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    alert = subprocess.run([*monitor, "--log", fork_url], env=log_env, capture_output=True, text=True, timeout=60)
    assert alert.returncode != 0
    assert alert.stderr.startswith("ALERT: FORK") and alert.stderr.count("\n") == 1, alert.stderr

    # 4. the witness restarted keeps its state (a stale old size still gets 409 with the cosigned size)
    stop(procs[0])
    procs[0] = start(w_env, *witness_args, port=w_port, probe="/key")
    again = httpx.post(w_url + "/add-checkpoint", content=AddCheckpoint(0, (), fork_note_text).encode())
    assert again.status_code == 409 and int(again.text) == int(stale.text)
    append(log_env, 2, "s3")
    spec_verify(wait_cosigned(log_url, wkey, size_of(checkpoint(log_url))), wkey)

    # 5. the k-of-n policy, in the SDK and in `shulian verify`
    w2 = witness_vkey("audit.example.gov.cn/w2", fixed_key("never-runs")).encode()
    client = ShulianClient(log_url, log_key=log_key, witnesses=[wkey], quorum=1, witness_wait=0.3)
    assert client.checkpoint().size == size_of(checkpoint(log_url))
    assert client.accept_checkpoint(bare_first).size == 2  # unwitnessed, but a proven prefix of a witnessed one
    with pytest.raises(ClientError, match="cosigned by 1/2 witnesses, need 2"):
        ShulianClient(log_url, log_key=log_key, witnesses=[wkey, w2], quorum=2, witness_wait=0.3).checkpoint()
    two = run_cli(log_env, "verify", "-q", "--witness", wkey, "--witness", w2, "--quorum", "2", check=False)
    assert two.returncode == 1 and "cosigned by 1/2 witnesses, need 2" in two.stderr

    # 6. the witness down: appends go on, checkpoints carry no cosignature, the policy fails closed
    stop(procs[0])
    started = time.monotonic()
    append(log_env, 2, "s4")
    assert time.monotonic() - started < 20
    time.sleep(0.5)  # the log's follower has tried the witness by now
    note = checkpoint(log_url)
    assert "\u2014 audit.example.gov.cn/w1 " not in note
    with pytest.raises(ClientError, match="not witnessed"):
        client.checkpoint()
    with pytest.raises(ClientError, match="not witnessed"):
        ShulianClient(log_url, log_key=log_key, witnesses=[wkey], witness_wait=0.3).checkpoint()
    down = run_cli(log_env, "verify", "-q", "--witness", wkey, check=False)
    assert down.returncode == 1 and "cosigned by 0/1" in down.stderr
    client.close()
