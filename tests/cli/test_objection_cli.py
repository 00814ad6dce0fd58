"""`shulian objection file|resolve|list` against a real server (数据异议核实), each command its own process.

A demo citizen objects to fields of their 低保 record; the owning 民政局 corrects one (a new version of the
record that replaces the old, named by the answer), rejects another with reasons and leaves a third
open; both sides list them with due dates; `shulian audit report` tracks the deadline (the open one is
overdue in a period ending 16 days on). Misuse is one line and a non-zero exit.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from ledger.timefmt import format_ts, now, parse_ts
from tests.cli.conftest import Server, run_cli
from tests.cli.test_people import _one_line_error

DATASET, RECORD = "mzj.dibao", "mzj-db-000003"


def test_objection_file_resolve_list_and_report(server: Server, tmp_path: Path) -> None:
    env = dict(server.env, SHULIAN_HOME=str(tmp_path / "home"), SHULIAN_URL=server.url)
    env.pop("SHULIAN_DB", None)
    demo = ["--keystore", str(server.home / "keys" / "demo.json")]
    citizen, mzj, gjj = ([*demo, "--key", k] for k in ("citizen-0003", "dept-mzj", "dept-gjj"))

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(env, *args, check=check)

    def as_json(*args: str) -> Any:
        return json.loads(cli(*args, "--json").stdout)

    def file(fields: str, reason: str) -> int:
        out = as_json("objection", "file", *citizen, "--dataset", DATASET, "--record", RECORD, "--fields", fields,
                      "--reason", reason)  # fmt: skip
        assert parse_ts(out["due"]) - now() > timedelta(days=14, hours=23)
        return int(out["seq"])

    fixed, kept, left_open = (
        file("household_size", "家庭人口应为4人"),
        file("phone", "电话号码有误"),
        file("address", "已搬家"),
    )
    text = cli("objection", "file", *citizen, "--dataset", DATASET, "--record", RECORD, "--fields", "phone",
               "--reason", "再次确认").stdout  # fmt: skip
    assert "the owning department answers by" in text and "inclusion proof verified" in text
    again = int(text.split("seq ")[1].split()[0])

    # the department sees them open, with due dates, none overdue yet
    listed = {o["seq"]: o for o in as_json("objection", "list", *mzj, "--open")}
    assert {fixed, kept, left_open, again} <= set(listed)
    assert all(not listed[s]["overdue"] and listed[s]["status"] == "open" for s in (fixed, kept, left_open))

    # corrected: a new version of the record replacing the old, and the answer naming it
    records = as_json("record", "list", *mzj, "--dataset", DATASET)
    before = next(r for r in records if r["record"] == RECORD)
    someone_else = next(r["record"] for r in records if r["subject"] != before["subject"])
    values = tmp_path / "values.json"
    values.write_text(json.dumps({
        "name": "居民三号", "id_number": "330106199001010033", "household_size": 4, "monthly_allowance": 1860,
        "approved_on": "2025-06-01", "address": "浙江省杭州市西湖区文三路100号", "phone": "13857112345",
    }, ensure_ascii=False))  # fmt: skip
    out = cli("objection", "resolve", *mzj, str(fixed), "--values", str(values), "--reason", "经核实已更正").stdout
    assert f"version {before['version'] + 1} committed" in out and f"replacing seq {before['seq']}" in out
    correction = int(out.split("committed at seq ")[1].split(",")[0])
    assert f"objection {fixed} corrected by seq {correction}" in out
    after = next(r for r in as_json("record", "list", *mzj, "--dataset", DATASET) if r["record"] == RECORD)
    assert (after["seq"], after["version"]) == (correction, before["version"] + 1)

    # rejected with reasons; a second answer, a stranger's answer and misuse are refused in one line
    rejected = as_json(
        "objection", "resolve", *mzj, str(kept), "--reject", "--reason", "经核实", "--reason", "原记录无误"
    )
    assert rejected["outcome"] == "rejected" and rejected["correction"] is None
    refusals: list[tuple[list[str], int, str]] = [
        (["objection", "resolve", *mzj, str(fixed), "--reject", "--reason", "x"], 1, "already corrected"),
        (["objection", "resolve", *gjj, str(left_open), "--reject", "--reason", "x"], 1, "you can see"),
        (["objection", "resolve", *mzj, str(left_open), "--reject"], 2, "--reason"),
        (["objection", "resolve", *mzj, str(left_open), "--correction", str(before["seq"]), "--reason", "x"], 1,
         "not a later commit"),
        (["objection", "file", *mzj, "--dataset", DATASET, "--record", RECORD, "--fields", "phone", "--reason", "x"], 1,
         "not a citizen"),
        (["objection", "file", *citizen, "--dataset", DATASET, "--record", someone_else, "--fields", "phone",
          "--reason", "x"], 1, "403"),
    ]  # fmt: skip
    for args, code, needle in refusals:
        proc = cli(*args, check=False)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        _one_line_error(proc, needle)

    # the citizen's list: each answer, and what is still open with its due date
    mine = cli("objection", "list", *citizen).stdout
    assert f"seq {fixed}  corrected (seq " in mine and f"seq {kept}  rejected (seq " in mine
    assert f"seq {left_open}  open, due " in mine and "OVERDUE" not in mine

    # the report tracks the deadline: in a period ending 16 days on, the open ones are overdue
    day = format_ts(now() + timedelta(days=16))[:10]
    report = json.loads(
        run_cli(server.env, "audit", "report", "--from", "2020-01-01", "--to", day, "--format", "json").stdout
    )
    lines = {o["seq"]: o for o in report["objections"]}
    assert lines[fixed]["status"] == lines[kept]["status"] == "resolved"
    assert lines[left_open]["status"] == "overdue" and lines[left_open]["due"]
    owner = next(d for d in report["departments"] if d["name"] == "市民政局")
    assert owner["objections_overdue"] >= 2 and owner["objections_resolved"] >= 2
    assert any(a["code"] == "objection_overdue" and left_open in a["seqs"] for a in report["alerts"])
