"""``CompactConsentState`` (what ``shulian verify`` replays) agrees with ``ConsentState`` entry by entry.

The random histories of ``test_properties`` (agreements, grants, revocations, decisions honest and
forged, releases, objections) run through a ``ConsentState`` that drives a compact twin beside it: every
check must succeed or fail alike, with the same error, and after every effect the grants and records
read back from the packed storage must equal the full state's.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.compact import CompactConsentState, DigestTable, PackedGrants, from_micros, micros, record_digest
from consent.grant import ConsentGrant
from consent.state import ConsentState, GrantState
from keys.registry import KeyRecord, KeyRegistry
from ledger.envelope import Envelope
from tests.consent.test_properties import DIBAO, OPS, Run


class Shadowed(ConsentState):
    """A full consent state whose every check and effect is repeated on a compact one and compared."""

    def __init__(self) -> None:
        super().__init__()
        self.shadow = CompactConsentState()

    def check(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None:
        try:
            super().check(seq, env, signer, registry)
        except Exception as exc:
            with pytest.raises(type(exc)) as found:
                self.shadow.check(seq, env, signer, registry)
            assert str(found.value) == str(exc)
            raise
        self.shadow.check(seq, env, signer, registry)

    def apply(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None:
        super().apply(seq, env, signer, registry)
        self.shadow.apply(seq, env, signer, registry)
        self.compare()

    def compare(self) -> None:
        shadow = self.shadow
        assert sorted(shadow.grants) == sorted(self.grants)
        assert list(shadow.grant_seqs()) == list(self.grant_seqs()) == sorted(self.grants)  # ascending
        for seq, g in self.grants.items():
            assert shadow.grants[seq] == g
            assert shadow.grants_for(g.grant.subject, g.grantee, next(iter(g.grant.scope))) == self.grants_for(
                g.grant.subject, g.grantee, next(iter(g.grant.scope))
            )
        for (dataset, record), rec in self.records.items():
            head = shadow.require_record(dataset, record)
            assert (head.subject, head.seq, head.version) == (rec.subject, rec.seq, rec.version)
            for s in rec.seqs:
                assert shadow._is_commit_of(s, dataset, record) is True
            for other in self.records.values():
                if other is not rec:
                    assert all(shadow._is_commit_of(s, dataset, record) is False for s in other.seqs)
        assert shadow._record("gaj.hukou", "no-such-record") is None
        assert shadow._is_commit_of(10**9, "gaj.hukou", "h-0001") is None
        for subject in {g.grant.subject for g in self.grants.values()}:
            assert shadow.grants_of_subject(subject) == self.grants_of_subject(subject)
        for grantee in {g.grantee for g in self.grants.values()}:
            assert shadow.grants_of_grantee(grantee) == self.grants_of_grantee(grantee)


def shadowed_run() -> Run:
    """A ``Run`` whose ledger state (its setup replayed) is a ``Shadowed`` one from here on."""
    run = Run()
    led = run.w.ledger
    registry = KeyRegistry()
    state = Shadowed()
    for seq, env in enumerate(led.entries):
        signer = registry.check(seq, env)
        state.check(seq, env, signer, registry)
        registry.apply(seq, env)
        state.apply(seq, env, signer, registry)
    led.state = state
    return run


@settings(max_examples=int(os.environ.get("SHULIAN_COMPACT_EXAMPLES", "60")), deadline=None)
@given(st.booleans(), st.lists(OPS, min_size=1, max_size=30))
def test_compact_state_agrees_with_the_full_state(prelude: bool, ops: list[tuple[Any, ...]]) -> None:
    run = shadowed_run()
    if prelude:
        run.prelude()
    for op in ops:
        run.play(op)
    state = run.w.ledger.state
    assert isinstance(state, Shadowed)
    state.compare()


def test_a_refused_entry_is_refused_alike() -> None:
    """A grant revocation by someone else and a second revocation fail with the same error on both."""
    run = shadowed_run()
    run.prelude()
    led = run.w.ledger
    seq, citizen = run.grants[0]
    other = "bob" if citizen == "alice" else "alice"
    with pytest.raises(Exception, match="only the subject"):
        led.revoke_grant(run.actor(other), seq)
    led.revoke_grant(run.actor(citizen), seq)
    with pytest.raises(Exception, match="already revoked"):
        led.revoke_grant(run.actor(citizen), seq)


def test_allows_releases_and_exhaustion_alike() -> None:
    """Allows resting on a grant use it up (max_uses 2), releases follow, the third request is denied."""
    run = shadowed_run()
    run.prelude()
    for _ in range(3):
        run.play(("decide", "rsj", "alice", ["name"], DIBAO, True))
    assert run.counts["honest allow"] == 2 and run.counts["honest deny consent_uses_exhausted"] == 1
    assert run.counts["release accepted"] == 2
    state = run.w.ledger.state
    assert isinstance(state, Shadowed)
    assert state.shadow.grants[run.grants[0][0]].uses == 2


def test_digest_table_finds_what_it_holds_through_growth() -> None:
    table = DigestTable(capacity=8)
    keys = [record_digest("ds.a", f"r-{i}") for i in range(5000)]
    for i, k in enumerate(keys):
        assert table.get(k) is None
        assert table.add(k) == i
    assert all(table.get(k) == i for i, k in enumerate(keys))
    assert table.get(record_digest("ds.a", "r-5000")) is None
    with pytest.raises(ValueError):
        table.add(keys[17])


def test_record_digest_separates_the_two_ids() -> None:
    assert record_digest("ab", "c") != record_digest("a", "bc")


def test_packed_grants_rebuild_exact_states() -> None:
    start = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
    grants = PackedGrants()
    made = []
    for i, max_uses in enumerate((None, 1, 1_000_000)):
        g = ConsentGrant(
            subject=f"sub:{i % 2}",
            grantee="0" * 31 + str(i),
            scope={"gaj.hukou": ("name", "id_number"), "rsj.social": ("name",)},
            purpose="低保资格认定",
            valid_from=start + timedelta(microseconds=i),
            valid_until=start + timedelta(days=365 * 200),
            max_uses=max_uses,
        )
        grants.add(10 + i, g, "f" * 32)
        made.append(GrantState(10 + i, g, "f" * 32))
    grants.uses[1] = 1
    made[1].uses = 1
    grants.revoked[2] = 99
    made[2].revoked_seq = 99
    assert [grants[s] for s in grants] == made
    assert 11 in grants and 13 not in grants
    assert grants.for_subject("sub:0", "f" * 32, "rsj.social") == [made[0], made[2]]
    assert grants.for_subject("sub:0", "f" * 32, "other.set") == []
    with pytest.raises(ValueError):
        grants.add(12, made[0].grant, "f" * 32)  # not after the last seq


def test_micros_round_trip_is_exact() -> None:
    for at in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 29, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ):
        assert from_micros(micros(at)) == at


def test_compact_state_refuses_what_it_does_not_keep() -> None:
    state = CompactConsentState()
    with pytest.raises(NotImplementedError):
        state.latest_commit("gaj.hukou", "h-0001")
    with pytest.raises(NotImplementedError):
        state.records_of_subject("sub:x")
    with pytest.raises(NotImplementedError):
        state.commit(3)
    assert isinstance(state.copy(), CompactConsentState)
