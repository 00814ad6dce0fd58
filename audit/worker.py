"""A verification worker: ``python -m audit.worker LOG_VKEY TASK_FD RESULT_FD``.

``audit.parallel.ParallelFeed`` starts one per CPU but one, each a plain subprocess holding two pipe ends: it reads
chunks from ``TASK_FD``, checks them (``check_entry_chunk``, ``check_block``: the helpers the
in-process path runs) and writes each result to ``RESULT_FD``, in the order the chunks came. A ``None``
task or the end of its input stops it. No ``multiprocessing`` machinery: no resource tracker process,
no semaphores, no feeder threads here, and nothing imported beyond the checks themselves.

Frames are ``ledger.frames``: an 8-byte big-endian length and a pickle, read only from the other end
of a pipe this program's parent made for it.
"""

from __future__ import annotations

import io
import sys
import traceback
from collections.abc import MutableMapping
from typing import BinaryIO

from audit.verifier import CheckedBlock, RawBlock, RawEntry, check_block, check_entry, learn_key
from ledger.errors import LedgerError
from ledger.frames import read_frame, write_frame
from ledger.note import VerifierKey

# What a worker sends back per entry: (leaf hash, signature verified). The replay reads the envelope
# from the leaf again (``audit.verifier.checked_leaf``): orjson's parse of a checked leaf costs it what
# unpickling the parsed envelope did, and the worker pickles and the pipe carries a tenth as much.
Row = tuple[bytes, bool]
# A chunk: its number, the keys learnt since the worker's last chunk, raw entries, raw blocks.
Task = tuple[int, list[tuple[str, bytes]], list[RawEntry], list[RawBlock]]
# Its result: the number, checked rows, the first fault (index in the chunk, reason), checked blocks,
# and a traceback if the checks themselves failed.
Result = tuple[int, list[Row], tuple[int, str] | None, list[CheckedBlock], str | None]


def check_entry_chunk(
    entries: list[RawEntry], keys: MutableMapping[str, bytes]
) -> tuple[list[Row], tuple[int, str] | None]:
    """``check_entry`` over a chunk, learning keys as it goes; stops at the first fault (index, reason)."""
    rows: list[Row] = []
    for index, (_seq, leaf) in enumerate(entries):
        try:
            env, digest, verified = check_entry(leaf, keys)
        except LedgerError as exc:
            return rows, (index, str(exc))
        rows.append((digest, verified))
        learn_key(env, keys)
    return rows, None


def check_task(task: Task, keys: MutableMapping[str, bytes], log_key: VerifierKey) -> Result:
    """One chunk's result; ``keys`` learns the keys sent with it and those its entries register."""
    tid, new_keys, entries, blocks = task
    keys.update(new_keys)
    rows, fault = check_entry_chunk(entries, keys)
    checked = [check_block(label, value, note, log_key) for label, value, note in blocks]
    return (tid, rows, fault, checked, None)


def serve(tasks: io.BufferedIOBase, results: BinaryIO, log_vkey: str) -> None:
    """Check chunks from ``tasks`` until told to stop, answering each on ``results``."""
    log_key = VerifierKey.parse(log_vkey)
    keys: dict[str, bytes] = {}
    while True:
        try:
            task: Task | None = read_frame(tasks)
        except EOFError:
            return
        if task is None:
            return
        try:
            result = check_task(task, keys, log_key)
        except Exception:  # a bug in the checks, not a fault in the ledger: the parent raises it
            result = (task[0], [], None, [], traceback.format_exc())
        try:
            write_frame(results, result)
        except OSError:  # the replay has finished and closed its end
            return


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].isdigit() or not argv[2].isdigit():
        print("usage: python -m audit.worker LOG_VKEY TASK_FD RESULT_FD (started by shulian verify)", file=sys.stderr)
        return 2
    vkey, task_fd, result_fd = argv[0], int(argv[1]), int(argv[2])
    with open(task_fd, "rb") as tasks, open(result_fd, "wb") as results:
        serve(tasks, results, vkey)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
