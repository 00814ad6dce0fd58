"""A real `shulian serve` on loopback over a fresh SQLite ledger, for the HTTP tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


def start_serve(env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """`shulian serve` on a free loopback port; returns once /healthz answers (or raises with its output)."""
    port = free_port()
    proc = subprocess.Popen(
        [*SHULIAN, "serve", "--port", str(port), *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"shulian serve did not start: {out}")
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
