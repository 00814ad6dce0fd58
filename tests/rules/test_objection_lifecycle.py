"""An objection's life cycle end to end (数据异议核实), over a real server on loopback: a citizen files, the
owning department corrects the record (a new commitment that replaces the old) or rejects with reasons,
and the reports track the 15-day deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.client import ClientError
from audit.report import build_report
from audit.sources import verify_database
from consent.objection import objection_body, resolution_body
from ledger.envelope import parse_envelope
from ledger.timefmt import format_ts, now
from tests.access.world import DIBAO, World


def statuses(rows: list[dict[str, object]]) -> dict[int, tuple[object, object]]:
    return {int(r["entry"]["seq"]): (r["status"], r["ended_by"]) for r in rows}  # type: ignore[index]


def test_objection_life_cycle(world: World) -> None:
    a, b = world.citizens["a"], world.citizens["b"]
    mzj, gjj = world.depts["mzj"], world.depts["gjj"]

    def file(citizen: str, record: str, fields: list[str], reason: str) -> int:
        c = world.citizens[citizen]
        body = objection_body(subject=c.subject, dataset=DIBAO, record=record, fields=fields, reason=reason)
        return int(c.client.file_objection(body)["seq"])

    corrected = file("a", "mzj-a", ["household_size"], "家庭人口应为4人")
    rejected = file("b", "mzj-b", ["monthly_allowance"], "低保金额与实际发放不符")
    left_open = file("a", "mzj-a", ["phone"], "联系电话已变更")
    with pytest.raises(ClientError, match="403"):  # another citizen's record
        b.client.file_objection(
            objection_body(subject=b.subject, dataset=DIBAO, record="mzj-a", fields=["phone"], reason="x")
        )
    assert statuses(mzj.client.objections()) == dict.fromkeys((corrected, rejected, left_open), ("open", None))

    # corrected: a new version of the record, replacing the old commitment, then the resolution naming it
    old = world.records["mzj-a"]
    values = {**world.values["mzj-a"], "household_size": 4}
    new = int(
        mzj.client.commit_record(
            dataset=DIBAO, record="mzj-a", subject=a.subject, values=values, version=2, replaces=old
        )["seq"]
    )
    with pytest.raises(ClientError):  # only the owner resolves
        gjj.client.resolve_objection(resolution_body(objection=corrected, outcome="rejected", reasons=["无权处理"]))
    fix = int(
        mzj.client.resolve_objection(
            resolution_body(objection=corrected, outcome="corrected", reasons=["经核实已更正"], correction=new)
        )["seq"]
    )
    with pytest.raises(ClientError):  # a correction that is not a later commit of the record objected to
        mzj.client.resolve_objection(
            resolution_body(objection=rejected, outcome="corrected", reasons=["x"], correction=old)
        )
    no = int(
        mzj.client.resolve_objection(
            resolution_body(objection=rejected, outcome="rejected", reasons=["经核实，原登记信息无误"])
        )["seq"]
    )
    assert statuses(a.client.objections()) == {corrected: ("corrected", fix), left_open: ("open", None)}
    assert statuses(b.client.objections()) == {rejected: ("rejected", no)}
    leaves = world.leaves()
    commit = parse_envelope(leaves[new]).body
    assert (commit["version"], commit["replaces"]) == (2, old)

    # the report: two resolved on time, one open; 16 days on, that one is overdue
    entries = [(seq, parse_envelope(leaf)) for seq, leaf in enumerate(leaves)]
    start = entries[0][1].time
    today = build_report(entries, start=start, end=now() + timedelta(seconds=1))
    lines = {o.seq: o.status for o in today.objections}
    assert lines == {corrected: "resolved", rejected: "resolved", left_open: "open"}
    owner = next(d for d in today.departments if d.name == "市民政局")
    assert (owner.objections_filed, owner.objections_resolved, owner.objections_overdue) == (3, 2, 0)
    later = build_report(entries, start=start, end=now() + timedelta(days=16))
    assert {o.seq: o.status for o in later.objections}[left_open] == "overdue"
    assert [(a.code, a.seqs) for a in later.alerts if a.code == "objection_overdue"] == [
        ("objection_overdue", (left_open,))
    ]
    # and the auditor reads the same over the API
    day = format_ts(now() + timedelta(days=1))[:10]
    served = world.auditor._send("GET", "/v1/audit/report", params={"from": "2020-01-01", "to": day})
    assert {o["seq"]: o["status"] for o in served["objections"]} == lines
    assert [x for x in served["alerts"] if x["code"] == "objection_overdue"] == []
    assert verify_database(world.node.store, progress=False).ok
