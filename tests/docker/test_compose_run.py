"""docker/compose.yaml's commands run for real without Docker: each container's entrypoint, command
and health check, as the file writes them, with its volumes, secrets and service names mapped onto
this machine (a directory per volume, a file per secret, a loopback port per service, SQLite for
PostgreSQL). The start-up order of the file is followed; at the end the witness has cosigned the
checkpoint both replicas serve and the monitor has checked it."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import free_port
from tests.docker.dockerfile import read_compose, uncompose

pytestmark = pytest.mark.slow  # ~10 s on an idle machine: six processes, each opening Argon2id keystores

SERVICES: dict[str, dict[str, Any]] = read_compose()["services"]
ORDER = ["setup", "witness", "enrol", "api1", "api2", "monitor"]


class Host:
    """Where the containers' paths, names and ports land on this machine."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ports = {name: free_port() for name in ORDER}
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        shim = bin_dir / "shulian"  # the image's console script, from this checkout
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m api.cli "$@"\n')
        shim.chmod(0o755)
        bin_dir.joinpath("python").symlink_to(sys.executable)
        secrets_dir = tmp / "secrets"
        secrets_dir.mkdir()
        for secret in read_compose()["secrets"]:
            path = secrets_dir / secret
            path.write_text(secrets.token_urlsafe(32) + "\n")
            path.chmod(0o600)
        self.path = f"{bin_dir}:{os.environ['PATH']}"

    def map(self, name: str, text: str) -> str:
        """A string of service ``name`` as it reads on this machine."""
        text = uncompose(text)
        for spec in sorted(SERVICES[name].get("volumes", []), key=lambda s: -len(s.split(":")[1])):
            volume, target = spec.split(":")[:2]
            text = text.replace(target, str(self.tmp / "volumes" / volume))
        text = text.replace("/run/secrets/", f"{self.tmp}/secrets/")
        text = text.replace("postgresql+psycopg://shulian@db:5432/shulian", f"sqlite:///{self.tmp}/ledger.db")
        for other, port in self.ports.items():
            text = re.sub(rf"http://{other}:\d+", f"http://127.0.0.1:{port}", text)
        text = re.sub(r"127\.0\.0\.1:(8000|8100)\b", f"127.0.0.1:{self.ports[name]}", text)
        text = re.sub(r"--port \d+", f"--port {self.ports[name]}", text)  # in a shell script
        return text.replace("0.0.0.0", "127.0.0.1")

    def argv(self, name: str) -> list[str]:
        service = SERVICES[name]
        words = [*service.get("entrypoint", []), *service["command"]]
        out = [self.map(name, str(w)) for w in words]
        for i, word in enumerate(out[:-1]):
            if word == "--port":  # in an exec form
                out[i + 1] = str(self.ports[name])
        return out

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHULIAN_")}
        for key, value in SERVICES[name].get("environment", {}).items():
            env[key] = self.map(name, str(value))
        env["PATH"] = self.path
        return env

    def healthy(self, name: str) -> bool:
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        argv = [self.map(name, str(w)) for w in test[1:]]
        done = subprocess.run(argv, env=self.env(name), capture_output=True, timeout=20)
        return done.returncode == 0


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    for volume in read_compose()["volumes"]:
        (tmp_path / "volumes" / volume).mkdir(parents=True)
    yield Host(tmp_path)


def run_once(host: Host, name: str) -> str:
    done = subprocess.run(host.argv(name), env=host.env(name), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{name} exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def start(host: Host, name: str, procs: list[subprocess.Popen[bytes]]) -> None:
    log = (host.tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen(host.argv(name), env=host.env(name), stdout=log, stderr=subprocess.STDOUT)
    procs.append(proc)
    deadline = time.monotonic() + 60
    while not host.healthy(name):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{name} never healthy: {(host.tmp / f'{name}.log').read_text()[-2000:]}")
        time.sleep(0.3)


def test_the_compose_services_start_in_order_and_work_together(host: Host) -> None:
    assert set(ORDER) | {"db"} == set(SERVICES), "this test follows every service of the file"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        assert "initialised" in run_once(host, "setup")
        log_key = (host.tmp / "volumes" / "public" / "log.vkey").read_text().strip()
        start(host, "witness", procs)
        witness_key = (host.tmp / "volumes" / "public" / "witness.vkey").read_text().strip()
        assert "added" in run_once(host, "enrol")
        start(host, "api1", procs)
        start(host, "api2", procs)
        urls = [f"http://127.0.0.1:{host.ports[n]}" for n in ("api1", "api2")]
        assert {httpx.get(u + "/v1/log/key").text.strip() for u in urls} == {log_key}
        witness_name = witness_key.split("+", 1)[0]
        deadline = time.monotonic() + 30
        while not all(f"— {witness_name} " in httpx.get(u + "/v1/checkpoint").text for u in urls):
            assert time.monotonic() < deadline, "the witness never cosigned the replicas' checkpoint"
            time.sleep(0.3)
        start(host, "monitor", procs)
        assert not (host.tmp / "volumes" / "home" / "witness").exists(), "the witness keeps its key apart"
        for name in ("witness", "api1", "api2", "monitor"):
            assert procs[["witness", "api1", "api2", "monitor"].index(name)].poll() is None, f"{name} stopped"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
