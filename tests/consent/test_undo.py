"""``ConsentState.undo`` and ``KeyRegistry.undo`` take entries back exactly: after applying any run of
entries and undoing it newest first, the state is the one before, byte for byte (pickled, so dict order
and shared objects count too), and applying the run again gives what a straight replay gives.

The histories are the random ones of ``test_properties`` (agreements, grants, revocations, rotations,
honest and forged decisions, releases) with objections, their resolutions, new record versions and key
revocations added. A writer relies on this when a commit it had applied to its cache fails.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.compact import CompactConsentState
from consent.errors import ConsentError
from consent.objection import objection_body, resolution_body
from consent.state import ConsentState
from keys.registry import KeyRegistry
from ledger.envelope import ENTRY_TYPES, Envelope
from ledger.errors import LedgerError
from tests.consent.builder import apply, replayed
from tests.consent.conftest import ALICE_VALUES, BOB_VALUES, subject_of
from tests.consent.test_properties import CITIZENS, OPS, RECORDS, Run

MORE_OPS = st.one_of(
    OPS,
    st.tuples(st.just("object"), st.sampled_from(CITIZENS), st.sampled_from(("name", "phone"))),
    st.tuples(st.just("resolve"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("recommit"), st.sampled_from(CITIZENS)),
    st.tuples(st.just("revoke_key"), st.sampled_from(("rsj", "bob"))),
)
VALUES = {"alice": ALICE_VALUES, "bob": BOB_VALUES}


class UndoRun(Run):
    def __init__(self) -> None:
        super().__init__()
        self.objections: list[int] = []

    def play(self, op: tuple[Any, ...]) -> None:
        led, kind = self.w.ledger, op[0]
        try:
            if kind == "object":
                citizen = op[1]
                body = objection_body(
                    subject=subject_of(citizen),
                    dataset="gaj.hukou",
                    record=RECORDS[citizen],
                    fields=[op[2]],
                    reason="r",
                )
                self.objections.append(led.append(self.actor(citizen), "objection.file", body))
            elif kind == "resolve" and self.objections:
                seq = self.objections[op[1] % len(self.objections)]
                correction = None
                if op[2]:  # corrected: a new version of the record objected to, then the resolution naming it
                    o = led.state.objections[seq].objection
                    citizen = next(c for c, r in RECORDS.items() if r == o.record)
                    correction = self.recommit(citizen)
                outcome = "corrected" if correction is not None else "rejected"
                body = resolution_body(objection=seq, outcome=outcome, reasons=["r"], correction=correction)
                led.append(self.actor("gaj"), "objection.resolve", body)
            elif kind == "recommit":
                self.recommit(op[1])
            elif kind == "revoke_key":
                led.revoke_key(self.actor(op[1]))
            else:
                super().play(op)
        except (ConsentError, LedgerError):
            pass  # refused: nothing appended (an actor whose key is revoked, an objection resolved twice)

    def recommit(self, citizen: str) -> int:
        seq, _ = self.w.ledger.commit(
            self.actor("gaj"), self.w.hukou, RECORDS[citizen], subject_of(citizen), VALUES[citizen]
        )
        return seq


def undo(registry: KeyRegistry, state: ConsentState, seq: int, env: Envelope) -> None:
    state.undo(seq, env, registry)
    registry.undo(seq, env)


def played(ops: list[tuple[Any, ...]]) -> list[Envelope]:
    run = UndoRun()
    run.prelude()
    for op in ops:
        run.play(op)
    return run.w.ledger.entries


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MORE_OPS, min_size=1, max_size=40), st.data())
def test_undo_restores_the_state_exactly(ops: list[tuple[Any, ...]], data: st.DataObject) -> None:
    entries = played(ops)
    k = data.draw(st.integers(1, len(entries) - 1), label="start")
    m = data.draw(st.integers(1, len(entries) - k), label="entries undone")
    registry, state = replayed(entries[:k])
    before = pickle.dumps((registry, state))
    for seq in range(k, k + m):
        apply(registry, state, seq, entries[seq])
    after = pickle.dumps((registry, state))
    for seq in reversed(range(k, k + m)):
        undo(registry, state, seq, entries[seq])
    assert pickle.dumps((registry, state)) == before
    for seq in range(k, k + m):  # and the same entries applied again give the same state as before
        apply(registry, state, seq, entries[seq])
    assert pickle.dumps((registry, state)) == after
    straight = replayed(entries[: k + m])
    assert pickle.dumps(straight) == after


def test_every_entry_type_is_undone() -> None:
    """A fixed history holding every entry type, undone to the genesis one entry at a time."""
    ops: list[tuple[Any, ...]] = [
        ("grant", "alice", "rsj", ["name", "id_number"], "最低生活保障资格核查", (-1, 100), 2),
        ("decide", "rsj", "alice", ["name"], "最低生活保障资格核查", True),
        ("revoke_grant", 0),
        ("revoke_agreement", 0),
        ("object", "alice", "phone"),
        ("resolve", 0, True),
        ("object", "bob", "name"),
        ("resolve", 1, False),
        ("rotate", "mzj"),
        ("revoke_key", "bob"),
    ]
    entries = played(ops)
    types = {env.type for env in entries}
    assert types == ENTRY_TYPES
    registry, state = replayed(entries)
    snapshots = [pickle.dumps(replayed(entries[:n])) for n in range(1, len(entries))]
    for seq in reversed(range(1, len(entries))):
        undo(registry, state, seq, entries[seq])
        assert pickle.dumps((registry, state)) == snapshots[seq - 1], f"seq {seq} ({entries[seq].type})"


def test_only_the_last_entry_is_undone() -> None:
    entries = played([])
    registry, state = replayed(entries)
    last = len(entries) - 1
    with pytest.raises(ValueError, match="not the last entry applied"):
        state.undo(last - 1, entries[last - 1], registry)
    with pytest.raises(ValueError, match="not the last entry applied"):
        registry.undo(last - 1, entries[last - 1])


def test_a_compact_state_does_not_undo() -> None:
    entries = played([])
    registry, state = KeyRegistry(), CompactConsentState()
    for seq, env in enumerate(entries):
        apply(registry, state, seq, env)
    with pytest.raises(NotImplementedError):
        state.undo(len(entries) - 1, entries[-1], registry)
