"""Random histories of agreements, grants, revocations, rotations, decisions (honest and forged) and
releases, fed through ``check``/``apply``. Whatever got accepted is then audited by an independent
oracle that re-reads the accepted entries: no allow and no release stands without a live agreement
covering it and, where the agreement requires it, a live consent with a use left.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consent.decision import decision_body
from consent.errors import ConsentError
from consent.release import usage_release_body
from ledger.envelope import Envelope
from ledger.errors import LedgerError
from ledger.timefmt import parse_ts
from tests.consent.builder import Actor
from tests.consent.conftest import DIBAO, HOUSING, World, build_world

REQUESTERS = ("mzj", "rsj")
CITIZENS = ("alice", "bob")
RECORDS = {"alice": "h-0001", "bob": "h-0002"}
FIELD_POOL = ("name", "id_number", "gender", "phone")
PURPOSES = (DIBAO, HOUSING)
HOUR = timedelta(hours=1)

fields_st = st.lists(st.sampled_from(FIELD_POOL), min_size=1, max_size=4, unique=True)
wanted_st = st.lists(st.sampled_from(FIELD_POOL[:2]), min_size=1, max_size=2, unique=True)  # what is asked for
scope_st = st.lists(st.sampled_from(FIELD_POOL), min_size=2, max_size=4, unique=True)  # what is approved
modes_st = st.lists(st.sampled_from(("full", "masked")), min_size=4, max_size=4)
window_st = st.tuples(st.integers(-48, 12), st.integers(1, 200))

OPS = st.one_of(
    st.tuples(
        st.just("approve"),
        st.sampled_from(REQUESTERS),
        scope_st,
        st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2, unique=True),
        st.booleans(),
        window_st,
        modes_st,
    ),
    st.tuples(st.just("revoke_agreement"), st.integers(0, 30)),
    st.tuples(
        st.just("grant"),
        st.sampled_from(CITIZENS),
        st.sampled_from(REQUESTERS),
        scope_st,
        st.sampled_from(PURPOSES),
        window_st,
        st.one_of(st.none(), st.integers(1, 3)),
    ),
    st.tuples(st.just("revoke_grant"), st.integers(0, 30)),
    st.tuples(
        st.just("decide"),
        st.sampled_from(REQUESTERS),
        st.sampled_from(CITIZENS),
        wanted_st,
        st.sampled_from(PURPOSES),
        st.booleans(),  # release it at once
    ),
    st.tuples(
        st.just("forge"),
        st.sampled_from(REQUESTERS),
        st.sampled_from(CITIZENS),
        wanted_st,
        st.sampled_from(PURPOSES),
        st.integers(0, 30),
        st.one_of(st.none(), st.integers(0, 30)),
        modes_st,
    ),
    st.tuples(st.just("release"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("advance"), st.integers(1, 24)),
    st.tuples(st.just("rotate"), st.sampled_from(REQUESTERS + CITIZENS)),
)


class Run:
    """Plays operations against a fresh world, remembering what was appended."""

    def __init__(self) -> None:
        self.w: World = build_world()
        self.agreements: list[int] = []
        self.grants: list[tuple[int, str]] = []  # (seq, citizen name)
        self.decisions: list[int] = []
        self.allows: list[int] = []
        self.counts: Counter[str] = Counter()

    def prelude(self) -> None:
        """A starting point where allows are possible: a duty agreement, a consent one, two grants."""
        led, gaj = self.w.ledger, self.actor("gaj")
        everything = {"gaj.hukou": {f: "masked" if f == "id_number" else "full" for f in FIELD_POOL}}
        self.agreements.append(
            led.approve(gaj, self.actor("mzj"), everything, list(PURPOSES), end=led.clock + 200 * HOUR)
        )
        self.agreements.append(
            led.approve(
                gaj,
                self.actor("rsj"),
                everything,
                list(PURPOSES),
                legal_basis="个人同意",
                consent_required=True,
                end=led.clock + 200 * HOUR,
            )
        )
        rsj = self.actor("rsj")
        alice = led.grant(self.actor("alice"), rsj, {"gaj.hukou": ["name", "id_number"]}, DIBAO, max_uses=2)
        bob = led.grant(self.actor("bob"), rsj, {"gaj.hukou": ["name"]}, HOUSING, end=led.clock + 100 * HOUR)
        self.grants += [(alice, "alice"), (bob, "bob")]

    def actor(self, name: str) -> Actor:
        return self.w.ledger.actors[name]

    def attempt(self, what: str, actor: Actor, entry_type: str, body: dict[str, Any]) -> int | None:
        try:
            seq = self.w.ledger.append(actor, entry_type, body)
        except (ConsentError, LedgerError):
            self.counts[f"{what} refused"] += 1
            return None
        self.counts[f"{what} accepted"] += 1
        return seq

    def release(self, seq: int) -> None:
        d = self.w.ledger.state.decisions[seq].entry
        body = usage_release_body(decision=seq, requester=d.requester, record_seq=d.record_seq, sealed=b"x")
        self.attempt("release", self.actor("service"), "usage.release", body)

    def play(self, op: tuple[Any, ...]) -> None:
        led = self.w.ledger
        kind = op[0]
        if kind == "approve":
            _, req, fields, purposes, consent, (start, length), modes = op
            scope = {"gaj.hukou": {f: modes[i] for i, f in enumerate(fields)}}
            basis = "个人同意" if consent else "履行职责"
            start_at = led.clock + start * HOUR
            self.agreements.append(
                led.approve(
                    self.actor("gaj"),
                    self.actor(req),
                    scope,
                    list(purposes),
                    legal_basis=basis,
                    consent_required=consent,
                    start=start_at,
                    end=start_at + length * HOUR,
                )
            )
        elif kind == "revoke_agreement" and self.agreements:
            seq = self.agreements[op[1] % len(self.agreements)]
            self.attempt("agreement.revoke", self.actor("gaj"), "agreement.revoke", {"agreement": seq, "reason": "r"})
        elif kind == "grant":
            _, citizen, req, fields, purpose, (start, length), max_uses = op
            start_at = led.clock + start * HOUR
            seq = led.grant(
                self.actor(citizen),
                self.actor(req),
                {"gaj.hukou": list(fields)},
                purpose,
                start=start_at,
                end=start_at + length * HOUR,
                max_uses=max_uses,
            )
            self.grants.append((seq, citizen))
        elif kind == "revoke_grant" and self.grants:
            seq, citizen = self.grants[op[1] % len(self.grants)]
            self.attempt("consent.revoke", self.actor(citizen), "consent.revoke", {"grant": seq, "reason": "r"})
        elif kind == "decide":
            _, req, citizen, fields, purpose, release_now = op
            decision, seq = led.log_decision(self.actor(req), "gaj.hukou", RECORDS[citizen], list(fields), purpose)
            self.counts[f"honest {decision.outcome} {' '.join(decision.reasons)}".strip()] += 1  # always accepted
            self.decisions.append(seq)
            if decision.allowed:
                self.allows.append(seq)
            if release_now:
                self.release(seq)
        elif kind == "forge" and self.agreements:
            _, req, citizen, fields, purpose, a, g, modes = op
            basis = [self.agreements[a % len(self.agreements)]]
            if g is not None and self.grants:
                basis.append(self.grants[g % len(self.grants)][0])
            rec = led.state.latest_commit("gaj.hukou", RECORDS[citizen])
            body = {
                "request": led.request_id(),
                "requester": self.actor(req).kid,
                "dataset": "gaj.hukou",
                "record": RECORDS[citizen],
                "record_seq": rec.seq,
                "subject": rec.subject,
                "fields": list(fields),
                "purpose": purpose,
                "outcome": "allow",
                "reasons": [],
                "basis": basis,
                "modes": {f: modes[i] for i, f in enumerate(fields)},
            }
            seq = self.attempt("forged allow", self.actor("service"), "access.decision", body)
            if seq is not None:
                self.decisions.append(seq)
                self.allows.append(seq)
        elif kind == "release" and self.decisions:
            pool = self.allows if op[2] and self.allows else self.decisions
            self.release(pool[op[1] % len(pool)])
        elif kind == "advance":
            led.clock += op[1] * HOUR
        elif kind == "rotate":
            self.w.ledger.rotate(self.actor(op[1]))


def audit(entries: list[Envelope]) -> Counter[str]:
    """An independent reading of the accepted entries; raises AssertionError on any unjustified use."""
    back: dict[str, str] = {}
    keys: dict[str, list[Any]] = {}  # key id -> [valid_from, valid_until, role]
    approvals: dict[int, dict[str, Any]] = {}
    agreement_revoked: set[int] = set()
    grants: dict[int, dict[str, Any]] = {}
    grant_revoked: set[int] = set()
    uses: Counter[int] = Counter()
    records: dict[tuple[str, str], tuple[int, str]] = {}
    allows: dict[int, dict[str, Any]] = {}
    released: set[int] = set()
    seen: Counter[str] = Counter()

    def principal(kid: str) -> str:
        while kid in back:
            kid = back[kid]
        return kid

    def within(body: dict[str, Any], t: datetime) -> bool:
        return parse_ts(body["valid_from"]) <= t < parse_ts(body["valid_until"])

    for seq, env in enumerate(entries):
        b, t = env.body, env.time
        if env.type == "identity.register":
            keys[b["key_id"]] = [t, None, b["role"]]
        elif env.type == "identity.rotate":
            back[b["key_id"]] = b["replaces"]
            keys[b["key_id"]] = [t, None, keys[b["replaces"]][2]]
            keys[b["replaces"]][1] = t
        elif env.type == "identity.revoke":
            keys[b["key_id"]][1] = t
        elif env.type == "record.commit":
            records[(b["dataset"], b["record"])] = (seq, b["subject"])
        elif env.type == "agreement.approve":
            approvals[seq] = b
        elif env.type == "agreement.revoke":
            assert b["agreement"] in approvals and b["agreement"] not in agreement_revoked
            agreement_revoked.add(b["agreement"])
        elif env.type == "consent.grant":
            grants[seq] = b
        elif env.type == "consent.revoke":
            assert b["grant"] in grants and b["grant"] not in grant_revoked
            grant_revoked.add(b["grant"])
        elif env.type == "access.decision" and b["outcome"] == "deny":
            assert b["reasons"]
        elif env.type == "access.decision":
            seen["allow"] += 1
            start, end, role = keys[b["requester"]]
            assert role == "department" and start <= t and (end is None or t < end), "requester key not valid"
            ds, fields = b["dataset"], b["fields"]
            assert records[(ds, b["record"])] == (b["record_seq"], b["subject"])
            a = approvals[b["basis"][0]]
            assert b["basis"][0] not in agreement_revoked, "allow on a revoked agreement"
            assert within(a, t), "allow outside the agreement's window"
            assert principal(a["requester"]) == principal(b["requester"])
            assert all(f in a["scope"][ds] for f in fields) and b["purpose"] in a["purposes"]
            assert b["modes"] == {f: a["scope"][ds][f] for f in fields}
            if a["consent_required"]:
                seen["allow with consent"] += 1
                assert len(b["basis"]) == 2, "allow without the required consent"
                g = grants[b["basis"][1]]
                assert b["basis"][1] not in grant_revoked, "allow on a revoked consent"
                assert within(g, t), "allow outside the consent's window"
                assert g["subject"] == b["subject"] and principal(g["grantee"]) == principal(b["requester"])
                assert all(f in g["scope"].get(ds, ()) for f in fields) and g["purpose"] == b["purpose"]
                assert g["max_uses"] is None or uses[b["basis"][1]] < g["max_uses"], "consent used up"
                uses[b["basis"][1]] += 1
            else:
                assert len(b["basis"]) == 1
            allows[seq] = b
        elif env.type == "usage.release":
            seen["release"] += 1
            d = allows[b["decision"]]  # KeyError: a release of something that is not an allow
            assert b["decision"] not in released, "two releases of one allow"
            released.add(b["decision"])
            assert b["requester"] == d["requester"] and b["record_seq"] == d["record_seq"]
            assert d["basis"][0] not in agreement_revoked and within(approvals[d["basis"][0]], t)
            if len(d["basis"]) == 2:
                assert d["basis"][1] not in grant_revoked and within(grants[d["basis"][1]], t)
    return seen


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(OPS, min_size=1, max_size=40))
def test_no_allow_or_release_without_a_live_basis(prelude: bool, ops: list[tuple[Any, ...]]) -> None:
    run = Run()
    if prelude:
        run.prelude()
    for op in ops:
        run.play(op)
    seen = audit(run.w.ledger.entries)
    for name, n in seen.items():
        if n:
            event(name)
    for name, n in run.counts.items():
        if n:
            event(name)


def test_the_oracle_catches_an_unjustified_allow() -> None:
    """The audit is not vacuous: a state that let a forged allow through would fail it."""
    run = Run()
    run.play(("approve", "mzj", ["name"], [DIBAO], True, (-1, 10), ["full"] * 4))
    agreement = run.agreements[0]
    led = run.w.ledger
    body = decision_body(
        led.decide(run.actor("mzj"), "gaj.hukou", "h-0001", ["name"], DIBAO),
        request=led.request_id(),
        requester=run.actor("mzj").kid,
        dataset="gaj.hukou",
        record="h-0001",
        fields=["name"],
        purpose=DIBAO,
    )
    assert body["outcome"] == "deny"  # consent is required and missing
    forged = {**body, "outcome": "allow", "reasons": [], "basis": [agreement], "modes": {"name": "full"}}
    from ledger.envelope import parse_envelope, sign_envelope
    from ledger.timefmt import format_ts

    env = parse_envelope(
        sign_envelope(run.actor("service").signing, "access.decision", forged, ts=format_ts(led.clock))
    )
    try:
        audit([*led.entries, env])
    except AssertionError as exc:
        assert "consent" in str(exc)
    else:
        raise AssertionError("the oracle let an allow without consent through")
