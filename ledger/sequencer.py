"""The sequencer: validates appends, group-commits them, and seals one block per commit.

Callers on many threads call ``append``; one of them at a time becomes the leader, takes every
append waiting, and commits them in one transaction under the database's single-writer lock,
together with the completed tree nodes and a new block whose header and checkpoint the log key
signs. Nobody is answered before that transaction commits.

An item may be a group of entries that commit all together or not at all (``append_group``), and
may carry an ``attach`` callback that writes off-ledger rows in the same transaction; a ``transact``
builder makes its entries inside the writer, against state no other writer can change meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

import nacl.signing
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from keys.registry import IDENTITY_TYPES, KeyRegistry
from ledger import schema, sodium
from ledger.block import GENESIS_PREV, MAX_CLOCK_SKEW_SECONDS, BlockHeader, sign_header
from ledger.canonical import canonical_bytes
from ledger.envelope import Envelope, parse_envelope, parse_stored, signed_bytes
from ledger.errors import DuplicateEntryError, EnvelopeError, LedgerError, SignatureError
from ledger.machine import Attach, BuildContext, Builder, Indexer, Reversible, StateMachine
from ledger.note import Checkpoint, sign_note, signer_vkey
from ledger.store import StorageConflict, StorageError, Store
from ledger.timefmt import format_ts, now, parse_ts
from ledger.tree import BatchNodes, CompactRange, leaf_hash, root_nodes

ENTRY_COLUMNS = ("seq", "leaf", "leaf_hash", "type", "actor", "ts", "height")
NODE_COLUMNS = ("level", "idx", "hash")
BLOCK_COLUMNS = ("height", "tree_size", "header", "checkpoint")
# Told of each commit: its entries, the writer transaction's seconds and the block signing's. Must not raise.
Observer = Callable[[list[Envelope], float, float], None]
# Told when the cached state was rebuilt from the whole ledger ("replay": entries, seconds) or a batch that
# did not commit was taken back off it ("rollback": entries, seconds). Must not raise.
CacheObserver = Callable[[str, int, float], None]


class Receipt(NamedTuple):
    """What an acknowledged append gets: where it is and the checkpoint that seals it.

    A named tuple: one is made for every entry on the commit path, where a frozen dataclass's
    ``__init__`` costs three times as much.
    """

    seq: int
    leaf_hash: bytes
    height: int
    tree_size: int
    checkpoint: str
    proofs: BatchNodes | None = None  # the inclusion proof against ``checkpoint`` comes from here

    def inclusion(self) -> list[bytes] | None:
        """The entry's inclusion proof in the tree of ``tree_size`` (None if the receipt holds no nodes)."""
        return None if self.proofs is None else self.proofs.inclusion(self.seq, self.tree_size)


class _Pending:
    """One item in flight: entries committed together or not at all, or a builder that makes them.

    ``wake`` is held until the item is done or its thread must lead.
    """

    __slots__ = ("attach", "build", "done", "envs", "hashes", "result", "sig_ok", "wake")

    def __init__(
        self,
        envs: list[Envelope],
        sig_ok: list[bool],
        *,
        build: Builder | None = None,
        attach: Attach | None = None,
    ) -> None:
        self.envs = envs
        self.hashes = [leaf_hash(env.leaf) for env in envs]
        self.sig_ok = sig_ok
        self.build = build
        self.attach = attach
        self.result: list[Receipt] | LedgerError | None = None
        self.done = False
        self.wake = threading.Lock()
        self.wake.acquire()


@dataclass(slots=True)
class _Plan:
    """A batch checked and applied to the cached state, with what its commit writes."""

    accepted: list[_Pending]
    first_seq: int
    new_size: int
    height: int
    header: BlockHeader | None
    checkpoint: str
    entry_rows: list[tuple[int, bytes, bytes, str, str, str, int]]
    node_rows: list[tuple[int, int, bytes]]
    proofs: BatchNodes | None = None
    seal_seconds: float = 0.0  # signing the block header and checkpoint (for the observer)
    # What the plan applied to the cached state, oldest first, and the cache's frontier and head before
    # it: enough to take the plan back off the cache (``Sequencer._rollback``) if it does not commit.
    applied: list[tuple[int, Envelope]] = field(default_factory=list)
    before: tuple[CompactRange, BlockHeader | None] | None = None

    def hash_seqs(self) -> dict[bytes, int]:
        return {row[2]: row[0] for row in self.entry_rows}


class _Commit:
    """A commit whose leader handed the lead over before its COMMIT returned."""

    __slots__ = ("_done", "hashes", "ok", "plan")

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.hashes = plan.hash_seqs()  # leaf hash -> seq of the entries it commits (duplicates are refused)
        self.ok = False
        self._done = threading.Lock()
        self._done.acquire()

    def finish(self, *, ok: bool) -> None:
        self.ok = ok
        self._done.release()

    def wait(self) -> None:
        with self._done:
            pass


class _Moved(Exception):
    """Another writer appended since the cached head this batch was planned on."""


class _Poisoned(Exception):
    """A group failed after part of it changed the cached state: roll the batch back, retry without it."""

    def __init__(self, item: _Pending, error: LedgerError) -> None:
        super().__init__(str(error))
        self.item = item
        self.error = error


def _outcome(p: _Pending) -> Receipt | LedgerError:
    if isinstance(p.result, LedgerError):
        return p.result
    assert isinstance(p.result, list)
    return p.result[0]


class LogKeyMismatch(LedgerError):
    status = 500


class Sequencer:
    """Group-committing appender for one log. Thread-safe; several processes may each run one."""

    def __init__(
        self,
        store: Store,
        log_key: nacl.signing.SigningKey,
        origin: str,
        *,
        max_batch: int = 4000,
        clock: Callable[[], datetime] = now,
        machines: Callable[[], list[StateMachine]] | None = None,
        index: Indexer | None = None,
        observe: Observer | None = None,
        own_keys: Iterable[bytes] = (),
        on_cache: CacheObserver | None = None,
    ) -> None:
        """``own_keys``: Ed25519 public keys of the keys this process signs builders' entries with. A
        builder's entry whose actor is registered with one of them is not verified again: the process
        made the signature with that key, so it verifies by construction (an entry naming another actor,
        or signed before its key is registered, is checked as usual)."""
        self.store = store
        self.log_key = log_key
        self.origin = origin
        self.vkey = signer_vkey(origin, log_key)
        self.max_batch = max_batch
        self._clock = clock
        self._make_machines = machines
        self._index = index
        self._observe = observe
        self._on_cache = on_cache
        self._own = frozenset(own_keys)
        self._mutex = threading.Lock()
        self._queue: list[_Pending] = []
        self._leader = False  # some thread is committing; the queue waits for it to hand over
        # Plan the next batch during the previous COMMIT: off once another writer shows, and for an
        # in-memory SQLite database (each connection would see its own database).
        self._in_memory = store.is_sqlite and store.engine.url.database in (None, "", ":memory:")
        self._pipeline = not self._in_memory
        self._committing: _Commit | None = None  # the commit handed over before its COMMIT returned
        self._reset()

    def _reset(self) -> None:
        self._registry = KeyRegistry()
        self._machines: list[StateMachine] = self._make_machines() if self._make_machines else []
        self._scanned = 0  # entries below this seq are reflected in _registry
        self._size = -1
        self._frontier = CompactRange()
        self._head: BlockHeader | None = None
        self._recheck = False  # a commit was taken back: read the head under the lock before planning again

    # -- public ---------------------------------------------------------------------------------
    def append(self, leaf: bytes, *, attach: Attach | None = None) -> Receipt:
        """Append one signed envelope; return once committed and sealed, or raise ``LedgerError``.

        ``attach(conn, [seq])`` runs inside the committing transaction (off-ledger rows that must
        commit with the entry or not at all).
        """
        item = self._prepare(leaf)
        item.attach = attach
        return self._submit(item)[0]

    def append_group(self, leaves: list[bytes], *, attach: Attach | None = None) -> list[Receipt]:
        """Append ``leaves`` as consecutive entries of one commit, all or none."""
        envs = [self._prepare(leaf) for leaf in leaves]
        item = _Pending([p.envs[0] for p in envs], [p.sig_ok[0] for p in envs], attach=attach)
        return self._submit(item)

    def transact(self, build: Builder, *, attach: Attach | None = None) -> list[Receipt]:
        """Run ``build`` inside the writer transaction and append what it returns, all or none.

        The builder sees the state as of its own position in the commit, so decisions it makes
        cannot race with other writers (a use of a consent is counted exactly once).
        """
        return self._submit(_Pending([], [], build=build, attach=attach))

    def transact_many(self, builds: Sequence[Builder]) -> list[list[Receipt] | LedgerError]:
        """``transact`` for several builders at once, committed together where they fit; one result each,
        in order: the builder's receipts, or the error that refused it (the others go on without it)."""
        items = [_Pending([], [], build=build) for build in builds]
        self._wait(items)
        out: list[list[Receipt] | LedgerError] = []
        for p in items:
            assert p.result is not None
            out.append(p.result)
        return out

    def append_many(
        self, leaves: list[bytes], attaches: Sequence[Attach | None] | None = None
    ) -> list[Receipt | LedgerError]:
        """Append several envelopes, committed together where they fit; one result each, in order.

        ``attaches``: one ``attach`` (or None) per envelope, as ``append`` takes."""
        pending: list[_Pending | LedgerError] = []
        for i, leaf in enumerate(leaves):
            try:
                item = self._prepare(leaf)
            except LedgerError as exc:
                pending.append(exc)
                continue
            item.attach = attaches[i] if attaches is not None else None
            pending.append(item)
        ready = [p for p in pending if isinstance(p, _Pending)]
        self._wait([*ready])
        return [p if isinstance(p, LedgerError) else _outcome(p) for p in pending]

    def warm(self) -> None:
        """Build the cached state now (at 10^6 entries a replay of tens of seconds) rather than at the
        first append; nothing if appends are under way (they build it) or it is built. A failure is
        left for the first append to report."""
        if self._in_memory:
            return
        with self._mutex:
            if self._leader:
                return
            self._leader = True
        try:
            if self._size < 0:
                self._catch_up()
        except (LedgerError, SQLAlchemyError, OSError):
            pass
        finally:
            self._pass_lead()

    def public_key(self, kid: str) -> bytes | None:
        return self._registry.public_key(kid)

    def cached_state(self) -> tuple[KeyRegistry, Sequence[StateMachine]]:
        """The key registry and state machines as this writer last committed or synced them.

        Exact only on the thread that leads commits, between commits (the writer process's loop);
        anywhere else a guess that a builder must check again inside the writer (its ``BuildContext``).
        """
        return self._registry, self._machines

    # -- internals ------------------------------------------------------------------------------
    def _prepare(self, leaf: bytes, *, in_writer: bool = False) -> _Pending:
        if in_writer and self._own:
            # A builder's entry that this process signed with its own key (``sign_envelope``, which
            # makes canonical bytes) is read as a stored entry is: neither re-checked nor re-verified.
            made = parse_stored(leaf)
            if self._registry.public_key(made.actor) in self._own:
                return _Pending([made], [True])
        env = parse_envelope(leaf)
        pub = self._registry.public_key(env.actor)
        # A cached key is the right key (key ids are hashes of keys). Verified in the caller's
        # thread, outside the writer, without the GIL; a builder's entries, on the committing thread
        # inside the writer, holding it (getting it back would stall the whole batch).
        if pub is None:
            return _Pending([env], [False])
        if not sodium.verify(pub, signed_bytes(env), env.sig, release_gil=not in_writer):
            raise SignatureError("signature does not verify")
        return _Pending([env], [True])

    def _submit(self, item: _Pending) -> list[Receipt]:
        self._wait([item])
        if isinstance(item.result, LedgerError):
            raise item.result
        assert isinstance(item.result, list)
        return item.result

    def _wait(self, items: list[_Pending]) -> None:
        """Queue ``items`` and return when all are done, leading commits whenever it is our turn.

        The first thread to find no leader leads: it takes everything waiting (up to ``max_batch``),
        commits it, wakes exactly the threads it answered and hands the lead to the thread owning the
        next item waiting. Each item's thread sleeps on the item's own lock (no thundering herd).
        """
        if not items:
            return
        with self._mutex:
            self._queue.extend(items)
            lead = not self._leader
            self._leader = True
        if lead:
            self._lead()
        for p in items:
            while not p.done:
                p.wake.acquire()
                if not p.done:  # woken without an answer: the lead was handed to us
                    self._lead()

    def _lead(self) -> None:
        prev = self._committing
        if prev is not None:
            with self._mutex:
                builder_first = bool(self._queue) and self._queue[0].build is not None
            if builder_first:
                # A builder runs inside the writer, so not before the commit in flight returns: take
                # the batch after it, and everything that queued meanwhile commits with it.
                prev.wait()
        with self._mutex:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
        handed = False

        def hand_over() -> None:
            """Pass the lead to the thread of the next item waiting (or to whoever comes next)."""
            nonlocal handed
            if handed:
                return
            handed = True
            self._pass_lead()

        try:
            todo = batch
            while todo:
                try:
                    self._commit(todo, hand_over)
                    todo = []
                except _Poisoned as bad:
                    bad.item.result = bad.error
                    todo = [p for p in todo if p is not bad.item]
                    for p in todo:
                        p.result = None
        finally:
            for p in batch:
                p.done = True
            hand_over()
            for p in batch:
                p.wake.release()

    def _pass_lead(self) -> None:
        """Hand the lead to the thread of the next item waiting, or leave it to whoever comes next."""
        with self._mutex:
            successor = self._queue[0] if self._queue else None
            self._leader = successor is not None
        if successor is not None:
            successor.wake.release()

    def _sync(
        self,
        conn: Connection,
        size: int,
        head: BlockHeader | None,
        recent: list[tuple[int, bytes, bytes]] | None = None,
    ) -> None:
        """Bring the cached frontier and registry up to the database's current size.

        ``recent``: the entries from the cached size on, as read with the writer lock
        (``Store.locked_recent``). When they are all of them, the frontier is extended with their leaf
        hashes and checked against the head's root, instead of two more queries inside the lock.
        """
        cold, started = self._size == -1, time.perf_counter()
        if cold:
            meta = Store.meta(conn)
            if meta.get("log_key") not in (None, self.vkey.encode()):
                raise LogKeyMismatch("this log key is not the one the ledger was initialised with")
        frontier = self._extended(recent, size, head)
        if frontier is None:
            nodes = Store.nodes(conn, root_nodes(size))
            frontier = CompactRange(size, [nodes[n] for n in root_nodes(size)])
            recent = None
        if recent is not None:
            entries: Iterable[tuple[int, bytes]] = ((seq, leaf) for seq, leaf, _ in recent)
        elif self._machines:
            entries = Store.entries_between(conn, self._scanned, size)
        else:
            entries = Store.entries_of_types(conn, IDENTITY_TYPES, self._scanned)
        try:
            for seq, leaf in entries:
                env = parse_stored(leaf)
                if self._machines:
                    signer = None if seq == 0 else self._registry.signer(env, seq)
                    self._registry.apply(seq, env)
                    for m in self._machines:
                        m.apply(seq, env, signer, self._registry)
                elif env.type in IDENTITY_TYPES:
                    self._registry.apply(seq, env)
        except BaseException:
            self._reset()  # applied part of the way (a read cut off): nothing says where the cache stands
            raise
        self._frontier = frontier
        self._scanned = size
        self._size = size
        self._head = head
        if cold and self._on_cache is not None:
            self._on_cache("replay", size, time.perf_counter() - started)

    def _extended(
        self, recent: list[tuple[int, bytes, bytes]] | None, size: int, head: BlockHeader | None
    ) -> CompactRange | None:
        """The cached frontier extended by ``recent`` to ``size``, if they are exactly the entries
        missing from the cache and the result has the head's root; None otherwise (read the nodes)."""
        start = self._size
        if recent is None or head is None or start < 0 or self._scanned != start or len(recent) != size - start:
            return None
        if recent and (recent[0][0] != start or recent[-1][0] != size - 1):
            return None
        frontier = CompactRange(start, self._frontier.hashes)
        for _seq, _leaf, digest in recent:
            frontier.append(digest)
        return frontier if frontier.root() == head.root else None

    def _head_is_current(self) -> bool:
        """Whether the database's newest block is the cached head (False when it cannot be read)."""
        head = self._head
        if head is None:
            return False
        try:
            with self.store.engine.connect() as conn:
                return Store.head_position(conn) == (head.height, head.tree_size)
        except SQLAlchemyError:
            return False

    def _catch_up(self) -> None:
        """Replay what is on the ledger beyond the cache before queueing for the writer lock (on the
        primary, outside any write), so that inside the lock only what was committed meanwhile is left
        to replay: with several writers, what the others committed since our last commit; with a cold
        cache (a process starting, or a commit that could not be taken back), the whole ledger, which
        at 10^6 entries takes tens of seconds that no other writer should wait for. Sealed rows never
        change, so reading them outside the lock is safe."""
        with self.store.engine.connect() as conn:
            found = Store.head(conn)
            if found is not None and found[0].tree_size > self._size:
                self._sync(conn, found[0].tree_size, found[0])

    def _failed_before(self) -> _Plan | None:
        """Wait for the commit handed over before ours; if it failed, its plan (still on the cache)."""
        prev = self._committing
        if prev is None:
            return None
        prev.wait()
        self._committing = None
        return None if prev.ok else prev.plan

    def _undo(self, entries: Sequence[tuple[int, Envelope]]) -> bool:
        """Take ``entries``, the last ones applied to the cached registry and machines, back off them
        (newest first); False, with the cache reset, where a machine cannot or the cache is not where
        they left it."""
        registry, machines = self._registry, self._machines
        reversible = [m for m in machines if isinstance(m, Reversible)]
        if len(reversible) != len(machines):
            self._reset()
            return False
        try:
            for seq, env in reversed(entries):
                for m in reversed(reversible):
                    m.undo(seq, env, registry)
                registry.undo(seq, env)
        except Exception:
            self._reset()
            return False
        return True

    def _rollback(self, plan: _Plan) -> None:
        """Take a plan that will not commit back off the cache: the cache is then the ledger as it was
        before the plan (at 10^6 entries, instead of a replay of the whole ledger: tens of seconds). The
        next commit reads the head under the lock first, in case the commit did land after all."""
        if plan.before is None:
            return  # nothing was applied
        if self._size != plan.new_size:
            self._reset()  # the cache is not where the plan left it
            return
        started = time.perf_counter()
        if self._undo(plan.applied):
            self._size = self._scanned = plan.first_seq
            self._frontier, self._head = plan.before
            self._recheck = True
            if self._on_cache is not None:
                self._on_cache("rollback", len(plan.applied), time.perf_counter() - started)

    def _commit(self, batch: list[_Pending], hand_over: Callable[[], None]) -> None:
        """Commit ``batch`` and set each item's result; ``hand_over`` passes the lead on.

        Pipelined (the usual case): the batch is checked and applied to the cached state, its rows,
        tree nodes and signed block made, while the previous leader's COMMIT (its fsync) is still
        running; then, in the writer transaction, the rows are written and the lead is handed over
        before our own COMMIT, so the next leader prepares its batch during it. Nobody is answered
        before their COMMIT returns, and a batch is written only after the one before it committed.
        A batch with a builder (which must run inside the writer transaction), a cold cache, or a
        ledger that another writer appends to, takes the classic path: everything inside the writer.
        """
        plan: _Plan | None = None
        if self._pipeline and self._head is not None and not self._recheck and all(p.build is None for p in batch):
            failure: Exception | None = None
            try:
                plan = self._plan(None, batch)
            except Exception as exc:  # the plan took back what it had applied
                failure = exc
            failed = self._failed_before()
            if failed is not None:  # planned on top of a commit that failed: take both back, go classic
                if plan is not None:
                    self._rollback(plan)
                self._rollback(failed)
                for p in batch:
                    p.result = None
                plan = None
            elif isinstance(failure, _Poisoned):
                raise failure
            elif failure is not None:
                self._fail(batch, failure)
                return
            elif plan is not None and not plan.accepted:
                # Nothing to write, so no insert clash would tell that another writer moved the head
                # since the cache: a refusal stands only if the cache was current.
                if self._head_is_current():
                    return
                for p in batch:
                    p.result = None
                plan = None
        else:
            failed = self._failed_before()
            if failed is not None:
                self._rollback(failed)
        committing: _Commit | None = None
        try:
            if plan is None and not self._in_memory and (self._size < 0 or not self._pipeline):
                self._catch_up()
            began = time.perf_counter()
            # Another writer may have committed since our cache: its entries come with the lock.
            recent_from = self._size if plan is None and self._size >= 0 else None
            with self.store.writer(recent_from=recent_from) as conn:
                if plan is None:
                    head = self._head
                    row = Store.locked_head(conn)
                    if row is None:
                        head = None
                    elif head is None or row.position != (head.height, head.tree_size):
                        head = row.parsed()[0]  # another writer sealed a block since ours (or nothing is cached)
                    size = head.tree_size if head else 0
                    if size != self._size:
                        self._sync(conn, size, head, Store.locked_recent(conn))
                    else:
                        self._head = head  # the same tree: the head as read under the lock
                    self._recheck = False
                    plan = self._plan(conn, batch)
                    if not plan.accepted:
                        return
                    self._write(conn, plan)
                else:
                    # No head query: if another writer appended since our plan, the entry with our
                    # first seq exists and the insert clashes (a duplicate leaf stored meanwhile by
                    # another writer clashes too); either way the classic path sorts it out.
                    self._write(conn, plan, first_insert_moved=True)
                committing = self._committing = _Commit(plan)
                hand_over()
        except _Moved:
            # Another writer appended between our plan and our transaction: the cache holds our
            # uncommitted batch. Take it back, and keep to the classic path from now on (pipelining
            # pays for one writer; with several, the classic path syncs incrementally).
            self._pipeline = False
            assert plan is not None
            self._rollback(plan)
            for p in batch:
                p.result = None
            self._commit(batch, hand_over)
            return
        except _Poisoned:
            if plan is not None:  # refused while writing (an attach): the plan was applied
                self._rollback(plan)
            raise
        except Exception as exc:
            if committing is not None:  # handed over: the next leader finds the failure, takes it back
                committing.finish(ok=False)
            elif plan is not None:
                self._rollback(plan)
            self._fail(batch, exc)
            return
        assert committing is not None
        committing.finish(ok=True)
        if self._observe is not None:
            self._observe([e for p in plan.accepted for e in p.envs], time.perf_counter() - began, plan.seal_seconds)
        i = plan.first_seq
        height, size, checkpoint, proofs = plan.height, plan.new_size, plan.checkpoint, plan.proofs
        for p in plan.accepted:
            p.result = [Receipt(i + k, h, height, size, checkpoint, proofs) for k, h in enumerate(p.hashes)]
            i += len(p.hashes)

    def _fail(self, batch: list[_Pending], exc: Exception) -> None:
        """A commit failed (the cache already without it): answer every item not already refused with
        the error; re-raise bugs."""
        err = exc if isinstance(exc, LedgerError) else StorageError(f"append failed: {exc}")
        for p in batch:
            if not isinstance(p.result, LedgerError):
                p.result = err
        if not isinstance(exc, (LedgerError, OSError)) and not isinstance(exc, SQLAlchemyError):
            raise exc

    def _plan(self, conn: Connection | None, batch: list[_Pending]) -> _Plan:
        """Check and apply ``batch`` to the cached state; make its rows and its signed block.

        ``conn`` is the writer transaction (classic path) or None (pipelined: duplicates are looked
        up on a separate connection and among the entries of the commit still in flight).
        """
        head = self._head
        size = self._size
        when = self._clock()
        if head is not None:
            head_time = parse_ts(head.time)
            if head_time > when:
                when = head_time  # block time never goes back, whatever this clock says
        block_time = format_ts(when)
        skew = timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
        earliest, latest = format_ts(when - skew), format_ts(when + skew)
        height = head.height + 1 if head else 0
        hashes = [h for p in batch for h in p.hashes]
        if conn is not None:
            known = Store.seqs_of_hashes(conn, hashes)
        else:
            known = self.store.seqs_committed(hashes)  # on the primary: a read replica may lag
            inflight = self._committing.hashes if self._committing is not None else {}
            known.update({h: inflight[h] for h in hashes if h in inflight})
        registry = self._registry
        machines = self._machines
        accepted: list[_Pending] = []
        seen: set[bytes] = set()
        built_items: list[_Pending] = []
        applied: list[tuple[int, Envelope]] = []  # what this plan applied to the cache, in order
        halfway = False  # an entry is applied to some of the state and not yet to the rest
        seq = size
        try:
            for p in batch:
                mark = len(applied)
                try:
                    if p.build is not None:
                        assert conn is not None
                        context = BuildContext(conn, seq, registry, machines, when)
                        built = [self._prepare(leaf, in_writer=True) for leaf in p.build(context)]
                        p.envs = [b.envs[0] for b in built]
                        p.hashes = [b.hashes[0] for b in built]
                        p.sig_ok = [b.sig_ok[0] for b in built]
                        built_items.append(p)  # looked up on the ledger once for the whole batch, below
                    at = seq
                    for env, h, sig_ok in zip(p.envs, p.hashes, p.sig_ok, strict=True):
                        if h in known or h in seen:
                            where = known.get(h)
                            raise DuplicateEntryError(
                                "entry is already on the ledger" + (f" at seq {where}" if where is not None else "")
                            )
                        if not earliest <= env.ts <= latest:  # entry_time_fits, on the fixed-width strings
                            raise EnvelopeError(
                                f"entry time {env.ts} is more than 5 minutes from the ledger time {block_time}"
                            )
                        signer = registry.check(at, env, signature_checked=sig_ok)
                        for m in machines:
                            m.check(at, env, signer, registry)
                        halfway = True
                        registry.apply(at, env)
                        for m in machines:
                            m.apply(at, env, signer, registry)
                        applied.append((at, env))
                        halfway = False
                        seen.add(h)
                        at += 1
                except LedgerError as exc:
                    if halfway:
                        raise _Poisoned(p, exc) from exc
                    if len(applied) > mark:  # a group refused part-way: take back the entries it applied
                        undone = len(applied) - mark
                        if not self._undo(applied[mark:]):
                            applied.clear()
                            raise _Poisoned(p, exc) from exc  # the cache was reset: the batch starts again
                        del applied[mark:]
                        seen.difference_update(p.hashes[:undone])
                    p.result = exc
                    continue
                if not p.envs:
                    p.result = []
                    continue
                accepted.append(p)
                seq = at
            if built_items and conn is not None:
                # One query for what the builders made (each is a statement on the committing thread,
                # which waits for the GIL after it): a clash drops that item and the batch runs again.
                stored = Store.seqs_of_hashes(conn, [h for p in built_items for h in p.hashes])
                for p in built_items:
                    clash = next((h for h in p.hashes if h in stored), None)
                    if clash is not None and p in accepted:
                        error = DuplicateEntryError(f"entry is already on the ledger at seq {stored[clash]}")
                        raise _Poisoned(p, error)
        except BaseException:
            # Leave the cache as the plan found it: take back what was applied, or (an entry applied
            # part of the way, which no rule does) start again from the ledger.
            if halfway:
                self._reset()
            elif applied:
                self._undo(applied)
            raise
        if not accepted:
            return _Plan(accepted, size, size, height, None, "", [], [])
        node_rows: list[tuple[int, int, bytes]] = []
        entry_rows: list[tuple[int, bytes, bytes, str, str, str, int]] = []
        before = self._frontier
        frontier = CompactRange(size, before.hashes)
        proofs = BatchNodes(list(zip(root_nodes(size), frontier.hashes, strict=True)), node_rows)
        i = size
        for p in accepted:
            frontier.extend_rows(p.hashes, node_rows)
            for env, h in zip(p.envs, p.hashes, strict=True):
                entry_rows.append((i, env.leaf, h, env.type, env.actor, env.ts, height))
                i += 1
        new_size = i
        root = frontier.root()
        sealing = time.perf_counter()
        header = sign_header(
            self.log_key,
            height=height,
            tree_size=new_size,
            root=root,
            prev=head.digest() if head else GENESIS_PREV,
            first_seq=size,
            time=block_time,
        )
        checkpoint = sign_note(Checkpoint(self.origin, new_size, root).text(), self.origin, self.log_key)
        self._size = self._scanned = new_size
        self._frontier = frontier
        self._head = header
        sealed = time.perf_counter() - sealing
        return _Plan(
            accepted,
            size,
            new_size,
            height,
            header,
            checkpoint,
            entry_rows,
            node_rows,
            proofs,
            sealed,
            applied,
            (before, head),
        )

    def _write(self, conn: Connection, plan: _Plan, *, first_insert_moved: bool = False) -> None:
        """Write a plan's rows, its block, the attached rows and the index, in the writer transaction.

        With ``first_insert_moved``, a clash on the entries (the first insert) raises ``_Moved``.
        """
        assert plan.header is not None
        try:
            Store.insert_rows(conn, schema.entries, ENTRY_COLUMNS, plan.entry_rows)
        except StorageConflict as exc:
            if first_insert_moved:
                raise _Moved from exc
            raise
        Store.insert_rows(conn, schema.tree_nodes, NODE_COLUMNS, plan.node_rows)
        Store.insert_rows(
            conn,
            schema.blocks,
            BLOCK_COLUMNS,
            [(plan.height, plan.new_size, canonical_bytes(plan.header.to_json()).decode(), plan.checkpoint)],
        )
        i = plan.first_seq
        for p in plan.accepted:
            seqs = list(range(i, i + len(p.envs)))
            i += len(p.envs)
            if p.attach is not None:
                try:
                    p.attach(conn, seqs)
                except LedgerError as exc:
                    raise _Poisoned(p, exc) from exc
        if self._index is not None:
            applied = [(plan.first_seq + k, env) for k, env in enumerate(e for p in plan.accepted for e in p.envs)]
            self._index(conn, applied, self._machines)
