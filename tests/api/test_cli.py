"""The `shulian` CLI as a user runs it: real processes, one readable line on every error."""

from __future__ import annotations

import json
from pathlib import Path

from tests.api.conftest import cli_env, run_cli


def test_init_demo_simulate_export_verify(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    first = run_cli(env, "init", "--origin", "cli.example.gov.cn/shulian")
    assert "initialised" in first.stdout
    db = tmp_path / "ledger.db"
    again = run_cli(env, "init")
    assert "nothing changed" in again.stdout
    wrong = run_cli(env, "init", "--origin", "other.example/x", check=False)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert "Traceback" not in wrong.stderr

    assert "seeded" in run_cli(env, "demo").stdout
    size_after_demo = db.stat().st_size
    assert "nothing changed" in run_cli(env, "demo").stdout
    assert db.stat().st_size >= size_after_demo

    out = run_cli(env, "simulate", "--events", "300", "--seed", "7").stdout
    assert "simulated 300 events" in out

    export = tmp_path / "ledger.jsonl"
    run_cli(env, "export", "-o", str(export), "-q")
    lines = export.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "shulian-export/1" and header["origin"] == "cli.example.gov.cn/shulian"
    assert run_cli(env, "verify", "-q").returncode == 0
    assert run_cli(env, "verify", "-q", "--export", str(export)).returncode == 0


def test_errors_are_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    for args in (
        ["--db", "mysql://nobody@localhost/x", "init"],
        ["simulate", "--events", "0"],
        ["simulate", "--events", "5"],  # no ledger yet
        ["verify", "--export", str(tmp_path / "missing.jsonl")],
    ):
        proc = run_cli(env, *args, check=False)
        assert proc.returncode != 0, args
        assert "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
