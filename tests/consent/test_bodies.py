"""Body parsers and builders: round trips, the legal-basis rules, and garbage that must fail cleanly."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.agreement import (
    LEGAL_BASES,
    agreement_body,
    commitment_message,
    parse_agreement,
    sign_commitment,
    verify_commitment,
)
from consent.catalogue import parse_dataset
from consent.errors import CommitmentSignatureError, InvalidBody
from consent.grant import grant_body, parse_grant
from consent.objection import parse_resolution
from consent.record import parse_record_commit
from consent.state import CONSENT_TYPES
from ledger.canonical import canonical_bytes
from ledger.envelope import parse_envelope, sign_envelope
from ledger.errors import LedgerError
from ledger.timefmt import format_ts
from tests.consent.builder import DAY, START, seeded_key
from tests.consent.conftest import HUKOU, World, build_world

KID = "a" * 32
SCOPE = {"gaj.hukou": {"name": "full", "id_number": "masked"}}


def test_legal_bases_are_the_four_named() -> None:
    assert set(LEGAL_BASES) == {"法律法规", "履行职责", "告知承诺", "个人同意"}
    assert set(LEGAL_BASES.values()) == {"law", "statutory_duty", "notification_commitment", "consent"}


def test_agreement_body_round_trip() -> None:
    body = agreement_body(
        owner=KID,
        requester="b" * 32,
        scope=SCOPE,
        purposes=["核查"],
        legal_basis="法律法规",
        consent_required=False,
        valid_from=START,
        valid_until=START + DAY,
    )
    ag = parse_agreement(body)
    assert ag.scope == SCOPE and ag.purposes == ("核查",) and ag.commitment is None
    assert ag.in_window(START) and not ag.in_window(START + DAY)
    assert ag.covers("gaj.hukou", ["name"], "核查") and not ag.covers("gaj.hukou", ["gender"], "核查")
    assert body["valid_from"] == "2026-01-01T00:00:00.000000Z"


def test_commitment_signature_covers_statement_requester_scope_purposes() -> None:
    key = seeded_key("requester")
    c = sign_commitment(
        key.signing if hasattr(key, "signing") else key, statement="承诺", scope=SCOPE, purposes=["核查"]
    )
    body = agreement_body(
        owner=KID,
        requester=c["signer"],
        scope=SCOPE,
        purposes=["核查"],
        legal_basis="告知承诺",
        consent_required=False,
        valid_from=START,
        valid_until=START + DAY,
        commitment=c,
    )
    ag = parse_agreement(body)
    verify_commitment(ag, bytes(key.verify_key))
    message = commitment_message(statement="承诺", requester=c["signer"], scope=SCOPE, purposes=["核查"])
    assert message == canonical_bytes(
        {"statement": "承诺", "requester": c["signer"], "scope": SCOPE, "purposes": ["核查"]}
    )
    with pytest.raises(CommitmentSignatureError):
        verify_commitment(ag, bytes(seeded_key("other").verify_key))
    no_commitment = parse_agreement({**body, "legal_basis": "法律法规", "commitment": None})
    with pytest.raises(CommitmentSignatureError):
        verify_commitment(no_commitment, bytes(key.verify_key))


def test_legal_basis_rules() -> None:
    base: dict[str, Any] = {
        "owner": KID,
        "requester": KID,
        "scope": SCOPE,
        "purposes": ["核查"],
        "consent_required": False,
        "valid_from": format_ts(START),
        "valid_until": format_ts(START + DAY),
        "commitment": None,
    }
    with pytest.raises(InvalidBody, match="consent_required"):
        parse_agreement({**base, "legal_basis": "个人同意"})
    with pytest.raises(InvalidBody, match="commitment"):
        parse_agreement({**base, "legal_basis": "告知承诺"})
    assert parse_agreement({**base, "legal_basis": "个人同意", "consent_required": True}).consent_required
    assert not parse_agreement({**base, "legal_basis": "履行职责"}).consent_required
    for bad in (
        {"purposes": ["a", "a"]},
        {"purposes": "核查"},
        {"scope": {}},
        {"scope": {"gaj.hukou": {}}},
        {"scope": {"gaj": {"name": "full"}}},
        {"valid_from": "2026-01-01"},
        {"owner": "A" * 32},
        {"commitment": {"statement": "x"}},
    ):
        with pytest.raises(InvalidBody):
            parse_agreement({**base, "legal_basis": "法律法规", **bad})


def test_grant_body_round_trip() -> None:
    body = grant_body(
        subject="sub:x",
        grantee=KID,
        scope={"gaj.hukou": ["name"]},
        purpose="p",
        valid_from=START,
        valid_until=START + DAY,
    )
    g = parse_grant(body)
    assert g.max_uses is None and g.covers("gaj.hukou", ["name"], "p") and not g.covers("gaj.hukou", ["name"], "q")
    with pytest.raises(InvalidBody):
        grant_body(
            subject="sub:x",
            grantee=KID,
            scope={"gaj.hukou": ["name"]},
            purpose="p",
            valid_from=START,
            valid_until=START,
        )
    with pytest.raises(InvalidBody):
        parse_grant({**body, "scope": {"gaj.hukou": ["name", "name"]}})


def test_names_many_entries_repeat_are_one_string_in_memory() -> None:
    """A state replayed from 10^6 entries holds each subject, key id, dataset, purpose and field name
    once, not once per entry (each entry's JSON is parsed into strings of its own)."""
    bodies = [
        grant_body(
            subject="sub:" + "ab" * 30,
            grantee=KID,
            scope={"gaj.hukou": ["name", "household_address"]},
            purpose="最低生活保障资格核查",
            valid_from=START + i * DAY,
            valid_until=START + (i + 1) * DAY,
        )
        for i in range(2)
    ]
    a, b = (parse_grant(orjson.loads(orjson.dumps(body))) for body in bodies)
    assert a.subject is b.subject and a.grantee is b.grantee and a.purpose is b.purpose
    (ds_a, fields_a), (ds_b, fields_b) = next(iter(a.scope.items())), next(iter(b.scope.items()))
    assert ds_a is ds_b and all(x is y for x, y in zip(fields_a, fields_b, strict=True))
    commit = {
        "dataset": "gaj.hukou",
        "record": "h-0001",
        "subject": "sub:" + "ab" * 30,
        "commitment": "A" * 43 + "=",
        "version": 1,
        "replaces": None,
    }
    c, d = (parse_record_commit(orjson.loads(orjson.dumps(commit))) for _ in range(2))
    assert c.dataset is d.dataset is ds_a and c.subject is d.subject is a.subject


def test_other_parsers_refuse_wrong_types() -> None:
    with pytest.raises(InvalidBody):
        parse_dataset({**HUKOU, "owner": KID, "personal": 1})
    with pytest.raises(InvalidBody):
        parse_record_commit(
            {"dataset": "a.b", "record": "r 1", "subject": "s", "commitment": "", "version": 1, "replaces": None}
        )
    with pytest.raises(InvalidBody):
        parse_resolution({"objection": 1, "outcome": "rejected", "reasons": ["x"], "correction": 5})
    with pytest.raises(InvalidBody):
        parse_resolution({"objection": -1, "outcome": "rejected", "reasons": ["x"], "correction": None})


# -- fuzz: garbage bodies fail with a LedgerError, never a crash ----------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
FIELD_NAMES = {
    "dataset.register": ["dataset", "owner", "title", "fields", "level", "personal", "update_frequency"],
    "record.commit": ["dataset", "record", "subject", "commitment", "version", "replaces"],
    "agreement.approve": [
        "owner",
        "requester",
        "scope",
        "purposes",
        "legal_basis",
        "consent_required",
        "valid_from",
        "valid_until",
        "commitment",
    ],
    "agreement.revoke": ["agreement", "reason"],
    "consent.grant": ["subject", "grantee", "scope", "purpose", "valid_from", "valid_until", "max_uses"],
    "consent.revoke": ["grant", "reason"],
    "access.decision": [
        "request",
        "requester",
        "dataset",
        "record",
        "record_seq",
        "subject",
        "fields",
        "purpose",
        "outcome",
        "reasons",
        "basis",
        "modes",
    ],
    "usage.release": ["decision", "requester", "record_seq", "delivered"],
    "objection.file": ["subject", "dataset", "record", "fields", "reason"],
    "objection.resolve": ["objection", "outcome", "reasons", "correction"],
}
SIGNERS = {
    "dataset.register": "gaj",
    "record.commit": "gaj",
    "agreement.approve": "gaj",
    "agreement.revoke": "gaj",
    "consent.grant": "alice",
    "consent.revoke": "alice",
    "access.decision": "service",
    "usage.release": "service",
    "objection.file": "alice",
    "objection.resolve": "gaj",
}
WORLD: World = build_world()


def test_fuzz_tables_name_every_consent_type() -> None:
    assert set(FIELD_NAMES) == set(SIGNERS) == CONSENT_TYPES


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(CONSENT_TYPES)), st.data())
def test_garbage_bodies_raise_ledger_errors_only(entry_type: str, data: st.DataObject) -> None:
    names = FIELD_NAMES[entry_type]
    body = data.draw(st.fixed_dictionaries(dict.fromkeys(names, JSON)) | st.dictionaries(st.sampled_from(names), JSON))
    actor = WORLD.ledger.actors[SIGNERS[entry_type]]
    env = parse_envelope(sign_envelope(actor.signing, entry_type, body, ts=WORLD.ledger.ts()))
    seq = WORLD.ledger.next_seq
    signer = WORLD.ledger.registry.check(seq, env)
    try:
        WORLD.state.check(seq, env, signer, WORLD.ledger.registry)
    except LedgerError:
        return
    raise AssertionError(f"garbage {entry_type} body accepted: {body}")


def _valid_bodies() -> tuple[World, dict[str, dict[str, Any]]]:
    """A world with one of everything, and a body of each type that it would accept next."""
    from consent.decision import decision_body
    from consent.objection import objection_body, resolution_body
    from consent.record import record_commit_body
    from consent.release import usage_release_body
    from tests.consent.conftest import DIBAO

    w = build_world()
    led = w.ledger
    a = led.approve(w.gaj, w.mzj, SCOPE, [DIBAO], legal_basis="个人同意", consent_required=True)
    g = led.grant(w.alice, w.mzj, {"gaj.hukou": ["name", "id_number"]}, DIBAO, max_uses=5)
    _, allow = led.log_decision(w.mzj, "gaj.hukou", "h-0001", ["name"], DIBAO)
    s = w.alice.subject or ""
    obj = led.append(
        w.alice,
        "objection.file",
        objection_body(subject=s, dataset="gaj.hukou", record="h-0001", fields=["name"], reason="错"),
    )
    decision = led.decide(w.mzj, "gaj.hukou", "h-0001", ["name", "id_number"], DIBAO)
    bodies: dict[str, dict[str, Any]] = {
        "dataset.register": {**HUKOU, "dataset": "gaj.fresh", "owner": w.gaj.kid},
        "record.commit": record_commit_body(
            dataset="gaj.hukou", record="h-0001", subject=s, commitment=b"\1" * 32, version=2, replaces=w.alice_seq
        ),
        "agreement.approve": agreement_body(
            owner=w.gaj.kid,
            requester=w.rsj.kid,
            scope=SCOPE,
            purposes=["p"],
            legal_basis="告知承诺",
            consent_required=False,
            valid_from=led.clock,
            valid_until=led.clock + DAY,
            commitment=sign_commitment(w.rsj.signing, statement="承诺", scope=SCOPE, purposes=["p"]),
        ),
        "agreement.revoke": {"agreement": a, "reason": "r"},
        "consent.grant": grant_body(
            subject=s,
            grantee=w.rsj.kid,
            scope={"gaj.hukou": ["name"]},
            purpose="p",
            valid_from=led.clock,
            valid_until=led.clock + DAY,
            max_uses=2,
        ),
        "consent.revoke": {"grant": g, "reason": "r"},
        "access.decision": decision_body(
            decision,
            request="0" * 64,
            requester=w.mzj.kid,
            dataset="gaj.hukou",
            record="h-0001",
            fields=["name", "id_number"],
            purpose=DIBAO,
        ),
        "usage.release": usage_release_body(decision=allow, requester=w.mzj.kid, record_seq=w.alice_seq, sealed=b"s"),
        "objection.file": objection_body(
            subject=s, dataset="gaj.hukou", record="h-0001", fields=["phone"], reason="错"
        ),
        "objection.resolve": resolution_body(objection=obj, outcome="rejected", reasons=["核实无误"]),
    }
    return w, bodies


FULL_WORLD, VALID = _valid_bodies()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _check(entry_type: str, body: dict[str, Any]) -> None:
    led = FULL_WORLD.ledger
    actor = led.actors[SIGNERS[entry_type]]
    env = parse_envelope(sign_envelope(actor.signing, entry_type, body, ts=led.ts()))
    seq = led.next_seq
    FULL_WORLD.state.check(seq, env, led.registry.check(seq, env), led.registry)


@pytest.mark.parametrize("entry_type", sorted(CONSENT_TYPES))
def test_the_valid_bodies_are_valid(entry_type: str) -> None:
    _check(entry_type, VALID[entry_type])


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(CONSENT_TYPES)), st.data())
def test_one_mutated_part_fails_cleanly(entry_type: str, data: st.DataObject) -> None:
    """Replace one part of a valid body, at any depth, by arbitrary JSON: accepted or a LedgerError."""
    body = VALID[entry_type]
    path = data.draw(st.sampled_from(_paths(body)))
    mutated = _replace(body, path, data.draw(JSON))
    with contextlib.suppress(LedgerError):
        _check(entry_type, mutated)
