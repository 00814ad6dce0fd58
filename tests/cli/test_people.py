"""A citizen and a department use the `shulian` CLI against a real server: keys, consent, requests, usage.

Every command is a separate process, as people run them; errors must be one line and a non-zero exit.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from api import world
from keys.subject import subject_id, subject_secret
from tests.cli.conftest import Server, register, run_cli

PURPOSE = "住房保障资格审核"


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


def test_citizen_and_department(server: Server, tmp_path: Path) -> None:
    # The people run the CLI on their own machines: their own SHULIAN_HOME, the server's URL.
    env = dict(server.env, SHULIAN_HOME=str(tmp_path / "home"), SHULIAN_URL=server.url)
    env.pop("SHULIAN_DB", None)

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(env, *args, check=check)

    # keygen: encrypted keystores (0600) and the identity.register bodies an admin needs
    made = _json(cli("keygen", "--name", "王小明的手机", "--role", "citizen", "--json"))
    citizen_ks = Path(made["keystore"])
    assert stat.S_IMODE(citizen_ks.stat().st_mode) == 0o600
    assert made["register"]["role"] == "citizen" and "x25519" in made["register"]
    dept_ks = tmp_path / "dept.json"
    made = _json(cli("keygen", "--name", "市住房保障局", "--role", "department", "-o", str(dept_ks), "--json"))
    assert made["register"]["key_id"] == made["key_id"] and made["register"]["x25519"]
    again = cli("keygen", "--name", "市住房保障局", "--role", "department", "-o", str(dept_ks), check=False)
    _one_line_error(again, "never overwrites")

    subject = subject_id(world.citizen_id_number(9001), subject_secret(server.home / "subject.secret"))
    citizen_id = register(server, citizen_ks, "citizen", subject=subject)
    dept_id = register(server, dept_ks, "department")

    citizen = ["--keystore", str(citizen_ks)]
    dept = ["--keystore", str(dept_ks)]
    mzj = ["--keystore", str(server.home / "keys" / "demo.json"), "--key", "dept-mzj"]

    # the owner commits a record about the citizen and approves the new department, consent required
    values = tmp_path / "values.json"
    values.write_text(
        json.dumps(
            {
                "name": "王小明", "id_number": world.citizen_id_number(9001), "household_size": 3,
                "monthly_allowance": 1860, "approved_on": "2025-06-01",
                "address": "浙江省杭州市西湖区文三路100号翠苑一区3幢2单元501室", "phone": "13857112345",
            },
            ensure_ascii=False,
        )
    )  # fmt: skip
    record = _json(
        cli("record", "commit", *mzj, "--dataset", "mzj.dibao", "--record", "mzj-db-test-9001",
            "--subject", subject, "--values", str(values), "--json")
    )  # fmt: skip
    assert record["version"] == 1
    scope = json.dumps({"mzj.dibao": {"name": "masked", "monthly_allowance": "full", "household_size": "full"}})
    approved = cli(
        "agreement", "approve", *mzj, "--requester", dept_id, "--scope", scope, "--purposes", PURPOSE,
        "--basis", "个人同意", "--consent-required", "--days", "30",
    )  # fmt: skip
    assert "agreement approved at seq" in approved.stdout and "inclusion proof verified" in approved.stdout
    listed = _json(cli("agreement", "list", *dept, "--json"))
    assert [a["status"] for a in listed] == ["live"] and listed[0]["body"]["requester"] == dept_id

    ask = ["request", *dept, "--dataset", "mzj.dibao", "--record", "mzj-db-test-9001", "--purpose", PURPOSE]
    _one_line_error(cli(*ask, "--fields", "name,monthly_allowance", check=False), "denied", "consent_missing")

    # the citizen consents (one use), sees it, and the department is allowed once
    grant = _json(
        cli("consent", "grant", *citizen, "--grantee", dept_id, "--dataset", "mzj.dibao",
            "--fields", "name,monthly_allowance", "--purpose", PURPOSE, "--days", "30", "--max-uses", "1", "--json")
    )  # fmt: skip
    consents = _json(cli("consent", "list", *citizen, "--json"))
    assert [(c["seq"], c["status"], c["uses_left"]) for c in consents] == [(grant["seq"], "live", 1)]
    allowed = _json(cli(*ask, "--fields", "name,monthly_allowance", "--json"))
    assert allowed["outcome"] == "allow" and allowed["basis"] == [approved_seq(approved), grant["seq"]]
    assert allowed["values"] == {"name": "王**", "monthly_allowance": 1860}
    text = cli(*ask, "--fields", "name", check=False)
    _one_line_error(text, "consent_uses_exhausted")
    _one_line_error(cli(*ask, "--fields", "household_size", check=False), "consent_missing")
    _one_line_error(cli(*ask, "--fields", "phone", check=False), "field_out_of_scope")

    revoked = cli("consent", "revoke", *citizen, str(grant["seq"]), "--reason", "业务已办结")
    assert f"consent {grant['seq']} revoked" in revoked.stdout
    assert [c["status"] for c in _json(cli("consent", "list", *citizen, "--json"))] == ["revoked"]
    _one_line_error(cli(*ask, "--fields", "name", check=False), "consent_revoked")

    # who used my data: every decision and the release, each proof checked
    usage = _json(cli("usage", *citizen, "--json"))
    decisions = [(e["type"], e["body"].get("outcome"), e["body"].get("reasons")) for e in usage]
    assert decisions == [
        ("access.decision", "deny", ["consent_missing"]),
        ("access.decision", "allow", []),
        ("usage.release", None, None),
        ("access.decision", "deny", ["consent_uses_exhausted"]),
        ("access.decision", "deny", ["consent_missing"]),
        ("access.decision", "deny", ["field_out_of_scope"]),
        ("access.decision", "deny", ["consent_revoked"]),
    ]
    shown = cli("usage", *citizen).stdout
    assert "7 entries; every inclusion proof verified" in shown and "released (decision" in shown
    datasets = cli("dataset", "list", *citizen).stdout
    assert "mzj.dibao" in datasets and "最低生活保障对象信息" in datasets

    # the last checkpoint each key saw is kept between runs: a log that no longer extends it is refused
    state_file = Path(env["SHULIAN_HOME"]) / f"client-{citizen_id}.json"
    state = json.loads(state_file.read_text())
    assert state["size"] >= grant["seq"]
    state["root"] = base64.b64encode(bytes(32)).decode()
    state_file.write_text(json.dumps(state))
    _one_line_error(cli("consent", "list", *citizen, check=False), "not consistent")


def approved_seq(proc: subprocess.CompletedProcess[str]) -> int:
    return int(proc.stdout.split("agreement approved at seq ", 1)[1].split(":", 1)[0])


def test_errors_are_one_line(server: Server, tmp_path: Path) -> None:
    env = dict(server.env, SHULIAN_HOME=str(tmp_path / "home"), SHULIAN_URL=server.url)
    demo = ["--keystore", str(server.home / "keys" / "demo.json")]
    mzj = [*demo, "--key", "dept-mzj"]
    nobody = "0" * 32
    ask = f"--dataset mzj.dibao --fields name --purpose {PURPOSE}".split()
    dibao = """{"mzj.dibao": {"name": "full"}}"""
    approve = ["agreement", "approve", *mzj, "--requester", nobody, "--purposes", "x"]
    cases: list[tuple[list[str], int, str]] = [
        (["request", *mzj, "--record", "no-such-record", *ask], 1, "404"),
        (["request", *mzj, "--record", "x", "--url", "http://127.0.0.1:9", *ask], 1, "cannot reach"),
        (["consent", "list"], 2, "--keystore"),
        (["consent", "list", *demo], 2, "--key"),
        (["consent", "list", *demo, "--key", "nobody"], 2, "no key named"),
        (["consent", "list", "--keystore", str(tmp_path / "none.json")], 1, "no keystore"),
        (["consent", "grant", *mzj, "--grantee", nobody, *ask], 1, "not a citizen"),
        (["consent", "revoke", *demo, "--key", "citizen-0001", "999999"], 1, "not a consent.grant"),
        ([*approve, "--basis", "履行职责", "--scope", "{x"], 2, "JSON"),
        ([*approve, "--basis", "告知承诺", "--scope", dibao], 1, "commitment"),
        (["request", *mzj, "--record", "x", *ask, "--fields", ","], 2, "fields"),
        (["keygen", "--name", "x", "--role", "emperor"], 2, "role"),
    ]  # fmt: skip
    for args, code, needle in cases:
        proc = run_cli(env, *args, check=False)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        _one_line_error(proc, needle)
    wrong = dict(env, SHULIAN_PASSPHRASE="not the passphrase")
    _one_line_error(run_cli(wrong, "consent", "list", *mzj, check=False), "wrong passphrase")
    assert not os.path.exists(tmp_path / "home" / "keystores")
