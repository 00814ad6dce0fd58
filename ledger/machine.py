"""State machines the sequencer keeps beside the key registry, checked and applied entry by entry.

A machine derives state from the ledger (the consent domain is one). ``check`` refuses an entry that
may not be appended now and changes nothing; ``apply`` records an accepted entry. The offline verifier
replays the same machines, so a rule enforced at append time is also re-checked by ``verify``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pure code (the offline verifier) imports this module without a database driver
    from sqlalchemy.engine import Connection

from keys.registry import KeyRecord, KeyRegistry
from ledger.envelope import Envelope


class StateMachine(Protocol):
    def check(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None: ...

    def apply(self, seq: int, env: Envelope, signer: KeyRecord | None, registry: KeyRegistry) -> None: ...


@runtime_checkable
class Reversible(Protocol):
    """A machine that can take back the entries it applied last, newest first (``ConsentState``); a writer
    whose commit fails then drops that commit from its state instead of replaying the whole ledger."""

    def undo(self, seq: int, env: Envelope, registry: KeyRegistry) -> None: ...


@dataclass
class BuildContext:
    """What a builder sees inside the writer transaction: the next seq, current state, the block time."""

    conn: Connection
    next_seq: int
    registry: KeyRegistry
    machines: Sequence[StateMachine]
    time: datetime


Builder = Callable[[BuildContext], list[bytes]]
Attach = Callable[["Connection", list[int]], None]
# Writes derived index rows for the entries a commit applied, in the same transaction.
Indexer = Callable[["Connection", list[tuple[int, Envelope]], Sequence[StateMachine]], None]
