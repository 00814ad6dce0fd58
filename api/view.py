"""The ledger's derived state as the API reads it: key registry and consent state, kept current.

Any replica may append; before each read the view applies the entries appended since it last looked
(one indexed query when there are none). Reads hold the view's lock so they see one consistent state.
Reads that arrive while a refresh is under way share the next one: a read waiting for the lock needs
no refresh of its own once a refresh that began after it arrived has finished.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from consent.state import ConsentState
from keys.registry import IDENTITY_TYPES, KeyRecord, KeyRegistry
from ledger import schema
from ledger.envelope import parse_stored
from ledger.store import Store

_LAST_SEQ = f"SELECT max(seq) FROM {schema.entries.name}"  # noqa: S608 (constants only)
# The newest identity entry: one probe of ix_entries_type_seq per type (max() over IN would scan them all).
_PER_TYPE = [f"SELECT max(seq) AS s FROM {schema.entries.name} WHERE type = '{t}'" for t in sorted(IDENTITY_TYPES)]  # noqa: S608
_LAST_IDENTITY = f"SELECT max(s) FROM ({' UNION ALL '.join(_PER_TYPE)}) AS identities"  # noqa: S608 (constants only)

log = logging.getLogger("shulian.view")


class LedgerView:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.registry = KeyRegistry()
        self.state = ConsentState()
        self._scanned = 0
        self._lock = threading.RLock()
        self._refreshed = 0  # perf_counter_ns() at the start of the last refresh that completed
        self._checked = 0  # the same for the last look-up of the newest identity entry (or refresh)
        self.warmed = False  # a refresh has completed: the ledger as it then stood is in memory
        self._warming: threading.Thread | None = None

    def _refresh(self, asked: int = -1) -> None:
        """Apply what was appended since the last refresh, unless one that began after ``asked`` did."""
        if asked < self._refreshed:
            return
        started = time.perf_counter_ns()
        self._refresh_now()
        self.warmed = True
        self._refreshed = started
        self._checked = max(self._checked, started)  # it saw every identity entry too

    def _refresh_now(self) -> None:
        with self.store.reader() as conn:
            last = conn.exec_driver_sql(_LAST_SEQ).scalar()
            size = 0 if last is None else int(last) + 1
            if size <= self._scanned:
                return
            for seq, leaf in Store.entries_between(conn, self._scanned, size):
                env = parse_stored(leaf)
                signer = None if seq == 0 else self.registry.signer(env, seq)
                self.registry.apply(seq, env)
                self.state.apply(seq, env, signer, self.registry)
                self._scanned = seq + 1

    @property
    def scanned(self) -> int:
        """Entries applied so far (read without the lock: a progress figure)."""
        return self._scanned

    def warm(self, wait_s: float = 0.0) -> bool:
        """Replay the ledger into memory on a thread of its own, if no refresh has yet, rather than in the
        first read's request (at 10^6 entries that takes tens of seconds, and every request waits for
        it); wait up to ``wait_s`` for it. Whether it is done. ``/readyz`` is not ready until it is."""
        if not self.warmed:
            thread = self._warming
            if thread is None or not thread.is_alive():
                thread = self._warming = threading.Thread(target=self._warm, daemon=True, name="view-warm")
                thread.start()
            thread.join(wait_s)
        return self.warmed

    def _warm(self) -> None:
        asked = time.perf_counter_ns()
        try:
            with self._lock:
                self._refresh(asked)
        except Exception as exc:  # the database away, say: /readyz says so; the next read or warm() tries again
            log.warning("view: replaying the ledger failed: %s", " ".join(str(exc).split()))

    @contextmanager
    def read(self) -> Iterator[tuple[KeyRegistry, ConsentState]]:
        """The current registry and consent state, refreshed, under the view's lock."""
        asked = time.perf_counter_ns()
        with self._lock:
            self._refresh(asked)
            yield self.registry, self.state

    def key(self, key_id: str) -> KeyRecord | None:
        asked = time.perf_counter_ns()
        with self._lock:
            rec = self.registry.keys.get(key_id)
            if rec is None:
                self._refresh(asked)
                rec = self.registry.keys.get(key_id)
            return rec

    def current_key(self, key_id: str, *, max_age_s: float = 0.0) -> tuple[KeyRecord | None, str]:
        """A key as it stands now and its principal, for authenticating a request.

        Keys change only by identity entries, so the view is refreshed only when one is newer than
        what it has applied: a request pays one indexed look-up, not the replay of every decision and
        release appended since (the reads that need the consent state refresh it themselves), and
        requests waiting together share the look-up that began after they were asked.

        ``max_age_s``: a look-up that began up to this long before the request was asked serves it (for
        a request whose decision checks the key again on the ledger itself: an access request).
        """
        asked = time.perf_counter_ns()
        with self._lock:
            if asked - int(max_age_s * 1e9) >= self._checked:  # no look-up (or refresh) began since then
                started = time.perf_counter_ns()
                with self.store.reader() as conn:
                    newest = conn.exec_driver_sql(_LAST_IDENTITY).scalar()
                if newest is not None and int(newest) >= self._scanned:
                    self._refresh(asked)
                self._checked = max(self._checked, started)
            record = self.registry.keys.get(key_id)
            return record, self.state.principal_of(self.registry, key_id)

    def public_key(self, key_id: str) -> bytes | None:
        rec = self.key(key_id)
        return rec.ed25519 if rec else None

    def principal(self, key_id: str) -> str:
        with self._lock:
            return self.state.principal_of(self.registry, key_id)
