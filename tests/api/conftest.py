"""A real `shulian serve` on loopback over a fresh SQLite ledger, for the HTTP tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SHULIAN = [sys.executable, "-m", "api.cli"]


@dataclass
class Server:
    url: str
    env: dict[str, str]
    home: Path
    db: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SHULIAN_HOME=str(tmp / "home"),
        SHULIAN_DB=f"sqlite:///{tmp / 'ledger.db'}",
        SHULIAN_PASSPHRASE="test passphrase",
    )
    return env


def run_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*SHULIAN, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"shulian {' '.join(args)} failed: {proc.stderr}")
    return proc


def serve_log(env: dict[str, str], port: int) -> Path:
    """Where `start_serve` writes the server's output: beside SHULIAN_HOME (a file: a pipe nobody reads fills up)."""
    base = Path(env["SHULIAN_HOME"]).parent if env.get("SHULIAN_HOME") else Path(tempfile.gettempdir())
    return base / f"serve-{port}.log"


def start_serve(env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`shulian serve` on a free loopback port; returns once /healthz answers (or raises with its output).

    The server's log lines go to ``serve_log(env, port)``.
    """
    port = free_port()
    log = serve_log(env, port)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*SHULIAN, "serve", "--port", str(port), *extra], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    # worker processes start slowly on a loaded machine
    wait_answering(proc, url + "/healthz", lambda: log.read_text(errors="replace")[-4000:], seconds=90)
    return proc, url


def wait_answering(
    proc: subprocess.Popen[bytes], url: str, output: Callable[[], str], *, seconds: float, what: str = "shulian serve"
) -> None:
    """Return once GET ``url`` answers 200; if ``proc`` exits or ``seconds`` pass, stop it and raise with
    ``output()``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise RuntimeError(f"{what} did not start: {output()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("srv")
    env = cli_env(tmp)
    run_cli(env, "init", "--origin", "test.example.gov.cn/shulian")
    run_cli(env, "demo")
    proc, url = start_serve(env)
    yield Server(url, env, Path(env["SHULIAN_HOME"]), env["SHULIAN_DB"])
    proc.terminate()
    proc.wait(10)
