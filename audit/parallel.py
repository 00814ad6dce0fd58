"""The stateless checks in worker processes and in this one, the sequential replay in this one.

Signature verification dominates (one Ed25519 verify per entry, two per block). Worker processes
(``audit.worker``, one per CPU but one) run ``check_entry`` and ``check_block`` (the same helpers the
in-process path runs) on chunks of raw items; this process reads the sources, hands out chunks, runs
``LedgerVerifier.run`` over the results in order, and checks a smaller chunk itself whenever the answer
it needs next is not there yet. Key ids are hashes of their public keys, so a worker may verify any
entry whose signer's key it has seen: keys reach it with each chunk (only those added since its last
chunk) and from the identity entries in its own chunks. An entry whose key it does not know yet comes
back unverified and this process verifies it. At most ``workers × depth`` chunks are with the workers
and ``depth × STEAL_SPLIT`` small ones checked ahead here, so memory stays flat.

A small ledger never pays for starting processes: given its size, ``verify_streams`` starts workers
only from ``threshold`` entries on; not knowing it, the first ``threshold`` entries are checked here.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import pickle
import queue
import select
import subprocess
import sys
import threading
import warnings
from collections import ChainMap, deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from audit.errors import BlockSourceError, EntrySourceError, WorkerError
from audit.verifier import (
    CheckedBlock,
    CheckedEntry,
    LedgerVerifier,
    Progress,
    RawBlock,
    RawEntry,
    StateMachine,
    VerificationResult,
    checked_leaf,
)
from audit.worker import Result, Task, check_entry_chunk, check_task
from ledger.frames import read_frame, write_frame

DEFAULT_THRESHOLD = 20_000
CHUNK = 512
DEPTH = 3
STEAL_SPLIT = 4  # a chunk checked here while a worker is behind is this much smaller than a worker's

# Where ``python -m audit.worker`` finds this package (a checkout that is not installed included).
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def default_workers() -> int:
    """One worker per usable CPU but one, the replay's, which checks chunks too whenever it would wait."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(cpus - 1, 0)


class _Sender:
    """Writes one worker's tasks from a thread of its own.

    The replay never blocks on a full pipe while that worker blocks writing a result the replay has not
    read yet (a chunk is far larger than a pipe's buffer). A worker that died is found by the replay
    (end of file on its results); the tasks still queued for it are then dropped.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._queue: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._stream = stream
        self._thread = threading.Thread(target=self._run, name="verify-sender", daemon=True)
        self._thread.start()

    def put(self, task: Task | None) -> None:
        self._queue.put(task)

    def _run(self) -> None:
        try:
            while True:
                task = self._queue.get()
                write_frame(self._stream, task)  # None too: it tells the worker to stop
                if task is None:
                    return
        except (OSError, ValueError):  # the worker is gone (or its pipe was closed here)
            return
        finally:
            with contextlib.suppress(OSError, ValueError):
                self._stream.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class _Pending:
    """A chunk in flight: handed to worker ``worker``, or checked here already (``result``)."""

    __slots__ = ("block_error", "blocks", "entries", "entry_error", "result", "worker")

    def __init__(self) -> None:
        self.entries: list[RawEntry] = []
        self.blocks: list[RawBlock] = []
        self.entry_error: EntrySourceError | None = None
        self.block_error: BlockSourceError | None = None
        self.worker: int | None = None
        self.result: Result | None = None


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
        self._depth = depth
        self._next_worker = 0
        self.stolen = 0  # chunks this process checked itself while workers ran
        # Checked chunks ready for the replay, in order, and the source error that ends a stream.
        self._ready_entries: deque[list[CheckedEntry] | EntrySourceError] = deque()
        self._ready_blocks: deque[list[CheckedBlock] | BlockSourceError] = deque()
        self._pending: dict[int, _Pending] = {}
        self._next_tid = 0
        self._next_unpack = 0
        self._sent_keys = [0] * workers
        self._procs: list[subprocess.Popen[bytes]] = []
        self._senders: list[_Sender] = []
        self._results: list[io.FileIO] = []  # unbuffered: select() on one tells whether an answer waits

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
        """Start the workers: ``python -m audit.worker`` with a task pipe and a result pipe each.

        Plain subprocesses rather than ``multiprocessing``: no resource tracker process and no
        semaphores, so the verifier's process tree holds only itself and its workers. A worker that
        cannot be started leaves everything to this process (with a ``RuntimeWarning``).
        """
        vkey = self._verifier.log_key.encode()
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": _PACKAGE_ROOT + (os.pathsep + path if path else "")}
        try:
            for _ in range(self._workers):
                self._start_one(vkey, env)
        except OSError as exc:
            self._give_up(f"could not start a verification worker ({exc})")
            return
        self._pooled = True

    def _start_one(self, vkey: str, env: dict[str, str]) -> None:
        if not sys.executable:
            raise OSError("no Python executable to run it with")
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "audit.worker", vkey, str(task_read), str(result_write)],
                pass_fds=(task_read, result_write),
                stdin=subprocess.DEVNULL,
                # A process group of its own: Ctrl-C at a terminal reaches the verifier, which stops it
                # by closing its pipes, and not the worker (a traceback of its own would bury the one line).
                process_group=0,
                env=env,
            )
        except BaseException:
            for fd in (task_write, result_read):
                os.close(fd)
            raise
        finally:
            os.close(task_read)  # only the worker reads its tasks and writes its results: its death
            os.close(result_write)  # reads here as the end of its results
        self._procs.append(proc)
        self._senders.append(_Sender(open(task_write, "wb")))  # noqa: SIM115 - the sender closes it
        self._results.append(open(result_read, "rb", buffering=0))  # noqa: SIM115 - closed by close()

    def close(self) -> None:
        """Stop the workers and release the pipes (a worker still sending sees its pipe closed)."""
        self._pooled = False
        for stream in self._results:
            stream.close()
        for sender in self._senders:
            sender.put(None)
        for proc in self._procs:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for sender in self._senders:
            sender.join(timeout=2)
        self._procs.clear()
        self._senders.clear()
        self._results.clear()

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
        """Top up the chunks in flight, then unpack the next result in order.

        While the worker holding that chunk has not answered yet, this process checks the next new
        chunk itself (within the window) instead of waiting: the replay and the workers share the
        CPUs whatever their relative speeds on this machine and ledger.
        """
        self._fill()
        if not self._pending:
            return  # nothing in flight: the caller's stream has ended, or its ready items come first
        tid = self._next_unpack
        pending = self._pending[tid]
        result = pending.result
        if result is None and self._pooled and pending.worker is not None:
            while not self._answer_ready(pending.worker) and self._steal():
                pass
            result = self._receive(tid, pending.worker)
        del self._pending[tid]
        self._unpack(pending, result if result is not None else self._check_here(tid, pending))
        self._next_unpack += 1

    def _new_chunk(self, size: int) -> tuple[int, _Pending] | None:
        """The next chunk of up to ``size`` raw entries and blocks, numbered and in flight; None at the end."""
        if self._entries_done and self._blocks_done:
            return None
        pending = _Pending()
        self._read_entries(size, pending)
        self._read_blocks(min(size, self._window * self._chunk - self._blocks_ahead), pending)
        self._blocks_ahead += len(pending.blocks) + (pending.block_error is not None)
        if not (pending.entries or pending.blocks or pending.entry_error or pending.block_error):
            return None
        tid = self._next_tid
        self._next_tid += 1
        self._pending[tid] = pending
        return tid, pending

    def _fill(self) -> None:
        """Keep ``depth`` chunks with each worker. Chunks this process checked itself and has not unpacked
        yet do not count: counting them left the worker without work while this process checked
        signatures (a worker at 59 % of a core while the replay stole at 94 %, --only verify)."""
        while self._pooled and sum(p.worker is not None for p in self._pending.values()) < self._window:
            made = self._new_chunk(self._chunk)
            if made is None:
                return
            tid, pending = made
            worker = pending.worker = self._next_worker
            self._next_worker = (worker + 1) % self._workers
            key_log = self._verifier.key_log
            task: Task = (tid, key_log[self._sent_keys[worker] :], pending.entries, pending.blocks)
            self._sent_keys[worker] = len(key_log)
            self._senders[worker].put(task)

    def _steal(self) -> bool:
        """Check a new chunk here, if the window has room for one more; whether one was checked.

        A quarter of a worker's chunk: this process looks again at the worker's answer sooner, so it
        neither leaves the answer waiting long nor takes more than its share.
        """
        if len(self._pending) >= self._window + self._depth * STEAL_SPLIT:
            return False
        made = self._new_chunk(max(self._chunk // STEAL_SPLIT, 1))
        if made is None:
            return False
        tid, pending = made
        pending.result = self._check_here(tid, pending)
        self.stolen += 1
        return True

    def _answer_ready(self, worker: int) -> bool:
        """Whether reading worker ``worker``'s next answer would not wait (an answer, or its end)."""
        ready, _, _ = select.select([self._results[worker]], [], [], 0)
        return bool(ready)

    def _receive(self, tid: int, number: int) -> Result | None:
        """The result of chunk ``tid`` from worker ``number`` (each answers in order), or None if it died."""
        proc = self._procs[number]
        try:
            result: Result = read_frame(self._results[number])
        except (EOFError, OSError, pickle.UnpicklingError):
            try:
                code = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
            self._give_up(f"verification worker {number} exited with code {code}")
            return None
        if result[4] is not None:
            raise WorkerError(f"verification worker failed:\n{result[4]}")
        if result[0] != tid:
            raise WorkerError(f"verification worker {number} answered chunk {result[0]}, not {tid}")
        return result

    def _give_up(self, reason: str) -> None:
        """Stop the workers; what they held is checked in this process (``_advance``), as is the rest."""
        warnings.warn(f"{reason}; checking the rest in this process", RuntimeWarning, stacklevel=2)
        self.close()
        self._inline_left = sys.maxsize

    def _check_here(self, tid: int, pending: _Pending) -> Result:
        """Check a chunk in this process, with the keys the replay knows so far.

        The keys its entries introduce go to an overlay, never into the replay's own map (which only
        the replay extends, in order); no copy of that map is made, however many keys the ledger has.
        """
        keys = ChainMap[str, bytes]({}, self._verifier.keys)
        return check_task((tid, [], pending.entries, pending.blocks), keys, self._verifier.log_key)

    def _unpack(self, pending: _Pending, result: Result) -> None:
        _tid, rows, fault, blocks, _error = result
        chunk = [
            CheckedEntry(seq, leaf, digest, checked_leaf(leaf), verified, None)
            for (seq, leaf), (digest, verified) in zip(pending.entries, rows, strict=False)
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
