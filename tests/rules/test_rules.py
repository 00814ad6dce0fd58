"""Each anomaly rule fires on a crafted ledger and stays quiet on its innocent twin.

Ledgers are built in memory with ``tests.consent.builder`` (every entry through the real checks); the
releases that no valid path allows are signed and appended with the state machine bypassed (``force``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from audit.report import build_report, render_html, render_json
from audit.rules import (
    AgreementExpiring,
    Alert,
    AttemptAfterRevocation,
    CoreAccessOffHours,
    DenialBurst,
    ObjectionOverdue,
    ReleaseWithoutPath,
    Rule,
    VolumeSpike,
    run_rules,
)
from consent.objection import objection_body, resolution_body
from consent.release import usage_release_body
from ledger.envelope import Envelope, parse_envelope, sign_envelope
from ledger.timefmt import format_ts
from tests.consent.builder import Actor, Ledger
from tests.consent.conftest import ALICE_VALUES, DIBAO, HOUSING, World, build_world, subject_of

MONDAY_10 = datetime(2026, 1, 5, 2, tzinfo=UTC)  # Monday 10:00 in Asia/Shanghai
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SCOPE = {"gaj.hukou": {"name": "full", "household_address": "masked"}}
FIELDS = ["name", "household_address"]
CORE: dict[str, Any] = {
    "dataset": "wjw.health_record",
    "title": "居民健康档案",
    "fields": [{"name": "name", "sensitivity": "high"}, {"name": "diagnosis", "sensitivity": "high"}],
    "level": "核心",
    "personal": True,
    "update_frequency": "实时",
}


@pytest.fixture
def w() -> World:
    world = build_world()
    world.ledger.clock = MONDAY_10
    return world


def entries(ledger: Ledger) -> list[tuple[int, Envelope]]:
    return list(enumerate(ledger.entries))


def alerts(ledger: Ledger, rule: Rule, end: datetime | None = None) -> list[Alert]:
    return run_rules(entries(ledger), end=end or ledger.clock + timedelta(seconds=1), rules=[rule])


def force(ledger: Ledger, actor: Actor, entry_type: str, body: dict[str, Any]) -> int:
    """Append an entry with the registry and consent checks bypassed (what a broken sequencer would do)."""
    ledger.entries.append(parse_envelope(sign_envelope(actor.signing, entry_type, body, ts=ledger.ts())))
    ledger.clock += timedelta(seconds=1)
    return len(ledger.entries) - 1


def release(w: World, decision: int, *, checked: bool = True) -> int:
    d = w.state.decisions.get(decision)
    body = usage_release_body(
        decision=decision,
        requester=w.mzj.kid,
        record_seq=d.entry.record_seq if d is not None else w.alice_seq,
        sealed=b"sealed %d" % decision,
    )
    if checked:
        return w.ledger.append(w.service, "usage.release", body)
    return force(w.ledger, w.service, "usage.release", body)


def ask(w: World, requester: Actor | None = None, purpose: str = DIBAO) -> tuple[bool, int]:
    decision, seq = w.ledger.log_decision(requester or w.mzj, "gaj.hukou", "h-0001", FIELDS, purpose)
    return decision.allowed, seq


# -- release without a valid path ----------------------------------------------------------------------------


def test_release_on_a_valid_path_raises_nothing(w: World) -> None:
    agreement = w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], consent_required=True)
    w.ledger.grant(w.alice, w.mzj, {"gaj.hukou": FIELDS}, DIBAO)
    allowed, decision = ask(w)
    assert allowed
    release(w, decision)
    assert alerts(w.ledger, ReleaseWithoutPath()) == []
    w.ledger.revoke_agreement(w.gaj, agreement)  # revoked after the release: that release stays good
    assert alerts(w.ledger, ReleaseWithoutPath()) == []


@pytest.mark.parametrize(
    "case", ["deny", "agreement_revoked", "consent_revoked", "not_a_decision", "twice", "key_revoked"]
)
def test_release_without_a_valid_path_is_high(w: World, case: str) -> None:
    agreement = w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], consent_required=True)
    grant = w.ledger.grant(w.alice, w.mzj, {"gaj.hukou": FIELDS}, DIBAO)
    if case == "deny":
        allowed, decision = ask(w, purpose=HOUSING)
        assert not allowed
    else:
        allowed, decision = ask(w)
        assert allowed
    if case == "agreement_revoked":
        w.ledger.revoke_agreement(w.gaj, agreement)
    elif case == "consent_revoked":
        w.ledger.revoke_grant(w.alice, grant)
    elif case == "twice":
        release(w, decision)
    elif case == "key_revoked":
        w.ledger.revoke_key(w.mzj)
    elif case == "not_a_decision":
        decision = agreement
    seq = release(w, decision, checked=False)
    found = alerts(w.ledger, ReleaseWithoutPath())
    assert len(found) == 1, found
    a = found[0]
    assert (a.code, a.severity) == ("release_without_path", "high")
    assert a.seqs[:2] == (seq, decision)
    assert a.message.startswith(f"seq {seq}: release without a valid path: ")
    expected = {
        "deny": "is a deny (purpose_not_allowed)",
        "agreement_revoked": f"agreement {agreement} is revoked",
        "consent_revoked": f"consent grant {grant} was revoked",
        "not_a_decision": f"seq {agreement} is not an access.decision",
        "twice": f"decision {decision} was already released at seq {seq - 1}",
        "key_revoked": f"the requester's key {w.mzj.kid} is not valid at the release",
    }[case]
    assert expected in a.message
    if case != "not_a_decision":
        assert a.department == w.state.principal_of(w.ledger.registry, w.mzj.kid)


# -- bursts of denials ---------------------------------------------------------------------------------------


def test_denial_burst_fires_once_on_a_run_of_refusals(w: World) -> None:
    seqs = []
    for _ in range(30):  # no agreement: every request is refused, one every 10 s
        allowed, seq = ask(w)
        assert not allowed
        seqs.append(seq)
        w.ledger.clock += timedelta(seconds=9)
    found = alerts(w.ledger, DenialBurst())
    assert len(found) == 1
    assert found[0].seqs == tuple(seqs)
    assert found[0].message.startswith(f"seq {seqs[0]}–{seqs[-1]}: requester {w.mzj.kid} was denied 30 times")


def test_denial_burst_quiet_when_spread_out_or_mostly_allowed(w: World) -> None:
    for _ in range(30):  # one refusal a minute: never 30 within 10 minutes
        ask(w)
        w.ledger.clock += timedelta(minutes=1)
    assert alerts(w.ledger, DenialBurst()) == []
    w.ledger.approve(w.gaj, w.rsj, SCOPE, [DIBAO])
    for i in range(40):  # 30 refusals among 40 requests within 10 minutes: 75 %, below the share
        ask(w, w.rsj, purpose=HOUSING if i % 4 else DIBAO)
    assert [a.department for a in alerts(w.ledger, DenialBurst())] == []
    assert len(alerts(w.ledger, DenialBurst(min_share=0.7))) == 1


# -- attempts after revocation -------------------------------------------------------------------------------


@pytest.mark.parametrize("what", ["agreement", "consent grant"])
def test_attempt_after_revocation(w: World, what: str) -> None:
    agreement = w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], consent_required=True)
    grant = w.ledger.grant(w.alice, w.mzj, {"gaj.hukou": FIELDS}, DIBAO)
    assert ask(w)[0]
    if what == "agreement":
        revoked, revocation = agreement, w.ledger.revoke_agreement(w.gaj, agreement)
    else:
        revoked, revocation = grant, w.ledger.revoke_grant(w.alice, grant)
    allowed, _ = ask(w)  # within the grace period: a request in flight
    assert not allowed
    assert alerts(w.ledger, AttemptAfterRevocation()) == []
    w.ledger.clock += 2 * HOUR
    _, late = ask(w)
    found = alerts(w.ledger, AttemptAfterRevocation())
    assert [a.seqs for a in found] == [(late, revoked, revocation)]
    assert f"after the {what} {revoked} it relied on was revoked at seq {revocation}" in found[0].message
    # another requester that never relied on it is refused too, and raises nothing
    w.ledger.clock += 2 * HOUR
    ask(w, w.rsj)
    assert len(alerts(w.ledger, AttemptAfterRevocation())) == 1


# -- volume spikes -------------------------------------------------------------------------------------------


def test_volume_spike_after_a_baseline(w: World) -> None:
    w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], start=MONDAY_10 - DAY, end=MONDAY_10 + 30 * DAY)
    for _ in range(24):  # two days of one request every two hours
        assert ask(w)[0]
        w.ledger.clock += 2 * HOUR
    quiet = alerts(w.ledger, VolumeSpike())
    assert quiet == []
    w.ledger.clock = w.ledger.clock.replace(minute=0, second=0)
    first = w.ledger.next_seq
    for _ in range(25):
        ask(w)
    found = alerts(w.ledger, VolumeSpike())
    assert sorted(a.message.split(" for ")[1].split()[0] for a in found) == ["dataset", "requester"]
    principal = w.state.principal_of(w.ledger.registry, w.mzj.kid)
    owner = w.state.principal_of(w.ledger.registry, w.gaj.kid)
    assert sorted(a.department or "" for a in found) == sorted([principal, owner])
    for a in found:
        assert a.seqs[0] == first and len(a.seqs) == 20  # it fires when the count reaches min_count
        assert a.message.startswith(f"seq {first}–")
    # the same burst on a fresh ledger (no day of history) raises nothing
    fresh = build_world()
    fresh.ledger.clock = MONDAY_10
    fresh.ledger.approve(fresh.gaj, fresh.mzj, SCOPE, [DIBAO])
    for _ in range(25):
        ask(fresh)
    assert alerts(fresh.ledger, VolumeSpike()) == []


# -- 核心 data outside working hours -------------------------------------------------------------------------


def test_core_access_off_hours(w: World) -> None:
    core = w.ledger.register_dataset(w.gaj, CORE)
    w.ledger.commit(w.gaj, core, "w-0001", subject_of("alice"), {"name": "张三", "diagnosis": "无"})
    w.ledger.approve(w.gaj, w.mzj, {"wjw.health_record": {"name": "full"}}, [DIBAO])

    def access(at: datetime, purpose: str = DIBAO) -> int:
        w.ledger.clock = at
        return w.ledger.log_decision(w.mzj, "wjw.health_record", "w-0001", ["name"], purpose)[1]

    access(MONDAY_10)  # 10:00 Monday
    access(MONDAY_10 + 7 * HOUR + timedelta(minutes=59))  # 17:59
    ask(w)  # 重要 data, any time
    evening = access(MONDAY_10 + 8 * HOUR)  # 18:00
    access(MONDAY_10 + 12 * HOUR, purpose=HOUSING)  # a deny: nothing was accessed
    early = access(MONDAY_10 + DAY - 2 * HOUR)  # Tuesday 08:00
    saturday = access(MONDAY_10 + 5 * DAY)  # Saturday 10:00
    found = alerts(w.ledger, CoreAccessOffHours())
    assert [a.seqs for a in found] == [(evening,), (early,), (saturday,)]
    assert "at Mon 2026-01-05 18:00 (UTC+8)" in found[0].message
    later = CoreAccessOffHours(end=time(19), weekdays=frozenset(range(6)))  # a 19:00 close, Saturdays worked
    assert [a.seqs for a in alerts(w.ledger, later)] == [(early,)]


# -- agreements about to expire ------------------------------------------------------------------------------


def test_agreement_expiring(w: World) -> None:
    end = MONDAY_10 + DAY
    soon = w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], end=end + 20 * DAY)
    w.ledger.approve(w.gaj, w.rsj, SCOPE, [DIBAO], end=end + 40 * DAY)
    revoked = w.ledger.approve(w.gaj, w.rsj, SCOPE, [HOUSING], end=end + 10 * DAY)
    w.ledger.revoke_agreement(w.gaj, revoked)
    w.ledger.approve(w.gaj, w.rsj, SCOPE, [DIBAO], start=end - 9 * DAY, end=end - DAY)  # already over
    found = alerts(w.ledger, AgreementExpiring(), end)
    assert [a.seqs for a in found] == [(soon,)]
    assert found[0].at == end and "in 20 days" in found[0].message


# -- objections past their deadline --------------------------------------------------------------------------


def file_objection(w: World) -> int:
    body = objection_body(
        subject=subject_of("alice"), dataset="gaj.hukou", record="h-0001", fields=["phone"], reason="电话已变更"
    )
    return w.ledger.append(w.alice, "objection.file", body)


def resolve(w: World, objection: int) -> int:
    body = resolution_body(objection=objection, outcome="rejected", reasons=["经核实，原登记信息无误"])
    return w.ledger.append(w.gaj, "objection.resolve", body)


def test_objection_overdue(w: World) -> None:
    filed = file_objection(w)
    on_time = file_objection(w)
    w.ledger.clock += 5 * DAY
    resolve(w, on_time)
    assert alerts(w.ledger, ObjectionOverdue(), MONDAY_10 + 15 * DAY) == []
    found = alerts(w.ledger, ObjectionOverdue(), MONDAY_10 + 16 * DAY)
    assert [a.seqs for a in found] == [(filed,)]
    assert found[0].message == f"seq {filed}: objection open for 16 days (deadline 15 days)"
    w.ledger.clock = MONDAY_10 + 20 * DAY
    late = resolve(w, filed)
    found = alerts(w.ledger, ObjectionOverdue())
    assert [a.seqs for a in found] == [(filed, late)]
    assert "resolved 20 days after filing" in found[0].message
    assert alerts(w.ledger, ObjectionOverdue(deadline=30 * DAY)) == []


def test_report_counts_objections_and_denials(w: World) -> None:
    w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO])
    ask(w)
    ask(w, purpose=HOUSING)
    ask(w, w.rsj)
    filed = file_objection(w)
    w.ledger.clock += 2 * DAY
    second = file_objection(w)
    settled = resolve(w, second)
    end = MONDAY_10 + 17 * DAY
    report = build_report(entries(w.ledger), start=MONDAY_10, end=end)
    by_name = {d.name: d for d in report.departments}
    assert by_name["mzj"].requests == 2 and by_name["mzj"].allows == 1
    assert dict(by_name["mzj"].denies_by_reason) == {"purpose_not_allowed": 1}
    assert dict(by_name["rsj"].denies_by_reason) == {"no_agreement": 1}
    gaj = by_name["gaj"]
    assert (gaj.objections_filed, gaj.objections_resolved, gaj.objections_overdue) == (2, 1, 1)
    assert [a.seqs for a in report.alerts] == [(filed,)]
    assert gaj.alerts == 1 and report.totals.requests == 3
    lines = [(o.seq, o.status, o.resolved_seq, o.due - o.filed) for o in report.objections]
    assert lines == [(filed, "overdue", None, 15 * DAY), (second, "resolved", settled, 15 * DAY)]
    later = build_report(entries(w.ledger), start=MONDAY_10 + 10 * DAY, end=end)
    assert [o.seq for o in later.objections] == [filed]  # the settled one is before the period
    assert "逾期未办 (overdue)" in render_html(report)
    assert json.loads(render_json(report))["objections"][0]["due"] == format_ts(w.ledger.entries[filed].time + 15 * DAY)
    only = build_report(entries(w.ledger), start=MONDAY_10, end=end, department=w.rsj.kid)
    assert [d.name for d in only.departments] == ["rsj"] and only.alerts == []
    with pytest.raises(ValueError, match=f"{w.alice.kid} is not a registered department key"):
        build_report(entries(w.ledger), start=MONDAY_10, end=end, department=w.alice.kid)
    with pytest.raises(ValueError, match="the period is empty"):
        build_report(entries(w.ledger), start=end, end=MONDAY_10)
    assert ALICE_VALUES["phone"]  # the objection is about a field the record has
