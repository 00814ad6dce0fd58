"""The vault keeps opened record versions in memory under the record commitment they open: a version
written by a transaction that rolled back, then written again with other values, is never answered
from memory, and the cache is keyed so that what it answers is what the database holds."""

from __future__ import annotations

import pytest

from api.node import Node
from ledger.errors import NotFoundError


class Rollback(Exception):
    pass


def test_a_cached_version_is_served_only_for_its_commitment(node: Node) -> None:
    vault = node.vault
    first = {"name": "张三"}, {"name": ["c2FsdA==", "c2FsdA=="]}
    second = {"name": "李四"}, {"name": ["b3RoZXI=", "b3RoZXI="]}
    with pytest.raises(Rollback), node.store.writer() as conn:
        vault.put(conn, dataset="d", record="r", version=1, commit_seq=10, values=first[0], salts=first[1])
        assert vault.get(conn, dataset="d", record="r", version=1, commitment=b"C1") == first
        raise Rollback  # the version never commits, but it is in memory under C1
    with node.store.writer() as conn:
        with pytest.raises(NotFoundError):
            vault.get(conn, dataset="d", record="r", version=1)  # nothing without a commitment to key it
        vault.put(conn, dataset="d", record="r", version=1, commit_seq=10, values=second[0], salts=second[1])
    with node.store.writer() as conn:
        assert vault.get(conn, dataset="d", record="r", version=1, commitment=b"C2") == second
        assert vault.get(conn, dataset="d", record="r", version=1) == second
    with node.store.writer() as conn:  # served from memory now: the same answer without the row
        assert vault.get(conn, dataset="d", record="r", version=1, commitment=b"C2") == second


def test_a_dataset_key_from_a_rolled_back_transaction_is_stored_with_the_next_record(node: Node) -> None:
    """The first record of a dataset whose transaction rolled back: the next one stores the key again,
    so a fresh process (nothing in memory) opens what was committed."""
    values, salts = {"name": "王五"}, {"name": ["c2FsdA==", "c2FsdA=="]}
    with pytest.raises(Rollback), node.store.writer() as conn:
        node.vault.put(conn, dataset="new", record="r", version=1, commit_seq=20, values=values, salts=salts)
        raise Rollback
    with node.store.writer() as conn:
        node.vault.put(conn, dataset="new", record="r", version=1, commit_seq=20, values=values, salts=salts)
    fresh = Node(node.store.url, node.home)
    try:
        with fresh.store.writer() as conn:
            assert fresh.vault.get(conn, dataset="new", record="r", version=1) == (values, salts)
    finally:
        fresh.close()
