"""Two sequencers on one ledger (as two API workers): each replays what the other committed.

The second node's sequencer is warm (it has committed before), so it learns of the other's entries
by replaying them from storage, before and inside its writer transaction; keys registered or revoked
and datasets registered through the other must count at once.
"""

from __future__ import annotations

import pytest

from api.node import Node
from ledger.envelope import sign_envelope
from ledger.errors import KeyError_, LedgerError
from tests.support import audit_verify, check_ledger, dataset_body, record_entry, register, ts_at


def test_each_sequencer_sees_what_the_other_committed(node: Node, other: Node, ledger_url: str) -> None:
    first_dept = register(node, "first-dept", "department")
    other.append(record_entry(first_dept, 0))  # cold: reads everything
    node.append(record_entry(first_dept, 1))  # the first node now holds a stale head
    late = register(node, "late-dept", "department")  # registered after the other's last commit
    dataset = dataset_body(late.key_id, 2)
    node.append(sign_envelope(late.signing, "dataset.register", dataset))
    seqs = [other.append(record_entry(late, 3)).seq, node.append(record_entry(late, 4)).seq]
    assert seqs[1] == seqs[0] + 1
    # a dataset registered through one node is known to the other's consent rules
    with pytest.raises(LedgerError, match="already registered"):
        other.append(sign_envelope(late.signing, "dataset.register", dataset, ts=ts_at(1)))
    # a key revoked through one node is refused by the other
    admin = node.local_key("admin")
    node.append(sign_envelope(admin.signing, "identity.revoke", {"key_id": late.key_id}, ts=ts_at(1)))
    with pytest.raises(KeyError_, match="revoked"):
        other.append(record_entry(late, 5, ts=ts_at(2)))
    summary = check_ledger(ledger_url)
    audit_verify(ledger_url, summary.size)
