"""Write a ledger's shulian-export/1 file (§9): JSON Lines, header, entries in seq order, blocks in height order.

The file is written to a temporary file beside ``path`` and moved into place only when complete, so a
reader never sees half an export. Entries and blocks stream from the database in chunks (flat memory)
up to one consistent snapshot, so appends going on meanwhile do not tear it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from api.witnesses import attach_cosignatures, list_witnesses
from audit.errors import AuditError, ExportError
from audit.sources import EXPORT_FORMAT, snapshot
from ledger.store import Store

_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path
    entries: int
    blocks: int


def json_line(value: object) -> bytes:
    """One JSON Lines record (UTF-8, compact)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@contextmanager
def atomic_file(path: Path, what: str, buffering: int = -1) -> Iterator[BinaryIO]:
    """``path`` written atomically: a temporary file beside it (mode 0600), fsync, ``os.replace``, the
    directory synced; removed on any failure. An ``OSError`` becomes ``ExportError`` naming ``what``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ExportError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb", buffering=buffering) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
        raise
    _fsync_dir(path.parent)


def write_export(store: Store, path: str | os.PathLike[str], progress: bool = True) -> ExportSummary:
    """Write the export of ``store`` to ``path`` atomically (temp file, fsync, ``os.replace``; mode 0600).

    Raises ``AuditError`` for an uninitialised ledger, ``ExportError`` when the file cannot be written.
    """
    path = Path(path)
    meta, entry_count, block_count = snapshot(store)
    if "origin" not in meta or "log_key" not in meta:
        raise AuditError("the ledger is not initialised: its meta table has no origin or log key")
    blocks = 0
    with (
        atomic_file(path, "the export", buffering=_BUFFER) as out,
        tqdm(
            total=entry_count,
            unit=" entries",
            desc="export",
            file=sys.stderr,
            disable=not progress,
            mininterval=0.5,
        ) as bar,
    ):
        out.write(json_line({"format": EXPORT_FORMAT, "origin": meta["origin"], "log_key": meta["log_key"]}))
        pending = 0
        for seq, leaf in store.iter_entries(0, entry_count):
            out.write(b'{"seq":%d,"leaf":"%s"}\n' % (seq, base64.b64encode(leaf)))
            pending += 1
            if pending == 4096:
                bar.update(pending)
                pending = 0
        bar.update(pending)
        witnesses = list_witnesses(store)  # each holds the one checkpoint it last cosigned
        for height, header, checkpoint in store.iter_blocks():
            if height >= block_count:
                break
            if witnesses:
                checkpoint = attach_cosignatures(witnesses, int(header["tree_size"]), checkpoint)
            out.write(json_line({"block": height, "header": header, "checkpoint": checkpoint}))
            blocks += 1
    return ExportSummary(path, entry_count, blocks)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
