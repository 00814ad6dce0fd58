"""Store.locked_head: the newest block as the writer lock found it (PostgreSQL: read in the lock's round trip)."""

from __future__ import annotations

import threading
import time

from api.node import Node
from ledger import schema
from ledger.store import HeadRow, Store


def test_locked_head_is_the_newest_block(node: Node) -> None:
    with node.store.reader() as conn:
        head = Store.head(conn)
    assert head is not None
    with node.store.writer() as conn:
        row = Store.locked_head(conn)
        again = Store.locked_head(conn)  # asked twice: read again, the same
    assert isinstance(row, HeadRow) and row == again
    assert row.parsed() == head
    assert row.position == (head[0].height, head[0].tree_size)


def test_a_queued_writer_sees_the_block_committed_before_it(node: Node) -> None:
    """A writer queued for the lock sees the block committed by the one holding it: the head is read after
    the lock is granted (PostgreSQL: in READ COMMITTED, the statement after the lock takes its snapshot then)."""
    with node.store.reader() as conn:
        before = Store.head(conn)
    assert before is not None
    found: list[HeadRow | None] = []
    queued = threading.Event()

    def second() -> None:
        queued.set()
        with node.store.writer() as conn:
            found.append(Store.locked_head(conn))

    with node.store.writer() as conn:
        Store.locked_head(conn)
        thread = threading.Thread(target=second)
        thread.start()
        queued.wait(5)
        time.sleep(0.3)  # the second writer is queued for the lock now
        assert not found
        height = before[0].height + 1
        conn.execute(
            schema.blocks.insert(),
            [{"height": height, "tree_size": before[0].tree_size + 1, "header": "{}", "checkpoint": "test"}],
        )
    thread.join(10)
    assert found and found[0] is not None
    assert found[0].height == height and found[0].header == "{}"
