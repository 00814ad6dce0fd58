"""The key registry as the API sees it: replayed from the ledger and kept current incrementally."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from keys.registry import IDENTITY_TYPES, KeyRecord, KeyRegistry
from ledger import schema
from ledger.envelope import parse_envelope
from ledger.store import Store


class KeyDirectory:
    """Follows the identity entries of the ledger (any replica may append them)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.registry = KeyRegistry()
        self._scanned = 0
        self._lock = threading.Lock()

    def refresh(self) -> KeyRegistry:
        """Apply identity entries appended since the last refresh; one indexed query when none are new."""
        with self._lock, self.store.reader() as conn:
            size = conn.execute(select(func.coalesce(func.max(schema.entries.c.seq) + 1, 0))).scalar_one()
            if size > self._scanned:
                for seq, leaf in Store.entries_of_types(conn, IDENTITY_TYPES, self._scanned):
                    self.registry.apply(seq, parse_envelope(leaf))
                self._scanned = int(size)
        return self.registry

    def get(self, key_id: str) -> KeyRecord | None:
        rec = self.registry.keys.get(key_id)
        if rec is None:
            rec = self.refresh().keys.get(key_id)
        return rec

    def public_key(self, key_id: str) -> bytes | None:
        rec = self.get(key_id)
        return rec.ed25519 if rec else None
