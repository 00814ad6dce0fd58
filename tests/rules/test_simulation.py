"""The rules and the report on the plain `shulian demo` + `shulian simulate` ledger, and `shulian audit`.

The simulation is a day's mixed traffic packed into seconds (denies, revocations, objections included):
the burst, spike, revocation, release and deadline rules stay quiet on it. Whether 核心 data was accessed
outside working hours depends on when the test runs, so that rule is checked against an independent count.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from api.demo import seed_demo, simulate
from api.node import Node
from audit.report import build_report, csv_columns
from audit.rules import SHANGHAI, CoreAccessOffHours, run_rules
from consent.decision import ALLOW
from consent.state import replay_consent
from ledger.envelope import Envelope, parse_envelope
from tests.api.conftest import SHULIAN
from tests.consent.builder import Ledger


@dataclass
class Simulated:
    env: dict[str, str]
    tmp: Path
    entries: list[tuple[int, Envelope]]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulated]:
    tmp = tmp_path_factory.mktemp("rules")
    env = dict(os.environ)
    env.update(SHULIAN_HOME=str(tmp / "home"), SHULIAN_DB=f"sqlite:///{tmp / 'ledger.db'}")
    env.update(SHULIAN_PASSPHRASE="test passphrase")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHULIAN_PASSPHRASE", "test passphrase")
        node = Node(env["SHULIAN_DB"], home_dir=tmp / "home")
        node.init("rules.example.gov.cn/shulian")
        seed_demo(node)
        simulate(node, 300, 11)
        entries = [(seq, parse_envelope(leaf)) for seq, leaf in node.store.iter_entries()]
        node.close()
    yield Simulated(env, tmp, entries)


def period(sim: Simulated) -> tuple[datetime, datetime]:
    return sim.entries[0][1].time, sim.entries[-1][1].time + timedelta(seconds=1)


def test_rules_quiet_on_the_simulation(sim: Simulated) -> None:
    _, end = period(sim)
    alerts = run_rules(sim.entries, end=end)
    by_code = Counter(a.code for a in alerts)
    assert set(by_code) <= {"core_access_off_hours"}, [a.message for a in alerts if a.code != "core_access_off_hours"]
    # 核心 data outside working hours: exactly the allows the clock puts there
    _, state = replay_consent(sim.entries)
    rule = CoreAccessOffHours()
    expected = [
        seq
        for seq, d in sorted(state.decisions.items())
        if d.entry.outcome == ALLOW and state.datasets[d.entry.dataset].dataset.level == "核心" and rule.off_hours(d.at)
    ]
    assert [a.seqs[0] for a in alerts if a.code == "core_access_off_hours"] == expected
    core_allows = [d for d in state.decisions.values() if state.datasets[d.entry.dataset].dataset.level == "核心"]
    assert core_allows, "the simulation reads 核心 data"


def test_report_figures_match_a_replay(sim: Simulated) -> None:
    start, end = period(sim)
    report = build_report(sim.entries, start=start, end=end)
    registry, state = replay_consent(sim.entries)
    expected: dict[str, Counter[str]] = {}

    def bump(principal: str, metric: str, n: int = 1) -> None:
        expected.setdefault(principal, Counter())[metric] += n

    reasons: Counter[str] = Counter()
    for d in state.decisions.values():
        bump(d.requester, "requests")
        bump(d.requester, "allows" if d.entry.outcome == ALLOW else "denies")
        reasons.update(d.entry.reasons)
    for r in state.releases.values():
        bump(r.requester, "releases")
    for g in state.grants.values():
        bump(g.grantee, "consents_granted")
        if g.revoked_seq is not None:
            bump(g.grantee, "consents_revoked")
    for o in state.objections.values():
        bump(o.owner, "objections_filed")
        if not o.is_open:
            bump(o.owner, "objections_resolved")
    found = {
        figs.department: {k: v for k, v in figs.as_dict().items() if isinstance(v, int) and v and k != "alerts"}
        for figs in report.departments
    }
    assert found == {k: dict(v) for k, v in expected.items()}
    assert report.totals.denies_by_reason == reasons
    assert report.totals.requests == len(state.decisions) > 100
    assert report.totals.objections_overdue == 0
    for figs in report.departments:
        key = registry.keys.get(figs.department)
        assert key is not None and figs.name == key.name
    # a period before the ledger began counts nothing (the state still replays from seq 0)
    early = build_report(sim.entries, start=start - timedelta(days=2), end=start)
    assert early.departments == [] and early.alerts == []


def cli(sim: Simulated, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHULIAN, "audit", *args], env=sim.env, capture_output=True, text=True, timeout=120, check=False
    )


def days(sim: Simulated) -> tuple[str, str]:
    today = sim.entries[-1][1].time.astimezone(SHANGHAI).date()
    return str(today - timedelta(days=1)), str(today + timedelta(days=1))


def test_cli_writes_json_csv_and_html(sim: Simulated) -> None:
    first, last = days(sim)
    outputs = {}
    for fmt in ("json", "csv", "html"):
        path = sim.tmp / f"report.{fmt}"
        done = cli(sim, "report", "--from", first, "--to", last, "--format", fmt, "-o", str(path))
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"wrote {fmt} report to {path}: ")
        outputs[fmt] = path.read_text(encoding="utf-8")
    start, end = period(sim)
    report = build_report(sim.entries, start=start, end=end)
    data = json.loads(outputs["json"])
    assert data["format"] == "shulian-audit-report/1"
    assert data["totals"]["requests"] == report.totals.requests
    assert data["totals"]["releases"] == report.totals.releases
    assert {d["department"] for d in data["departments"]} == {d.department for d in report.departments}
    rows = list(csv.reader(io.StringIO(outputs["csv"])))
    assert rows[0] == csv_columns()
    assert rows[-1][0] == "total" and int(rows[-1][2]) == report.totals.requests
    assert len(rows) == len(report.departments) + 2
    page = outputs["html"]
    assert page.startswith("<!DOCTYPE html>") and "数链审计报告 (Shulian audit report)" in page
    assert "<svg" in page and "拒绝原因 (Denials by reason)" in page
    for external in ("<script", "src=", "href=", "<link", "url("):
        assert external not in page
    # one department, to standard output
    one = report.departments[0].department
    done = cli(sim, "report", "--from", first, "--to", last, "--format", "json", "--department", one)
    assert done.returncode == 0, done.stderr
    assert [d["department"] for d in json.loads(done.stdout)["departments"]] == [one]


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (["--from", "2026-13-01", "--to", "2026-12-01"], 2, "--from '2026-13-01' is not a date"),
        (["--from", "2026-11-02", "--to", "2026-11-01T00:00Z"], 2, "--to is not after --from"),
        (["--from", "2026-11-01T09:00", "--to", "2026-12-01"], 2, "--from '2026-11-01T09:00' has no time zone"),
        (["--from", "2026-11-01", "--to", "2026-12-01", "--export", "/nonexistent/x.jsonl"], 1, "cannot read"),
        (["--from", "2026-11-01", "--to", "2026-12-01", "--department", "0" * 32], 1, "0" * 32 + " is not a"),
    ],
)
def test_cli_errors_are_one_line(sim: Simulated, args: list[str], code: int, start: str) -> None:
    done = cli(sim, "report", *args)
    assert done.returncode == code
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"shulian audit report: {start}"), done.stderr


def test_cli_rules_exit_status(sim: Simulated) -> None:
    done = cli(sim, "rules")
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith(" alerts, 0 high\n")
    # an export holding a release no valid path allows: exit 1, the alert names its seq
    from tests.consent.conftest import HOUSING, build_world
    from tests.rules.test_rules import MONDAY_10, SCOPE, ask, release

    w = build_world()
    w.ledger.clock = MONDAY_10
    w.ledger.approve(w.gaj, w.mzj, SCOPE, ["最低生活保障资格核查"])
    allowed, decision = ask(w, purpose=HOUSING)
    assert not allowed
    seq = release(w, decision, checked=False)
    path = sim.tmp / "crafted.jsonl"
    write_entries_export(w.ledger, path)
    done = cli(sim, "rules", "--export", str(path), "--to", "2026-02-01")
    assert done.returncode == 1, done.stderr
    assert f"HIGH   release_without_path  {w.ledger.entries[seq].ts}  seq {seq}: " in done.stdout
    assert done.stderr == "1 alerts, 1 high\n"


def write_entries_export(ledger: Ledger, path: Path) -> None:
    """The header and entry lines of a shulian-export/1 file (the rules read no blocks)."""
    lines = [json.dumps({"format": "shulian-export/1", "origin": "crafted.example/shulian", "log_key": "x"})]
    for seq, env in enumerate(ledger.entries):
        lines.append(json.dumps({"seq": seq, "leaf": base64.b64encode(env.leaf).decode()}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_api_report_for_auditors_and_departments(sim: Simulated) -> None:
    from starlette.testclient import TestClient

    from api import world
    from api.app import create_app
    from api.client import ClientError, ShulianClient
    from api.demo import DemoKeys

    start, end = period(sim)
    report = build_report(sim.entries, start=start, end=end)
    first, last = days(sim)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHULIAN_PASSPHRASE", "test passphrase")
        node = Node(sim.env["SHULIAN_DB"], home_dir=sim.tmp / "home")
        keys = DemoKeys(node).load()
        try:
            with TestClient(create_app(node)) as http:

                def client(name: str) -> ShulianClient:
                    return ShulianClient("http://testserver", keys.require(name), http=http)

                auditor = client(world.AUDITOR[0])
                period_ = {"from": first, "to": last}
                data = auditor._send("GET", "/v1/audit/report", params=period_)
                assert data["totals"]["requests"] == report.totals.requests
                assert len(data["alerts"]) == len(report.alerts)
                page = auditor._send("GET", "/v1/audit/report", params={**period_, "format": "html"})
                assert page.startswith("<!DOCTYPE html>")
                busiest = max(report.departments, key=lambda d: d.requests)
                dept_name = next(d.key for d in world.DEPARTMENTS if d.name == busiest.name)
                own = client(dept_name)._send("GET", "/v1/audit/report", params=period_)
                assert [d["department"] for d in own["departments"]] == [busiest.department]
                with pytest.raises(ClientError, match="its own report only"):
                    client(dept_name)._send("GET", "/v1/audit/report", params={**period_, "department": "0" * 32})
                citizen = client(keys.names("citizen-")[0])
                with pytest.raises(ClientError, match="403"):
                    citizen._send("GET", "/v1/audit/report", params=period_)
                with pytest.raises(ClientError, match="400 '2026-02-30' is not a date"):
                    auditor._send("GET", "/v1/audit/report", params={"from": "2026-02-30", "to": last})
        finally:
            node.close()
