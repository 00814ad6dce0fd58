"""Fixtures of the storage tests: a second node on the ledger, as a second API worker or replica."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.node import Node


@pytest.fixture
def other(node: Node, ledger_url: str, shulian_home: Path) -> Iterator[Node]:
    """A second node on ``node``'s ledger; its sequencer is cold (has read nothing) until it first appends."""
    second = Node(ledger_url, shulian_home)
    try:
        yield second
    finally:
        second.close()
