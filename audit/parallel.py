"""The stateless checks in worker processes, the sequential replay in this one.

Signature verification dominates (one Ed25519 verify per entry, two per block). Worker processes run
``check_entry`` and ``check_block`` (the same helpers the in-process path runs) on chunks of raw items;
this process reads the sources, hands out chunks and runs ``LedgerVerifier.run`` over the results in
order. Key ids are hashes of their public keys, so a worker may verify any entry whose signer's key it
has seen: keys reach it with each chunk (only those added since its last chunk) and from the identity
entries in its own chunks. An entry whose key it does not know yet comes back unverified and this
process verifies it. At most ``workers × depth`` chunks are in flight, so memory stays flat.

A small ledger never pays for starting processes: given its size, ``verify_streams`` starts workers
only from ``threshold`` entries on; not knowing it, the first ``threshold`` entries are checked here.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import sys
import traceback
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import TracebackType
from typing import Any

from audit.errors import BlockSourceError, EntrySourceError, WorkerError
from audit.verifier import (
    CheckedBlock,
    CheckedEntry,
    CheckedEnvelope,
    LedgerVerifier,
    Progress,
    RawBlock,
    RawEntry,
    StateMachine,
    VerificationResult,
    check_block,
    check_entry,
    learn_key,
)
from ledger.errors import LedgerError
from ledger.note import VerifierKey

DEFAULT_THRESHOLD = 20_000
CHUNK = 1024
DEPTH = 3
_POLL_SECONDS = 0.5

# What a worker sends back per entry: (leaf hash, type, ts, actor, body, sig, signature verified).
_Row = tuple[bytes, str, str, str, dict[str, Any], bytes, bool]
_Task = tuple[int, list[tuple[str, bytes]], list[RawEntry], list[RawBlock]]
_Result = tuple[int, list[_Row], tuple[int, str] | None, list[CheckedBlock], str | None]


def default_workers() -> int:
    """One worker per usable CPU, or none (check in this process) when there is only one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


def check_entry_chunk(entries: list[RawEntry], keys: dict[str, bytes]) -> tuple[list[_Row], tuple[int, str] | None]:
    """``check_entry`` over a chunk, learning keys as it goes; stops at the first fault (index, reason)."""
    rows: list[_Row] = []
    for index, (_seq, leaf) in enumerate(entries):
        try:
            env, digest, verified = check_entry(leaf, keys)
        except LedgerError as exc:
            return rows, (index, str(exc))
        rows.append((digest, env.type, env.ts, env.actor, env.body, env.sig, verified))
        learn_key(env, keys)
    return rows, None


def _worker(tasks: Any, results: Connection, log_vkey: str) -> None:
    """A worker process: check chunks until told to stop (``None``) or the replay stops listening."""
    log_key = VerifierKey.parse(log_vkey)
    keys: dict[str, bytes] = {}
    while True:
        task: _Task | None = tasks.get()
        if task is None:
            return
        tid, new_keys, entries, blocks = task
        try:
            keys.update(new_keys)
            rows, fault = check_entry_chunk(entries, keys)
            checked = [check_block(label, value, note, log_key) for label, value, note in blocks]
            result: _Result = (tid, rows, fault, checked, None)
        except Exception:
            result = (tid, [], None, [], traceback.format_exc())
        try:
            results.send(result)
        except OSError:  # the replay has finished and closed its end
            return


class _Pending:
    __slots__ = ("block_error", "blocks", "entries", "entry_error")

    def __init__(self) -> None:
        self.entries: list[RawEntry] = []
        self.blocks: list[RawBlock] = []
        self.entry_error: EntrySourceError | None = None
        self.block_error: BlockSourceError | None = None


class ParallelFeed:
    """Checked entry and block streams for ``LedgerVerifier.run``: checked here first, then by workers.

    If a worker dies (killed, or it could not start), the chunks it held and everything after are
    checked in this process instead, with a ``RuntimeWarning``. A context manager: leaving it stops
    the workers.
    """

    def __init__(
        self,
        verifier: LedgerVerifier,
        entries: Iterable[RawEntry],
        blocks: Iterable[RawBlock],
        *,
        workers: int,
        threshold: int = DEFAULT_THRESHOLD,
        chunk: int = CHUNK,
        depth: int = DEPTH,
    ) -> None:
        if workers < 1:
            raise ValueError("a ParallelFeed needs at least one worker")
        self._verifier = verifier
        self._raw_entries = iter(entries)
        self._raw_blocks = iter(blocks)
        self._entries_done = False
        self._blocks_done = False
        self._inline_left = threshold
        self._pooled = False  # True while workers run
        self._carry: RawEntry | None = None  # the entry read to learn that workers are worth starting
        self._blocks_ahead = 0  # blocks handed to workers or ready, not yet taken by the replay
        self._workers = workers
        self._chunk = chunk
        self._window = workers * depth
        # Checked chunks ready for the replay, in order, and the source error that ends a stream.
        self._ready_entries: deque[list[CheckedEntry] | EntrySourceError] = deque()
        self._ready_blocks: deque[list[CheckedBlock] | BlockSourceError] = deque()
        self._pending: dict[int, _Pending] = {}
        self._next_tid = 0
        self._next_unpack = 0
        self._sent_keys = [0] * workers
        self._procs: list[SpawnProcess] = []
        self._task_queues: list[Any] = []
        self._result_conns: list[Connection] = []

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> ParallelFeed:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether worker processes were started."""
        return self._next_tid > 0 or bool(self._procs)

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process holding threads or DB handles
        vkey = self._verifier.log_key.encode()
        for _ in range(self._workers):
            tasks = ctx.Queue()
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, args=(tasks, writer, vkey), daemon=True)
            self._task_queues.append(tasks)
            self._result_conns.append(reader)
            self._procs.append(proc)
            proc.start()
            writer.close()  # only the worker writes: its death reads here as end of file
        self._pooled = True

    def close(self) -> None:
        """Stop the workers and release the pipes (a worker still sending sees its pipe closed)."""
        self._pooled = False
        for conn in self._result_conns:
            conn.close()
        for tasks in self._task_queues:
            with contextlib.suppress(OSError, ValueError):
                tasks.put(None)
        for proc in self._procs:
            if proc.pid is not None:
                proc.join(timeout=2)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=2)
        for tasks in self._task_queues:
            tasks.cancel_join_thread()
            tasks.close()
        self._procs.clear()
        self._task_queues.clear()
        self._result_conns.clear()

    # -- the two streams ----------------------------------------------------------------------------
    def entries(self) -> Iterator[CheckedEntry]:
        """Checked entries in seq order (a source error is raised where it occurred)."""
        return itertools.chain.from_iterable(self._entry_chunks())

    def blocks(self) -> Iterator[CheckedBlock]:
        """Checked blocks in height order (a source error is raised where it occurred)."""
        return itertools.chain.from_iterable(self._block_chunks())

    def _entry_chunks(self) -> Iterator[list[CheckedEntry]]:
        while True:
            if self._ready_entries:
                item = self._ready_entries.popleft()
                if isinstance(item, EntrySourceError):
                    raise item
                yield item
            elif self._pooled or self._pending:
                if self._entries_done and not self._pending:
                    return
                self._advance()
            else:
                raw = self._read_entry()
                if raw is None:
                    return
                if self._inline_left > 0:
                    self._inline_left -= 1
                    yield [self._verifier.check_entry_here(raw)]
                else:  # a large ledger: from here on, workers check
                    self._carry = raw
                    self._start()

    def _block_chunks(self) -> Iterator[list[CheckedBlock]]:
        while True:
            if self._ready_blocks:
                item = self._ready_blocks.popleft()
                if isinstance(item, BlockSourceError):
                    self._blocks_ahead -= 1
                    raise item
                self._blocks_ahead -= len(item)
                yield item
            elif self._pooled or self._pending:
                if self._blocks_done and not self._pending:
                    return
                self._advance()
            else:
                raw = self._read_block()
                if raw is None:
                    return
                yield [self._verifier.check_block_here(raw)]

    def _read_entry(self) -> RawEntry | None:
        if self._carry is not None:
            raw, self._carry = self._carry, None
            return raw
        if self._entries_done:
            return None
        try:
            return next(self._raw_entries)
        except StopIteration:
            self._entries_done = True
            return None
        except EntrySourceError:
            self._entries_done = True
            raise

    def _read_entries(self, count: int, into: _Pending) -> None:
        """Up to ``count`` raw entries into ``into`` (and the source error that stopped them)."""
        out = into.entries
        if self._carry is not None:
            out.append(self._carry)
            self._carry = None
        if self._entries_done:
            return
        source, append = self._raw_entries, out.append
        try:
            for _ in range(count - len(out)):
                append(next(source))
        except StopIteration:
            self._entries_done = True
        except EntrySourceError as exc:
            self._entries_done = True
            into.entry_error = exc

    def _read_blocks(self, count: int, into: _Pending) -> None:
        if self._blocks_done:
            return
        source, append = self._raw_blocks, into.blocks.append
        try:
            for _ in range(count):
                append(next(source))
        except StopIteration:
            self._blocks_done = True
        except BlockSourceError as exc:
            self._blocks_done = True
            into.block_error = exc

    def _read_block(self) -> RawBlock | None:
        if self._blocks_done:
            return None
        try:
            return next(self._raw_blocks)
        except StopIteration:
            self._blocks_done = True
            return None
        except BlockSourceError:
            self._blocks_done = True
            raise

    # -- the workers --------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Top up the chunks in flight, then unpack the next result in order."""
        self._fill()
        if not self._pending:
            return  # nothing in flight: the caller's stream has ended, or its ready items come first
        tid = self._next_unpack
        result = self._receive(tid) if self._pooled else None
        pending = self._pending.pop(tid)
        self._unpack(pending, result if result is not None else self._check_here(tid, pending))
        self._next_unpack += 1

    def _fill(self) -> None:
        while self._pooled and len(self._pending) < self._window and not (self._entries_done and self._blocks_done):
            pending = _Pending()
            self._read_entries(self._chunk, pending)
            self._read_blocks(min(self._chunk, self._window * self._chunk - self._blocks_ahead), pending)
            self._blocks_ahead += len(pending.blocks) + (pending.block_error is not None)
            if not (pending.entries or pending.blocks or pending.entry_error or pending.block_error):
                return
            tid = self._next_tid
            self._next_tid += 1
            self._pending[tid] = pending
            worker = tid % self._workers
            key_log = self._verifier.key_log
            task: _Task = (tid, key_log[self._sent_keys[worker] :], pending.entries, pending.blocks)
            self._sent_keys[worker] = len(key_log)
            self._task_queues[worker].put(task)

    def _receive(self, tid: int) -> _Result | None:
        """The result of chunk ``tid`` from its worker (each answers in order), or None if that worker died."""
        number = tid % self._workers
        conn, proc = self._result_conns[number], self._procs[number]
        while True:
            ready = wait([conn, proc.sentinel], timeout=_POLL_SECONDS)
            if conn in ready:
                try:
                    result: _Result = conn.recv()
                except (EOFError, OSError):
                    break
                if result[4] is not None:
                    raise WorkerError(f"verification worker failed:\n{result[4]}")
                if result[0] != tid:
                    raise WorkerError(f"verification worker {number} answered chunk {result[0]}, not {tid}")
                return result
            if ready:  # the sentinel alone: the worker is gone and left nothing to read
                break
        proc.join(timeout=1)
        self._give_up(f"verification worker {number} exited with code {proc.exitcode}")
        return None

    def _give_up(self, reason: str) -> None:
        """Stop the workers; what they held is checked in this process (``_advance``), as is the rest."""
        warnings.warn(f"{reason}; checking the rest in this process", RuntimeWarning, stacklevel=2)
        self.close()
        self._inline_left = sys.maxsize

    def _check_here(self, tid: int, pending: _Pending) -> _Result:
        rows, fault = check_entry_chunk(pending.entries, dict(self._verifier.keys))
        log_key = self._verifier.log_key
        checked = [check_block(label, value, note, log_key) for label, value, note in pending.blocks]
        return (tid, rows, fault, checked, None)

    def _unpack(self, pending: _Pending, result: _Result) -> None:
        _tid, rows, fault, blocks, _error = result
        chunk = [
            CheckedEntry(seq, leaf, digest, CheckedEnvelope(type_, ts, actor, body, sig, leaf), verified, None)
            for (seq, leaf), (digest, type_, ts, actor, body, sig, verified) in zip(pending.entries, rows, strict=False)
        ]
        if fault is not None:
            seq, leaf = pending.entries[fault[0]]
            chunk.append(CheckedEntry(seq, leaf, b"", None, False, fault[1]))
        if chunk:
            self._ready_entries.append(chunk)
        if pending.entry_error is not None:
            self._ready_entries.append(pending.entry_error)
        if blocks:
            self._ready_blocks.append(blocks)
        if pending.block_error is not None:
            self._ready_blocks.append(pending.block_error)


def verify_streams(
    log_vkey: str,
    origin: str,
    entries: Iterable[RawEntry],
    blocks: Iterable[RawBlock],
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    machines: Sequence[StateMachine] = (),
    size_hint: int | None = None,
) -> VerificationResult:
    """Verify raw streams, in worker processes once more than ``threshold`` entries have been checked here.

    ``workers`` defaults to one per usable CPU (none on a single CPU); 0 keeps everything in this process.
    ``machines`` are replayed here, in order. With ``size_hint`` (the expected entry count) the choice is
    made at once: workers from the start for a large ledger, none for a small one. Raises ``SetupError``
    for an unusable log key, ``WorkerError`` if a worker's checks fail unexpectedly.
    """
    verifier = LedgerVerifier(log_vkey, origin, machines=machines)
    count = default_workers() if workers is None else workers
    if count <= 0:
        return verifier.verify(entries, blocks, progress)
    if size_hint is not None:
        threshold = 0 if size_hint >= threshold else sys.maxsize
    with ParallelFeed(verifier, entries, blocks, workers=count, threshold=threshold) as feed:
        return verifier.run(feed.entries(), feed.blocks(), progress)


__all__ = ["DEFAULT_THRESHOLD", "ParallelFeed", "check_entry_chunk", "default_workers", "verify_streams"]
