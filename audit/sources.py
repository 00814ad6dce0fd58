"""The I/O edge of verification: read a ledger's database or export file and hand the values over.

Both sources give two lazy streams, entries in seq order and blocks in height order, so memory stays
flat. A malformed export line becomes a fault naming the line (``seq N: export line L …`` or
``block H: export line L …``); the verdict itself comes from ``audit.verifier``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from tqdm import tqdm

from api import index as consent_index
from audit.errors import AuditError, BlockSourceError, EntrySourceError, ExportError, SetupError
from audit.parallel import DEFAULT_THRESHOLD, verify_streams
from audit.verifier import RawBlock, RawEntry, StateMachine, VerificationResult
from consent.compact import CompactConsentState
from consent.state import ConsentState
from ledger import schema
from ledger.store import Store
from ledger.tree import EMPTY_ROOT

EXPORT_FORMAT = "shulian-export/1"
_TAIL_BYTES = 1 << 16
_INDEX_RANGE = 20_000  # seqs per slice of the consent index comparison


def default_machines() -> list[StateMachine]:
    """The rules a node's sequencer enforces beside the key registry (``api.node``): the consent state,
    packed for a whole-ledger replay (``consent.compact``: the same rules, flat memory per record)."""
    return [CompactConsentState()]


def _setup_failure(prefix: str, exc: AuditError) -> VerificationResult:
    return VerificationResult(False, f"{prefix}: {exc}", 0, 0, EMPTY_ROOT)


def _bar(progress: bool, total: int | None, what: str) -> tqdm[Any]:
    return tqdm(total=total, unit=" entries", desc=what, file=sys.stderr, disable=not progress, mininterval=0.5)


ProgressReport = Callable[[int, int | None], None]  # entries checked so far, entries in all (when known)


def _reporter(bar: tqdm[Any], total: int | None, report: ProgressReport | None) -> Callable[[int], object]:
    """The replay's progress callback: the bar, and ``report`` (e.g. a metrics textfile) when given."""
    if report is None:
        return bar.update
    done = 0

    def update(n: int) -> None:
        nonlocal done
        done += n
        bar.update(n)
        report(done, total)

    return update


# -- the database -------------------------------------------------------------------------------


def snapshot(store: Store) -> tuple[dict[str, str], int, int]:
    """The ledger's meta, its entry count and its block count, read in one statement (one snapshot).

    Reading up to these bounds keeps a verification or export consistent while appends go on: an
    append commits its entries and its block together.
    """
    e, b = schema.entries, schema.blocks
    with store.reader() as conn:
        meta = Store.meta(conn)
        last_seq, last_height = conn.execute(
            select(select(func.max(e.c.seq)).scalar_subquery(), select(func.max(b.c.height)).scalar_subquery())
        ).one()
    entries = -1 if last_seq is None else int(last_seq)
    blocks = -1 if last_height is None else int(last_height)
    return meta, entries + 1, blocks + 1


def _database_blocks(store: Store, count: int) -> Generator[RawBlock]:
    blocks = store.iter_blocks()
    while True:
        try:
            height, header, checkpoint = next(blocks)
        except StopIteration:
            return
        except ValueError as exc:  # a header column that is not JSON
            raise BlockSourceError(f"stored header is not JSON ({exc})") from exc
        if height >= count:
            _close(blocks)
            return
        yield height, header, checkpoint


def verify_database(
    store: Store,
    progress: bool = True,
    *,
    workers: int | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    consent: bool = True,
    report: ProgressReport | None = None,
) -> VerificationResult:
    """Replay the ledger in ``store`` (as of the moment it starts) and return the verdict.

    With ``consent`` (the default) the consent rules are replayed too and the consent index table must
    equal the state replayed. ``workers`` and ``threshold`` as for ``audit.parallel.verify_streams``.
    Raises ``AuditError`` when the database holds no initialised ledger.
    """
    meta, entry_count, block_count = snapshot(store)
    if "origin" not in meta or "log_key" not in meta:
        raise AuditError("the ledger is not initialised: its meta table has no origin or log key")
    machines = default_machines() if consent else []
    entries = store.iter_entries(0, entry_count)
    blocks = _database_blocks(store, block_count)
    bar = _bar(progress, entry_count, "verify")
    try:
        result = verify_streams(
            meta["log_key"],
            meta["origin"],
            entries,
            blocks,
            progress=_reporter(bar, entry_count, report),
            workers=workers,
            threshold=threshold,
            machines=machines,
            size_hint=entry_count,
        )
    except SetupError as exc:
        return _setup_failure("ledger", exc)
    finally:
        bar.close()
        _close(entries)
        blocks.close()
    state = next((m for m in machines if isinstance(m, ConsentState)), None)
    if result.ok and state is not None:
        return _compare_consent_index(store, state, result)
    return result


def _compare_consent_index(store: Store, state: ConsentState, result: VerificationResult) -> VerificationResult:
    """The consent index table against the state replayed from the ledger (DESIGN §6), a seq range at a time."""
    e, table = schema.entries, consent_index.consent_index
    grant_seqs = state.grant_seqs()
    problem = None
    with store.reader() as conn:
        if not store.is_sqlite:  # one snapshot for the count and the rows
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        if not inspect(conn).has_table(table.name):
            return result
        last_seq = conn.execute(select(func.max(e.c.seq))).scalar()
        if last_seq is None or int(last_seq) + 1 != result.entries:
            note = "; consent index not compared: the ledger grew during verification"
            return dataclasses.replace(result, message=result.message + note)
        for start in range(0, result.entries, _INDEX_RANGE):
            end = start + _INDEX_RANGE
            query = select(table).where(table.c.grant_seq >= start)
            if end < result.entries:  # the last range also takes rows past the ledger's end
                query = query.where(table.c.grant_seq < end)
            stored = [tuple(r) for r in conn.execute(query.order_by(table.c.grant_seq))]
            lo, hi = bisect.bisect_left(grant_seqs, start), bisect.bisect_left(grant_seqs, end)
            if end >= result.entries:
                hi = len(grant_seqs)
            expected = [consent_index.grant_values(state.grants[s]) for s in grant_seqs[lo:hi]]
            if expected == stored:  # the common case, compared as tuples in COLUMNS order
                continue
            problem = consent_index.compare(
                [dict(zip(consent_index.COLUMNS, r, strict=True)) for r in expected],
                [dict(zip(consent_index.COLUMNS, r, strict=True)) for r in stored],
            )
            if problem is not None:
                break
    if problem is None:
        return result
    seq_text = problem.split(":", 1)[0].removeprefix("seq ")
    seq = int(seq_text) if seq_text.isdigit() else None
    return dataclasses.replace(result, ok=False, message=problem, seq=seq)


def _close(stream: Iterator[Any]) -> None:
    """Close a generator early (releasing its file or connection)."""
    close = getattr(stream, "close", None)
    if callable(close):
        close()


# -- the export file ----------------------------------------------------------------------------


def _is_block_line(line: bytes, value: object) -> bool:
    """A block line holds the literal key ``"block"`` (both readers test the same way)."""
    return isinstance(value, dict) and "block" in value and b'"block"' in line


def read_export_header(line: bytes) -> tuple[str, str]:
    """(origin, log key) from an export's first line; raise ``SetupError`` if it is not a header."""
    try:
        value = json.loads(line)
    except ValueError:
        value = None
    if not isinstance(value, dict) or value.get("format") != EXPORT_FORMAT:
        raise SetupError(f"line 1 is not a {EXPORT_FORMAT} header")
    origin, log_key = value.get("origin"), value.get("log_key")
    if not isinstance(origin, str) or not isinstance(log_key, str):
        raise SetupError("line 1 lacks the origin or log_key string")
    return origin, log_key


def _export_entries(path: Path) -> Generator[RawEntry]:
    """Entry lines from line 2 up to the first block line."""
    with path.open("rb") as f:
        f.readline()
        for number, line in enumerate(f, start=2):
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise EntrySourceError(f"export line {number} is not JSON{_truncated(line)}") from exc
            if _is_block_line(line, value):
                return
            if not isinstance(value, dict):
                raise EntrySourceError(f"export line {number} is not an entry line")
            seq, leaf = value.get("seq"), value.get("leaf")
            if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(leaf, str):
                raise EntrySourceError(f"export line {number} is not an entry line (no integer seq and string leaf)")
            try:
                yield seq, base64.b64decode(leaf, validate=True)
            except binascii.Error as exc:
                raise EntrySourceError(f"export line {number}: leaf is not base64") from exc


def _export_blocks(path: Path) -> Generator[RawBlock]:
    """Block lines, from the first block line to the end; every line there must be one."""
    with path.open("rb") as f:
        f.readline()
        number = 1
        started = False
        for line in f:
            number += 1
            if not started:
                if b'"block"' not in line:  # skip entry lines without parsing them
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    continue  # the entry reader reports it
                if not _is_block_line(line, value):
                    continue
                started = True
            else:
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise BlockSourceError(f"export line {number} is not JSON{_truncated(line)}") from exc
            if not isinstance(value, dict) or "block" not in value:
                raise BlockSourceError(f"export line {number} is not a block line")
            height, header, checkpoint = value.get("block"), value.get("header"), value.get("checkpoint")
            if not isinstance(height, int) or isinstance(height, bool) or not isinstance(checkpoint, str):
                raise BlockSourceError(
                    f"export line {number} is not a block line (no integer block and string checkpoint)"
                )
            yield height, header, checkpoint


def _truncated(line: bytes) -> str:
    return " (truncated?)" if not line.endswith(b"\n") else ""


def _export_total(path: Path) -> int | None:
    """The tree size of the export's last block, from its tail (for the progress bar only)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        value = json.loads(tail)
        total = value["header"]["tree_size"]
    except (ValueError, KeyError, TypeError):
        return None
    return total if isinstance(total, int) else None


def verify_export(
    path: str | os.PathLike[str],
    progress: bool = True,
    *,
    workers: int | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    consent: bool = True,
    report: ProgressReport | None = None,
) -> VerificationResult:
    """Replay the export at ``path`` (shulian-export/1) and return the verdict.

    ``consent`` as for ``verify_database`` (an export holds no index). A bad first line gives the
    message ``export: …``. Raises ``ExportError`` when the file cannot be read.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            first = f.readline()
        total = _export_total(path)
    except OSError as exc:
        raise ExportError(f"cannot read the export {path}: {exc.strerror or exc}") from exc
    try:
        origin, log_key = read_export_header(first)
    except SetupError as exc:
        return _setup_failure("export", exc)
    entries = _export_entries(path)
    blocks = _export_blocks(path)
    bar = _bar(progress, total, "verify")
    try:
        return verify_streams(
            log_key,
            origin,
            entries,
            blocks,
            progress=_reporter(bar, total, report),
            workers=workers,
            threshold=threshold,
            machines=default_machines() if consent else [],
            size_hint=total,
        )
    except SetupError as exc:
        return _setup_failure("export", exc)
    except OSError as exc:
        raise ExportError(f"cannot read the export {path}: {exc.strerror or exc}") from exc
    finally:
        bar.close()
        entries.close()
        blocks.close()
