"""ConsentState's rules, entry type by entry type: what is refused, with which error, and what is recorded."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from consent.agreement import agreement_body, sign_commitment
from consent.decision import decision_body
from consent.errors import (
    CommitmentSignatureError,
    DecisionMismatch,
    InvalidBody,
    NotOwner,
    NotSubject,
    StateConflict,
    UnknownDataset,
    UnknownEntry,
    UnknownField,
)
from consent.grant import grant_body
from consent.objection import objection_body, resolution_body
from consent.principal import PrincipalIndex, current_key, principal
from consent.record import record_commit_body
from consent.release import usage_release_body
from consent.state import ConsentState, replay_consent
from ledger.errors import KeyError_
from ledger.timefmt import format_ts
from tests.consent.builder import DAY
from tests.consent.conftest import ALICE_VALUES, DIBAO, HOUSING, HUKOU, LICENCE, World, build_world

SCOPE = {"gaj.hukou": {"name": "full", "id_number": "masked"}}
FIELDS = ["name", "id_number"]


def _consent_world() -> tuple[World, int, int]:
    w = build_world()
    a = w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO], legal_basis="个人同意", consent_required=True)
    g = w.ledger.grant(w.alice, w.mzj, {"gaj.hukou": FIELDS}, DIBAO, max_uses=3)
    return w, a, g


# -- dataset.register ------------------------------------------------------------------------------


def test_dataset_register_rules(world: World) -> None:
    with pytest.raises(StateConflict):
        world.ledger.register_dataset(world.gaj, HUKOU)
    with pytest.raises(NotOwner):
        world.ledger.append(world.mzj, "dataset.register", {**HUKOU, "dataset": "gaj.other", "owner": world.gaj.kid})
    with pytest.raises(KeyError_):
        world.ledger.append(world.alice, "dataset.register", {**HUKOU, "dataset": "gaj.x", "owner": world.alice.kid})
    for bad in (
        {"dataset": "GAJ.hukou2"},
        {"dataset": "hukou"},
        {"level": "secret"},
        {"personal": "yes"},
        {"fields": []},
        {"fields": [{"name": "a", "sensitivity": "low"}, {"name": "a", "sensitivity": "low"}]},
        {"fields": [{"name": "A", "sensitivity": "low"}]},
        {"fields": [{"name": "a", "sensitivity": "secret"}]},
        {"title": ""},
        {"extra": 1},
    ):
        body = {**HUKOU, "dataset": "gaj.hukou2", "owner": world.gaj.kid, **bad}
        with pytest.raises(InvalidBody):
            world.ledger.append(world.gaj, "dataset.register", body)
    body = {k: v for k, v in HUKOU.items() if k != "update_frequency"}
    with pytest.raises(InvalidBody):
        world.ledger.append(world.gaj, "dataset.register", {**body, "dataset": "gaj.hukou2", "owner": world.gaj.kid})
    assert world.state.datasets_of_owner(world.gaj.kid) == ["gaj.hukou"]


def test_a_rotated_owner_keeps_its_datasets(world: World) -> None:
    new = world.ledger.rotate(world.gaj)
    seq, _ = world.ledger.commit(new, world.hukou, "h-0003", "sub:carol", ALICE_VALUES)
    assert world.state.commit(seq) is not None
    world.ledger.register_dataset(new, {**HUKOU, "dataset": "gaj.residence"})
    assert world.state.datasets["gaj.residence"].owner == world.gaj.kid


# -- record.commit ---------------------------------------------------------------------------------


def _commit_body(w: World, record: str, subject: str, version: int, replaces: int | None) -> dict[str, Any]:
    return record_commit_body(
        dataset="gaj.hukou", record=record, subject=subject, commitment=b"\x01" * 32, version=version, replaces=replaces
    )


def test_record_commit_rules(world: World) -> None:
    s = world.alice.subject or ""
    with pytest.raises(NotOwner):
        world.ledger.append(world.mzj, "record.commit", _commit_body(world, "h-0009", s, 1, None))
    with pytest.raises(UnknownDataset):
        world.ledger.append(
            world.gaj, "record.commit", {**_commit_body(world, "h-0009", s, 1, None), "dataset": "gaj.x"}
        )
    with pytest.raises(StateConflict):  # a new record starts at version 1
        world.ledger.append(world.gaj, "record.commit", _commit_body(world, "h-0009", s, 2, world.alice_seq))
    with pytest.raises(StateConflict):  # a new version replaces the latest commit
        world.ledger.append(world.gaj, "record.commit", _commit_body(world, "h-0001", s, 2, world.bob_seq))
    with pytest.raises(StateConflict):
        world.ledger.append(world.gaj, "record.commit", _commit_body(world, "h-0001", s, 3, world.alice_seq))
    with pytest.raises(StateConflict):  # and keeps the subject
        world.ledger.append(world.gaj, "record.commit", _commit_body(world, "h-0001", "sub:x", 2, world.alice_seq))
    with pytest.raises(InvalidBody):
        world.ledger.append(
            world.gaj, "record.commit", {**_commit_body(world, "h-0009", s, 1, None), "commitment": "AA=="}
        )
    v2 = world.ledger.append(world.gaj, "record.commit", _commit_body(world, "h-0001", s, 2, world.alice_seq))
    latest = world.state.latest_commit("gaj.hukou", "h-0001")
    assert latest is not None and (latest.seq, latest.version, latest.seqs) == (v2, 2, [world.alice_seq, v2])
    assert [r.record for r in world.state.records_of_subject(s)] == ["h-0001"]


# -- agreement.approve / revoke --------------------------------------------------------------------


def _approve_body(w: World, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "owner": w.gaj.kid,
        "requester": w.mzj.kid,
        "scope": SCOPE,
        "purposes": [DIBAO],
        "legal_basis": "履行职责",
        "consent_required": False,
        "valid_from": w.ledger.clock - DAY,
        "valid_until": w.ledger.clock + DAY,
        "commitment": None,
    }
    args.update(kw)
    body: dict[str, Any] = {
        **args,
        "valid_from": format_ts(args["valid_from"]),
        "valid_until": format_ts(args["valid_until"]),
    }
    return body


def test_agreement_approve_rules(world: World) -> None:
    w = world
    with pytest.raises(NotOwner):  # signed by a department that is not the owner named
        w.ledger.append(w.mzj, "agreement.approve", _approve_body(w))
    with pytest.raises(NotOwner):  # a dataset of another owner
        w.ledger.append(
            w.gaj, "agreement.approve", _approve_body(w, scope={"scjgj.business_licence": {"credit_code": "full"}})
        )
    with pytest.raises(UnknownDataset):
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, scope={"gaj.nothing": {"name": "full"}}))
    with pytest.raises(UnknownField):
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, scope={"gaj.hukou": {"salary": "full"}}))
    with pytest.raises(InvalidBody):  # the requester is a citizen
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, requester=w.alice.kid))
    with pytest.raises(InvalidBody):
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, legal_basis="个人同意"))
    with pytest.raises(InvalidBody):
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, legal_basis="other"))
    with pytest.raises(InvalidBody):
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, legal_basis="告知承诺"))
    with pytest.raises(InvalidBody):
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, purposes=[]))
    with pytest.raises(InvalidBody):
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, scope={"gaj.hukou": {"name": "partial"}}))
    with pytest.raises(InvalidBody):
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, valid_until=w.ledger.clock - 2 * DAY))
    with pytest.raises(InvalidBody):
        w.ledger.append(w.gaj, "agreement.approve", {**_approve_body(w), "consent_required": 1})
    w.ledger.revoke_key(w.rsj)
    with pytest.raises(InvalidBody):  # the requester's key is revoked
        w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, requester=w.rsj.kid))
    lic = _approve_body(w, owner=w.scjgj.kid, scope={"scjgj.business_licence": {"credit_code": "full"}})
    with pytest.raises(InvalidBody):  # consent cannot be required for data about no one
        w.ledger.append(w.scjgj, "agreement.approve", {**lic, "consent_required": True})
    assert w.ledger.append(w.scjgj, "agreement.approve", lic) in w.state.agreements


def test_commitment_must_be_the_requesters_signature(world: World) -> None:
    w = world
    good = sign_commitment(w.mzj.signing, statement="仅用于核查", scope=SCOPE, purposes=[DIBAO])
    other = sign_commitment(w.rsj.signing, statement="仅用于核查", scope=SCOPE, purposes=[DIBAO], requester=w.mzj.kid)
    wider = sign_commitment(w.mzj.signing, statement="仅用于核查", scope=SCOPE, purposes=[DIBAO, HOUSING])
    forged = {**good, "statement": "随便用"}
    for bad in (other, wider, forged):
        with pytest.raises(CommitmentSignatureError):
            w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, legal_basis="告知承诺", commitment=bad))
    with pytest.raises(InvalidBody):
        w.ledger.append(
            w.gaj, "agreement.approve", _approve_body(w, legal_basis="告知承诺", commitment={**good, "sig": "x"})
        )
    seq = w.ledger.append(w.gaj, "agreement.approve", _approve_body(w, legal_basis="告知承诺", commitment=good))
    commitment = w.state.agreements[seq].agreement.commitment
    assert commitment is not None and commitment.signer == w.mzj.kid


def test_agreement_revoke_rules(world: World) -> None:
    w = world
    seq = w.ledger.approve(w.gaj, w.mzj, SCOPE, [DIBAO])
    with pytest.raises(NotOwner):
        w.ledger.revoke_agreement(w.mzj, seq)
    with pytest.raises(UnknownEntry):
        w.ledger.revoke_agreement(w.gaj, world.alice_seq)
    with pytest.raises(InvalidBody):
        w.ledger.append(w.gaj, "agreement.revoke", {"agreement": seq})
    new = w.ledger.rotate(w.gaj)
    revoked = w.ledger.revoke_agreement(new, seq)  # the owner's new key may revoke
    assert w.state.agreements[seq].revoked_seq == revoked
    assert w.state.agreements[seq].status(w.ledger.clock) == "revoked"
    with pytest.raises(StateConflict):
        w.ledger.revoke_agreement(new, seq)
    assert w.state.agreements_of(w.gaj.kid) == [seq] == w.state.agreements_of(w.mzj.kid)


# -- consent.grant / revoke ------------------------------------------------------------------------


def test_consent_grant_rules(world: World) -> None:
    w = world
    now = w.ledger.clock

    def body(**kw: Any) -> dict[str, Any]:
        args: dict[str, Any] = {
            "subject": w.alice.subject,
            "grantee": w.mzj.kid,
            "scope": {"gaj.hukou": FIELDS},
            "purpose": DIBAO,
            "valid_from": now,
            "valid_until": now + DAY,
            "max_uses": None,
        }
        args.update(kw)
        return grant_body(**args)

    with pytest.raises(NotSubject):
        w.ledger.append(w.bob, "consent.grant", body())
    with pytest.raises(KeyError_):
        w.ledger.append(w.mzj, "consent.grant", body())
    with pytest.raises(InvalidBody):  # grantee is not a department
        w.ledger.append(w.alice, "consent.grant", body(grantee=w.bob.kid))
    with pytest.raises(InvalidBody):  # nothing personal to consent to
        w.ledger.append(w.alice, "consent.grant", body(scope={"scjgj.business_licence": ["credit_code"]}))
    with pytest.raises(UnknownField):
        w.ledger.append(w.alice, "consent.grant", body(scope={"gaj.hukou": ["salary"]}))
    with pytest.raises(UnknownDataset):
        w.ledger.append(w.alice, "consent.grant", body(scope={"gaj.nothing": ["name"]}))
    for bad in ({"max_uses": 0}, {"max_uses": True}, {"scope": {"gaj.hukou": []}}, {"purpose": ""}):
        with pytest.raises(InvalidBody):
            w.ledger.append(w.alice, "consent.grant", {**body(), **bad})
    seq = w.ledger.append(w.alice, "consent.grant", body(max_uses=2))
    g = w.state.grants[seq]
    assert (g.uses_left, g.status(now)) == (2, "live")
    assert g.status(now + 2 * DAY) == "expired" and g.status(now - DAY) == "not_yet_valid"
    assert w.state.grants_of_subject(w.alice.subject or "") == [seq]
    assert w.state.grants_of_grantee(w.mzj.kid) == [seq]


def test_consent_revoke_rules() -> None:
    w, _, g = _consent_world()
    with pytest.raises(NotSubject):
        w.ledger.revoke_grant(w.bob, g)
    with pytest.raises(UnknownEntry):
        w.ledger.revoke_grant(w.alice, g - 1)
    new = w.ledger.rotate(w.alice)  # the citizen's new key may revoke the old key's grant
    w.ledger.revoke_grant(new, g)
    with pytest.raises(StateConflict):
        w.ledger.revoke_grant(new, g)
    assert w.state.grants[g].status(w.ledger.clock) == "revoked"


# -- access.decision -------------------------------------------------------------------------------


def _allow_body(w: World, **kw: Any) -> dict[str, Any]:
    decision = w.ledger.decide(w.mzj, "gaj.hukou", "h-0001", FIELDS, DIBAO)
    body = decision_body(
        decision,
        request=w.ledger.request_id(),
        requester=w.mzj.kid,
        dataset="gaj.hukou",
        record="h-0001",
        fields=FIELDS,
        purpose=DIBAO,
    )
    body.update(kw)
    return body


def test_an_honest_allow_is_accepted_and_uses_the_grant() -> None:
    w, a, g = _consent_world()
    seq = w.ledger.append(w.service, "access.decision", _allow_body(w))
    assert w.state.decisions[seq].entry.basis == (a, g)
    assert w.state.grants[g].uses == 1
    assert w.state.decisions_of_subject(w.alice.subject or "") == [seq]
    assert w.state.decisions_of_requester(w.mzj.kid) == [seq]


def test_forged_allows_are_refused() -> None:
    w, a, g = _consent_world()
    other = w.ledger.approve(w.gaj, w.mzj, SCOPE, [HOUSING], legal_basis="个人同意", consent_required=True)
    for forged in (
        {"basis": [a]},  # the grant left out: its use would not be counted
        {"basis": [other, g]},  # an agreement that does not cover the purpose
        {"basis": [a, g - 1]},
        {"modes": {"name": "full", "id_number": "full"}},  # wider than the agreement
        {"purpose": HOUSING},
    ):
        with pytest.raises(DecisionMismatch):
            w.ledger.append(w.service, "access.decision", _allow_body(w, **forged))
    w.ledger.revoke_grant(w.alice, g)
    stale = _allow_body(w, outcome="allow", reasons=[], basis=[a, g], modes={"name": "full", "id_number": "masked"})
    with pytest.raises(DecisionMismatch) as info:
        w.ledger.append(w.service, "access.decision", stale)
    assert "consent_revoked" in str(info.value)
    assert w.state.grants[g].uses == 0


def test_decision_shape_and_context_rules() -> None:
    w, _, _ = _consent_world()
    deny = _allow_body(w, outcome="deny", reasons=["rate_limited"], basis=[], modes={})
    w.ledger.append(w.service, "access.decision", deny)  # the service may deny for its own reasons
    with pytest.raises(StateConflict):  # one decision per request
        w.ledger.append(w.service, "access.decision", deny)
    for bad in (
        {"outcome": "deny", "reasons": [], "basis": [], "modes": {}},
        {"outcome": "deny", "reasons": ["Not Snake"], "basis": [], "modes": {}},
        {"outcome": "maybe"},
        {"reasons": ["consent_missing"]},  # an allow with reasons
        {"request": "00"},
        {"subject": "sub:someone-else"},
        {"basis": [10**6]},
    ):
        with pytest.raises(InvalidBody):
            w.ledger.append(w.service, "access.decision", _allow_body(w, **bad))
    with pytest.raises(UnknownField):
        w.ledger.append(
            w.service, "access.decision", {**_allow_body(w), "fields": ["salary"], "modes": {"salary": "full"}}
        )
    with pytest.raises(KeyError_):
        w.ledger.append(w.gaj, "access.decision", _allow_body(w))
    body = _allow_body(w)
    w.ledger.commit(w.gaj, w.hukou, "h-0001", w.alice.subject or "", ALICE_VALUES)
    with pytest.raises(StateConflict):  # decided on a version that is no longer the latest
        w.ledger.append(w.service, "access.decision", body)


# -- usage.release ---------------------------------------------------------------------------------


def _release(w: World, decision: int, **kw: Any) -> int:
    d = w.state.decisions[decision].entry
    body = usage_release_body(decision=decision, requester=d.requester, record_seq=d.record_seq, sealed=b"sealed")
    body.update(kw)
    return w.ledger.append(w.service, "usage.release", body)


def test_release_rules() -> None:
    w, a, _g = _consent_world()
    allow = w.ledger.append(w.service, "access.decision", _allow_body(w))
    deny = w.ledger.append(
        w.service, "access.decision", _allow_body(w, outcome="deny", reasons=["x"], basis=[], modes={})
    )
    with pytest.raises(StateConflict):
        _release(w, deny)
    with pytest.raises(UnknownEntry):  # seq a is an agreement, not a decision
        body = usage_release_body(decision=a, requester=w.mzj.kid, record_seq=w.alice_seq, sealed=b"")
        w.ledger.append(w.service, "usage.release", body)
    with pytest.raises(InvalidBody):
        _release(w, allow, requester=w.rsj.kid)
    with pytest.raises(InvalidBody):
        _release(w, allow, record_seq=w.bob_seq)
    with pytest.raises(InvalidBody):
        _release(w, allow, delivered=base64.b64encode(b"short").decode())
    with pytest.raises(KeyError_):
        w.ledger.append(
            w.gaj,
            "usage.release",
            usage_release_body(decision=allow, requester=w.mzj.kid, record_seq=w.alice_seq, sealed=b""),
        )
    rel = _release(w, allow)
    assert w.state.decisions[allow].released_seq == rel
    with pytest.raises(StateConflict):  # at most one release per allow
        _release(w, allow)
    assert w.state.releases_of_subject(w.alice.subject or "") == [rel]
    assert w.state.releases_of_requester(w.mzj.kid) == [rel]


@pytest.mark.parametrize("what", ["grant revoked", "agreement revoked", "agreement ended", "requester key revoked"])
def test_no_release_once_the_basis_is_gone(what: str) -> None:
    w, a, g = _consent_world()
    allow = w.ledger.append(w.service, "access.decision", _allow_body(w))
    if what == "grant revoked":
        w.ledger.revoke_grant(w.alice, g)
    elif what == "agreement revoked":
        w.ledger.revoke_agreement(w.gaj, a)
    elif what == "agreement ended":
        w.ledger.clock += 400 * DAY
    else:
        w.ledger.revoke_key(w.mzj)
    with pytest.raises(StateConflict):
        _release(w, allow)


# -- objections ------------------------------------------------------------------------------------


def test_objection_rules(world: World) -> None:
    w = world
    s = w.alice.subject or ""
    body = objection_body(
        subject=s, dataset="gaj.hukou", record="h-0001", fields=["household_address"], reason="地址已变更"
    )
    with pytest.raises(NotSubject):
        w.ledger.append(w.bob, "objection.file", body)
    with pytest.raises(NotSubject):  # alice's key, bob's record
        w.ledger.append(w.alice, "objection.file", {**body, "record": "h-0002"})
    with pytest.raises(UnknownField):
        w.ledger.append(w.alice, "objection.file", {**body, "fields": ["salary"]})
    obj = w.ledger.append(w.alice, "objection.file", body)
    assert w.state.objections[obj].is_open
    assert w.state.objections_of_subject(s) == [obj] == w.state.objections_of_owner(w.gaj.kid)
    before = w.alice_seq
    with pytest.raises(NotOwner):
        w.ledger.append(
            w.mzj, "objection.resolve", resolution_body(objection=obj, outcome="rejected", reasons=["核实无误"])
        )
    with pytest.raises(InvalidBody):  # corrected needs the correcting commit
        w.ledger.append(
            w.gaj,
            "objection.resolve",
            {"objection": obj, "outcome": "corrected", "reasons": ["已更正"], "correction": None},
        )
    with pytest.raises(InvalidBody):  # the correction must come after the objection
        w.ledger.append(
            w.gaj,
            "objection.resolve",
            resolution_body(objection=obj, outcome="corrected", reasons=["x"], correction=before),
        )
    with pytest.raises(UnknownEntry):
        w.ledger.append(
            w.gaj,
            "objection.resolve",
            resolution_body(objection=obj, outcome="corrected", reasons=["x"], correction=obj),
        )
    bob_v2, _ = w.ledger.commit(w.gaj, w.hukou, "h-0002", w.bob.subject or "", ALICE_VALUES)
    with pytest.raises(InvalidBody):  # another record's commit
        w.ledger.append(
            w.gaj,
            "objection.resolve",
            resolution_body(objection=obj, outcome="corrected", reasons=["x"], correction=bob_v2),
        )
    fixed, _ = w.ledger.commit(w.gaj, w.hukou, "h-0001", s, {**ALICE_VALUES, "household_address": "杭州市滨江区"})
    res = w.ledger.append(
        w.gaj,
        "objection.resolve",
        resolution_body(objection=obj, outcome="corrected", reasons=["已更正"], correction=fixed),
    )
    o = w.state.objections[obj]
    assert (o.is_open, o.resolved_seq, o.outcome, o.correction) == (False, res, "corrected", fixed)
    with pytest.raises(StateConflict):
        w.ledger.append(w.gaj, "objection.resolve", resolution_body(objection=obj, outcome="rejected", reasons=["x"]))


# -- principals, replay, copies --------------------------------------------------------------------


def test_principal_follows_rotations(world: World) -> None:
    w = world
    first = w.mzj
    second = w.ledger.rotate(first)
    third = w.ledger.rotate(second)
    reg = w.ledger.registry
    assert principal(reg, third.kid) == principal(reg, second.kid) == principal(reg, first.kid) == first.kid
    rec = current_key(reg, first.kid)
    assert rec is not None and rec.key_id == third.kid
    assert w.state.principal_of(reg, third.kid) == first.kid
    cold = PrincipalIndex()  # never fed identity entries: rebuilds from the registry
    assert cold.of(reg, third.kid) == first.kid
    assert cold.of(reg, "f" * 32) == "f" * 32


def test_replay_rebuilds_the_same_state() -> None:
    w, _, g = _consent_world()
    allow = w.ledger.append(w.service, "access.decision", _allow_body(w))
    _release(w, allow)
    w.ledger.rotate(w.mzj)
    _, state = replay_consent(list(enumerate(w.ledger.entries)))
    assert state.grants[g].uses == w.state.grants[g].uses == 1
    assert state.releases.keys() == w.state.releases.keys()
    assert state.next_seq == w.state.next_seq == len(w.ledger.entries)


def test_apply_without_check_gives_the_same_state() -> None:
    w, _, g = _consent_world()
    w.ledger.append(w.service, "access.decision", _allow_body(w))
    fresh = ConsentState()
    reg = w.ledger.registry
    for seq, env in enumerate(w.ledger.entries):
        if env.type.startswith("identity."):
            continue  # not fed the identity entries: principals come from the registry
        fresh.apply(seq, env, reg.keys.get(env.actor), reg)
    assert fresh.grants[g].uses == 1
    assert fresh.agreements_of(w.mzj.kid) == w.state.agreements_of(w.mzj.kid)


def test_copy_is_independent() -> None:
    w, _, g = _consent_world()
    snapshot = w.state.copy()
    w.ledger.append(w.service, "access.decision", _allow_body(w))
    assert snapshot.grants[g].uses == 0 and w.state.grants[g].uses == 1


def test_entries_are_checked_in_order(world: World) -> None:
    env = world.ledger.entries[-1]
    with pytest.raises(ValueError):
        world.state.check(3, env, None, world.ledger.registry)
    with pytest.raises(ValueError):
        world.state.apply(3, env, None, world.ledger.registry)


def test_unknown_body_fields_are_refused(world: World) -> None:
    body = agreement_body(
        owner=world.gaj.kid,
        requester=world.mzj.kid,
        scope=SCOPE,
        purposes=[DIBAO],
        legal_basis="法律法规",
        consent_required=False,
        valid_from=world.ledger.clock,
        valid_until=world.ledger.clock + DAY,
    )
    with pytest.raises(InvalidBody):
        world.ledger.append(world.gaj, "agreement.approve", {**body, "note": "x"})
    assert LICENCE["personal"] is False
