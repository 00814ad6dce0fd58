"""An auditor's own program (tests/auditor/independent.py, no Shulian imports) against a simulated city."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import SHULIAN, cli_env, free_port, run_cli
from tests.auditor.independent import AuditFailure, audit_export, check_public_proofs


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], list[str], str]]:
    tmp = tmp_path_factory.mktemp("auditor")
    env = cli_env(tmp)
    run_cli(env, "init", "--origin", "audit.example.gov.cn/shulian")
    run_cli(env, "demo")
    run_cli(env, "simulate", "--events", "250", "--seed", "3")
    export = tmp / "city.jsonl"
    run_cli(env, "export", "-o", str(export), "-q")
    port = free_port()
    proc = subprocess.Popen([*SHULIAN, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield env, export.read_text().splitlines(), url
    proc.terminate()
    proc.wait(10)


def test_the_auditors_program_accepts_the_city(city: tuple[dict[str, str], list[str], str]) -> None:
    _, lines, url = city
    figures = audit_export(lines)
    assert figures["releases"] > 0 and figures["allows"] >= figures["releases"] and figures["denies"] > 0
    assert check_public_proofs(url, lines) == 4


def _tamper_leaf(lines: list[str], seq: int, old: bytes, new: bytes) -> list[str]:
    out = list(lines)
    item = json.loads(out[1 + seq])
    leaf = base64.b64decode(item["leaf"])
    assert old in leaf
    item["leaf"] = base64.b64encode(leaf.replace(old, new, 1)).decode()
    out[1 + seq] = json.dumps(item)
    return out


def test_the_auditors_program_catches_tampering(city: tuple[dict[str, str], list[str], str]) -> None:
    _, lines, _ = city
    entries = [json.loads(base64.b64decode(json.loads(x)["leaf"])) for x in lines[1:] if x.startswith('{"seq"')]
    allow = next(i for i, e in enumerate(entries) if e["type"] == "access.decision" and e["body"]["outcome"] == "allow")
    with pytest.raises(AuditFailure, match=f"seq {allow}"):
        audit_export(_tamper_leaf(lines, allow, b'"outcome":"allow"', b'"outcome":"deny!"'))
    blocks = [i for i, x in enumerate(lines) if x.startswith('{"block"')]
    forged = list(lines)
    item = json.loads(forged[blocks[1]])
    item["header"]["time"] = item["header"]["time"].replace("20", "19", 1)
    forged[blocks[1]] = json.dumps(item)
    with pytest.raises(AuditFailure, match="block 1"):
        audit_export(forged)
    with pytest.raises(AuditFailure):
        audit_export(lines[: len(lines) - len(blocks)])  # entries without their blocks


def test_shulian_verify_agrees(city: tuple[dict[str, str], list[str], str], tmp_path: Path) -> None:
    env, lines, _ = city
    forged = tmp_path / "forged.jsonl"
    entries = [json.loads(base64.b64decode(json.loads(x)["leaf"])) for x in lines[1:] if x.startswith('{"seq"')]
    grant = next(i for i, e in enumerate(entries) if e["type"] == "consent.grant")
    forged.write_text("\n".join(_tamper_leaf(lines, grant, b'"consent.grant"', b'"consent.grunt"')) + "\n")
    proc = run_cli(env, "verify", "-q", "--export", str(forged), check=False)
    assert proc.returncode == 1 and proc.stderr.strip().startswith(f"seq {grant}:")
