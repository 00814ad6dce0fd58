"""Live `shulian serve` processes for the operations tests (request ids, logs, metrics, limits, readiness)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import cli_env, run_cli, serve_log, start_serve

PASSPHRASE = b"test passphrase"  # what cli_env sets


@dataclass
class Live:
    url: str
    env: dict[str, str]
    home: Path
    log: Path

    def log_lines(self) -> list[dict[str, Any]]:
        """The server's log so far, one JSON object a line (any other line fails the test)."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wait_for_log(self, match: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """The first log line having every item of ``match`` (logs are written as responses end)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines():
                if all(line.get(k) == v for k, v in match.items()):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line with {match}")
            time.sleep(0.05)


def serve(tmp: Path, *args: str, **settings: str) -> Iterator[Live]:
    """init, then `shulian serve ARGS` with SHULIAN_* ``settings``; stopped afterwards."""
    env = cli_env(tmp)
    env.update({f"SHULIAN_{k.upper()}": v for k, v in settings.items()})
    env.pop("SHULIAN_ENV", None)  # production defaults: JSON logs, secrets checked
    run_cli(env, "init", "--origin", "ops.example.gov.cn/shulian")
    proc, url = start_serve(env, *args)
    port = int(url.rsplit(":", 1)[1])
    try:
        yield Live(url, env, Path(env["SHULIAN_HOME"]), serve_log(env, port))
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Two worker processes (metrics across workers), verify progress served from a textfile."""
    tmp = tmp_path_factory.mktemp("ops")
    yield from serve(tmp, "--workers", "2", verify_metrics=str(tmp / "verify.prom"))
