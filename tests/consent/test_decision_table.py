"""The decision table: one scenario per deny reason, the allow cases, and the refusals before deciding.

Each scenario builds its ledger, asks ``decide`` at the ledger's clock, then logs the answer as an
``access.decision`` signed by the service, which ``ConsentState.check`` must accept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from consent.agreement import sign_commitment
from consent.decision import DENY_REASONS, Decision
from consent.errors import InvalidBody, UnknownDataset, UnknownField, UnknownRecord
from tests.consent.builder import DAY
from tests.consent.conftest import DIBAO, HOUSING, World, build_world

FIELDS = ["name", "id_number"]
SCOPE = {"gaj.hukou": {"name": "full", "id_number": "masked", "gender": "full"}}


@dataclass
class Case:
    desc: str
    setup: Callable[[World], None]
    outcome: str
    reason: str | None = None  # the deny reason
    fields: tuple[str, ...] = tuple(FIELDS)
    purpose: str = DIBAO
    requester: str = "mzj"
    record: str = "h-0001"


def _none(w: World) -> None:
    pass


def _duty(w: World) -> None:
    w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO])


def _needs_consent(w: World) -> None:
    w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], legal_basis="个人同意", consent_required=True)


def _grant(w: World, **kw: object) -> int:
    return w.ledger.grant(w.alice, w.mzj, {"gaj.hukou": ["name", "id_number"]}, DIBAO, **kw)  # type: ignore[arg-type]


def _citizen_requester(w: World) -> None:
    _duty(w)


def _revoked_requester(w: World) -> None:
    _duty(w)
    w.ledger.revoke_key(w.mzj)


def _rotated_away(w: World) -> None:
    _duty(w)
    w.ledger.actors["mzj-old"] = w.mzj
    w.ledger.rotate(w.mzj)  # the old key is no longer valid; the case asks with it


def _agreement_revoked(w: World) -> None:
    seq = w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO])
    w.ledger.revoke_agreement(w.gaj, seq)


def _agreement_expired(w: World) -> None:
    now = w.ledger.clock
    w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], start=now - 10 * DAY, end=now - DAY)


def _agreement_pending(w: World) -> None:
    now = w.ledger.clock
    w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], start=now - 10 * DAY, end=now - DAY)
    w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], start=now + DAY, end=now + 10 * DAY)


def _other_requester_only(w: World) -> None:
    w.ledger.approve(w.gaj, w.rsj, SCOPE, [DIBAO])


def _consent_missing(w: World) -> None:
    _needs_consent(w)
    w.ledger.grant(w.bob, w.mzj, {"gaj.hukou": ["name", "id_number"]}, DIBAO)  # bob's, not alice's
    w.ledger.grant(w.alice, w.rsj, {"gaj.hukou": ["name", "id_number"]}, DIBAO)  # another grantee
    w.ledger.grant(w.alice, w.mzj, {"gaj.hukou": ["name"]}, DIBAO)  # too few fields
    w.ledger.grant(w.alice, w.mzj, {"gaj.hukou": ["name", "id_number"]}, HOUSING)  # another purpose


def _consent_revoked(w: World) -> None:
    _needs_consent(w)
    w.ledger.revoke_grant(w.alice, _grant(w))


def _consent_expired(w: World) -> None:
    _needs_consent(w)
    now = w.ledger.clock
    _grant(w, start=now - 10 * DAY, end=now - DAY)
    _grant(w, start=now + DAY, end=now + 10 * DAY)


def _consent_exhausted(w: World) -> None:
    _needs_consent(w)
    _grant(w, max_uses=1)
    decision, _ = w.ledger.log_decision(w.mzj, "gaj.hukou", "h-0001", FIELDS, DIBAO)
    assert decision.allowed


def _with_consent(w: World) -> None:
    _needs_consent(w)
    _grant(w, max_uses=2)


def _both_bases(w: World) -> None:
    _needs_consent(w)
    _duty(w)  # a later agreement that needs no consent: the allow rests on it alone


def _rotated_requester(w: World) -> None:
    _duty(w)
    w.ledger.rotate(w.mzj)  # the case asks with the new key: the agreement names the old one


def _rotated_citizen(w: World) -> None:
    _needs_consent(w)
    _grant(w)
    w.ledger.rotate(w.alice)


def _commitment(w: World) -> None:
    purposes = [DIBAO]
    c = sign_commitment(
        w.mzj.signing, statement="仅用于低保资格核查，不作他用，用后即删。", scope=SCOPE, purposes=purposes
    )
    w.ledger.approve(w.gaj, w.mzj, SCOPE, purposes, legal_basis="告知承诺", commitment=c)


CASES = [
    Case("a citizen key asks", _citizen_requester, "deny", "requester_key_invalid", requester="alice"),
    Case("the requester's key was revoked", _revoked_requester, "deny", "requester_key_invalid"),
    Case(
        "the requester asks with its rotated-away key",
        _rotated_away,
        "deny",
        "requester_key_invalid",
        requester="mzj-old",
    ),
    Case("no agreement at all", _none, "deny", "no_agreement"),
    Case("only another department has an agreement", _other_requester_only, "deny", "no_agreement"),
    Case("the only agreement was revoked", _agreement_revoked, "deny", "agreement_revoked"),
    Case("the only agreement has ended", _agreement_expired, "deny", "agreement_expired"),
    Case("one ended, one not yet begun", _agreement_pending, "deny", "agreement_not_yet_valid"),
    Case("a field outside the scope", _duty, "deny", "field_out_of_scope", fields=("name", "phone")),
    Case("a purpose not in the agreement", _duty, "deny", "purpose_not_allowed", purpose=HOUSING),
    Case("consent required, none fits", _consent_missing, "deny", "consent_missing"),
    Case("consent required, revoked", _consent_revoked, "deny", "consent_revoked"),
    Case("consent required, expired or pending", _consent_expired, "deny", "consent_expired"),
    Case("consent required, uses exhausted", _consent_exhausted, "deny", "consent_uses_exhausted"),
    Case("statutory duty, no consent needed", _duty, "allow"),
    Case("consent required and given", _with_consent, "allow"),
    Case("a no-consent agreement is preferred", _both_bases, "allow"),
    Case("the requester rotated its key", _rotated_requester, "allow"),
    Case("the citizen rotated its key", _rotated_citizen, "allow"),
    Case("告知承诺 with the requester's signed commitment", _commitment, "allow"),
]


def test_every_deny_reason_has_a_case() -> None:
    assert {c.reason for c in CASES if c.outcome == "deny"} == set(DENY_REASONS)


@pytest.mark.parametrize("case", CASES, ids=[c.desc for c in CASES])
def test_decision_table(case: Case) -> None:
    w = build_world()
    case.setup(w)
    requester = w.ledger.actors[case.requester]
    decision, seq = w.ledger.log_decision(requester, "gaj.hukou", case.record, list(case.fields), case.purpose)
    assert decision.outcome == case.outcome
    assert decision.subject == w.alice.subject
    assert decision.record_seq == w.alice_seq
    if case.outcome == "deny":
        assert decision.reasons == [case.reason]
        assert decision.basis == [] and decision.modes == {}
    else:
        assert decision.reasons == []
        assert decision.modes == {f: SCOPE["gaj.hukou"][f] for f in case.fields}
        agreement = w.state.agreements[decision.basis[0]]
        assert agreement.status(w.ledger.entries[seq].time) == "live"
        if agreement.agreement.consent_required:
            assert len(decision.basis) == 2
            assert w.state.grants[decision.basis[1]].uses == 1
        else:
            assert len(decision.basis) == 1
    assert w.state.decisions[seq].entry.outcome == case.outcome


def test_allow_basis_names_agreement_and_grant() -> None:
    w = build_world()
    _needs_consent(w)
    agreement = w.ledger.next_seq - 1
    grant = _grant(w, max_uses=2)
    decision = w.ledger.decide(w.mzj, "gaj.hukou", "h-0001", FIELDS, DIBAO)
    assert decision.basis == [agreement, grant]
    assert decision.modes == {"name": "full", "id_number": "masked"}


def test_uses_run_out_one_allow_at_a_time() -> None:
    w = build_world()
    _needs_consent(w)
    grant = _grant(w, max_uses=2)
    outcomes = [w.ledger.log_decision(w.mzj, "gaj.hukou", "h-0001", FIELDS, DIBAO)[0] for _ in range(3)]
    assert [d.outcome for d in outcomes] == ["allow", "allow", "deny"]
    assert outcomes[2].reasons == ["consent_uses_exhausted"]
    assert w.state.grants[grant].uses_left == 0
    assert w.state.grants[grant].status(w.ledger.clock) == "exhausted"


def test_a_deny_does_not_use_the_grant() -> None:
    w = build_world()
    _needs_consent(w)
    grant = _grant(w, max_uses=1)
    decision, _ = w.ledger.log_decision(w.mzj, "gaj.hukou", "h-0001", ["name", "phone"], DIBAO)
    assert decision.reasons == ["field_out_of_scope"]
    assert w.state.grants[grant].uses == 0


def test_unknown_dataset_record_or_field_raise_before_deciding(world: World) -> None:
    _duty(world)
    with pytest.raises(UnknownDataset):
        world.ledger.decide(world.mzj, "gaj.nothing", "h-0001", FIELDS, DIBAO)
    with pytest.raises(UnknownRecord):
        world.ledger.decide(world.mzj, "gaj.hukou", "h-9999", FIELDS, DIBAO)
    with pytest.raises(UnknownField):
        world.ledger.decide(world.mzj, "gaj.hukou", "h-0001", ["name", "salary"], DIBAO)
    with pytest.raises(InvalidBody):
        world.ledger.decide(world.mzj, "gaj.hukou", "h-0001", [], DIBAO)
    with pytest.raises(InvalidBody):
        world.ledger.decide(world.mzj, "gaj.hukou", "h-0001", ["name", "name"], DIBAO)


def test_the_record_version_decided_is_the_latest(world: World) -> None:
    _duty(world)
    from tests.consent.conftest import ALICE_VALUES

    seq, _ = world.ledger.commit(world.gaj, world.hukou, "h-0001", world.alice.subject or "", ALICE_VALUES)
    decision: Decision = world.ledger.decide(world.mzj, "gaj.hukou", "h-0001", FIELDS, DIBAO)
    assert decision.record_seq == seq
