"""Read side of a log: the latest checkpoint and RFC 9162 proofs, each in O(log n) node reads."""

from __future__ import annotations

from dataclasses import dataclass

from ledger.errors import NotFoundError, RangeError
from ledger.note import VerifierKey
from ledger.store import Store
from ledger.tree import fold_range, plan_consistency, plan_inclusion, root_nodes


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    tree_size: int
    hashes: list[bytes]


class LogReader:
    """Serves sealed state only: every committed entry is covered by the block of its commit.

    Proofs and roots read a read replica (SHULIAN_DB_READ) when it holds the tree size asked for,
    never past the size the primary has sealed (``Store.sealed_reader``); the checkpoint comes from
    the primary.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._meta: dict[str, str] | None = None

    def meta(self) -> dict[str, str]:
        if self._meta is None:
            with self.store.reader() as conn:
                meta = Store.meta(conn)
            if "origin" not in meta:
                raise NotFoundError("the ledger is not initialised (run `shulian init`)")
            self._meta = meta
        return self._meta

    @property
    def origin(self) -> str:
        return self.meta()["origin"]

    @property
    def vkey(self) -> VerifierKey:
        return VerifierKey.parse(self.meta()["log_key"])

    def checkpoint(self) -> tuple[int, str]:
        """The newest block's tree size and checkpoint note."""
        with self.store.reader() as conn:
            head = Store.head(conn)
        if head is None:
            raise NotFoundError("no block has been sealed yet")
        return head[0].tree_size, head[1]

    def size(self) -> int:
        with self.store.reader() as conn:
            head = Store.head(conn)
        return head[0].tree_size if head else 0

    def root(self, size: int) -> bytes:
        with self.store.sealed_reader(size) as (conn, head):
            latest = _size(head)
            if not 0 <= size <= latest:
                raise RangeError(f"size {size} outside 0..{latest}")
            nodes = Store.nodes(conn, root_nodes(size))
        return fold_range([nodes[n] for n in root_nodes(size)])

    def inclusion(self, leaf_hash: bytes, size: int | None = None) -> InclusionProof:
        with self.store.sealed_reader(size) as (conn, head):
            latest = _size(head)
            size = latest if size is None else size
            if not 1 <= size <= latest:
                raise RangeError(f"size {size} outside 1..{latest}")
            seq = Store.seqs_of_hashes(conn, [leaf_hash]).get(leaf_hash)
            if seq is None or seq >= size:
                raise NotFoundError(f"no entry with that leaf hash in the first {size} entries")
            plan = plan_inclusion(seq, size)
            hashes = plan.assemble(Store.nodes(conn, plan.nodes))
        return InclusionProof(seq, size, hashes)

    def consistency(self, first: int, second: int) -> list[bytes]:
        with self.store.sealed_reader(second) as (conn, head):
            latest = _size(head)
            if not 1 <= first <= second <= latest:
                raise RangeError(f"need 1 <= first <= second <= {latest}, got first={first} second={second}")
            plan = plan_consistency(first, second)
            return plan.assemble(Store.nodes(conn, plan.nodes))


def _size(head: tuple[int, int] | None) -> int:
    """The tree size the primary has sealed (proofs go no further, whatever a replica holds)."""
    return head[1] if head else 0
