"""Backup and restore: `shulian import` of a shulian-export/1 file, and the records vault carried beside it.

An export (§9) holds the ledger: every signed entry and every block. Everything else in the database
is derived from it (entry columns, tree nodes, the consent index) and rebuilt here by replaying the
same state machines the sequencer runs, except two things an export cannot hold:

* the records vault (record values and salts, sealed under per-dataset keys wrapped by the master
  key in SHULIAN_HOME/keys/vault-master.json): ``write_vault`` / ``import_export(vault=…)`` carry it
  in a separate ``shulian-vault/1`` JSON Lines file, still sealed;
* local keys under SHULIAN_HOME/keys (log, admin, service, vault master): copied as files.

A full backup is therefore the export, the vault file and SHULIAN_HOME/keys. Import writes nothing
unless the whole export verifies (with the offline verifier), the target holds no ledger and the vault
file matches the ledger; then it writes everything in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from api import index as consent_index
from api import tables
from audit.errors import AuditError
from audit.export import atomic_file, json_line
from audit.sources import _export_blocks, _export_entries, read_export_header, verify_export
from consent.state import ConsentState
from keys.registry import KeyRegistry
from ledger import schema
from ledger.canonical import canonical_bytes
from ledger.envelope import parse_envelope
from ledger.errors import LedgerError
from ledger.note import Note, VerifierKey, parse_note
from ledger.sequencer import BLOCK_COLUMNS, ENTRY_COLUMNS, NODE_COLUMNS
from ledger.store import Store
from ledger.tree import CompactRange, leaf_hash

VAULT_FORMAT = "shulian-vault/1"
_CHUNK = 5000
_VAULT_RECORD_COLUMNS = ("dataset", "record", "version", "commit_seq", "sealed")


class ImportRefused(LedgerError):
    """The import was refused and nothing was written."""

    status = 409
    title = "Import refused"


@dataclass(frozen=True, slots=True)
class ImportSummary:
    entries: int
    blocks: int
    grants: int
    vault_records: int


# -- the vault file -----------------------------------------------------------------------------


def write_vault(store: Store, path: str | os.PathLike[str], *, below: int | None = None) -> int:
    """Write the records vault to ``path`` (atomically, mode 0600): the dataset keys (still wrapped by
    the master key) and each sealed record version whose commit seq is below ``below`` (default: all).
    Returns the number of record versions written."""
    path = Path(path)
    with store.reader() as conn:
        meta = Store.meta(conn)
    if "origin" not in meta:
        raise AuditError("the ledger is not initialised: its meta table has no origin or log key")
    count = 0
    with atomic_file(path, "the vault file") as out:
        out.write(json_line({"format": VAULT_FORMAT, "origin": meta["origin"], "log_key": meta["log_key"]}))
        k, r = tables.vault_keys, tables.vault_records
        with store.reader() as conn:
            for dataset, wrapped in conn.execute(select(k.c.dataset, k.c.wrapped).order_by(k.c.dataset)):
                out.write(json_line({"key": dataset, "wrapped": base64.b64encode(wrapped).decode()}))
            query = select(*(r.c[c] for c in _VAULT_RECORD_COLUMNS)).order_by(r.c.commit_seq)
            if below is not None:
                query = query.where(r.c.commit_seq < below)
            for dataset, record, version, seq, sealed in conn.execute(query):
                row = {"dataset": dataset, "record": record, "version": version, "commit_seq": seq}
                out.write(json_line({**row, "sealed": base64.b64encode(sealed).decode()}))
                count += 1
    return count


@dataclass(frozen=True, slots=True)
class _VaultFile:
    keys: list[tuple[str, bytes]]
    records: list[tuple[str, str, int, int, bytes]]


def _read_vault(path: Path, origin: str, log_key: str) -> _VaultFile:
    """Parse and check a vault file's shape and header (it must belong to the ledger being imported)."""
    keys: list[tuple[str, bytes]] = []
    records: list[tuple[str, str, int, int, bytes]] = []
    try:
        with path.open("rb") as f:
            lines = iter(f)
            header = _json(next(lines, b""), path, 1)
            if not isinstance(header, dict) or header.get("format") != VAULT_FORMAT:
                raise ImportRefused(f"{path} line 1 is not a {VAULT_FORMAT} header")
            if header.get("origin") != origin or header.get("log_key") != log_key:
                raise ImportRefused(f"{path} is the vault of another ledger (origin or log key differ)")
            for number, raw in enumerate(lines, start=2):
                value = _json(raw, path, number)
                try:
                    if "key" in value:
                        keys.append((_str(value["key"]), _b64(value["wrapped"])))
                    else:
                        records.append(
                            (
                                _str(value["dataset"]),
                                _str(value["record"]),
                                _int(value["version"]),
                                _int(value["commit_seq"]),
                                _b64(value["sealed"]),
                            )
                        )
                except (KeyError, TypeError, ValueError, binascii.Error) as exc:
                    raise ImportRefused(f"{path} line {number} is not a vault key or record line") from exc
    except OSError as exc:
        raise ImportRefused(f"cannot read the vault file {path}: {exc.strerror or exc}") from exc
    return _VaultFile(keys, records)


def _json(raw: bytes, path: Path, number: int) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not raw.endswith(b"\n"):
        raise ImportRefused(f"{path} line {number} is not a complete JSON object (truncated?)")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value


def _b64(value: object) -> bytes:
    return base64.b64decode(_str(value), validate=True)


def _check_vault(vault: _VaultFile, state: ConsentState, size: int) -> None:
    """Each record version must sit on the ledger: its commit seq a ``record.commit`` of that version."""
    datasets = {d for d, _ in vault.keys}
    for dataset, record, version, seq, _ in vault.records:
        commit = state.commits.get(seq) if seq < size else None
        if commit is None or (commit.dataset, commit.record, commit.version) != (dataset, record, version):
            raise ImportRefused(
                f"vault record {dataset}/{record} v{version} does not match the record.commit at seq {seq}"
            )
        if dataset not in datasets:
            raise ImportRefused(f"vault record {dataset}/{record} v{version} has no dataset key in the vault file")


# -- import -------------------------------------------------------------------------------------


def ledger_present(store: Store) -> str | None:
    """None when the database holds no ledger (no tables, or empty ones), else one line saying what it holds."""
    with store.reader() as conn:
        return _held(conn)


def _held(conn: Connection) -> str | None:
    names = set(inspect(conn).get_table_names())
    if schema.meta.name not in names:
        return None
    meta = Store.meta(conn)
    count = Store.entry_count(conn) if schema.entries.name in names else 0
    if not meta and count == 0:
        return None
    return f"the target database already holds a ledger (origin {meta.get('origin', '?')}, {count} entries)"


def _log_checkpoint(note: str, origin: str, vkey: VerifierKey) -> str:
    """The checkpoint as the log stores it: only the log key's signature (an export may carry witness
    cosignatures; witnesses are re-added after a restore and cosign anew)."""
    parsed = parse_note(note)
    own = tuple(s for s in parsed.signatures if s.name == origin and s.key_hash == vkey.hash)
    return Note(parsed.text, own).encode()


def _block_sizes(path: Path) -> list[int]:
    return [int(header["tree_size"]) for _, header, _ in _export_blocks(path)]


def import_export(
    store: Store,
    path: str | os.PathLike[str],
    *,
    vault: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> ImportSummary:
    """Restore the ledger in the export at ``path`` (and the vault file ``vault``) into ``store``.

    Raises ``ImportRefused`` (nothing written) when the target holds a ledger, the export does not
    verify (the message names the seq or block at fault), or the vault file does not match.
    """
    path = Path(path)
    try:
        held = ledger_present(store)
    except SQLAlchemyError as exc:
        raise ImportRefused(f"cannot read the target database: {exc}") from exc
    if held is not None:
        raise ImportRefused(f"{held}; import needs an empty one")
    result = verify_export(path, progress=progress)
    if not result.ok:
        raise ImportRefused(f"the export does not verify, nothing written: {result.message}")
    with path.open("rb") as f:
        origin, log_key = read_export_header(f.readline())
    vault_file = _read_vault(Path(vault), origin, log_key) if vault is not None else None
    sizes = _block_sizes(path)
    if not sizes or sizes[-1] != result.entries:  # the verifier accepted it, so this cannot happen
        raise ImportRefused("the export's blocks do not cover its entries")
    store.create_schema()
    with store.writer() as conn:
        held = _held(conn)  # again, under the writer lock: another process may have initialised it
        if held is not None:
            raise ImportRefused(f"{held}; import needs an empty one")
        state = _write_ledger(conn, path, origin, log_key, sizes, progress)
        grants = _write_index(conn, state)
        records = 0
        if vault_file is not None:
            _check_vault(vault_file, state, result.entries)
            Store.insert(conn, tables.vault_keys, [{"dataset": d, "wrapped": w} for d, w in vault_file.keys])
            for i in range(0, len(vault_file.records), _CHUNK):
                chunk = vault_file.records[i : i + _CHUNK]
                Store.insert_rows(conn, tables.vault_records, _VAULT_RECORD_COLUMNS, chunk)
            records = len(vault_file.records)
    return ImportSummary(result.entries, len(sizes), grants, records)


def _write_ledger(
    conn: Connection, path: Path, origin: str, log_key: str, sizes: list[int], progress: bool
) -> ConsentState:
    """Write meta, entries, tree nodes and blocks; return the consent state replayed on the way."""
    Store.insert(conn, schema.meta, [{"name": "origin", "value": origin}, {"name": "log_key", "value": log_key}])
    registry = KeyRegistry()
    state = ConsentState()
    frontier = CompactRange()
    entry_rows: list[tuple[int, bytes, bytes, str, str, str, int]] = []
    node_rows: list[tuple[int, int, bytes]] = []
    hashes: list[bytes] = []

    def flush(bar: tqdm[Any]) -> None:
        frontier.extend_rows(hashes, node_rows)
        Store.insert_rows(conn, schema.entries, ENTRY_COLUMNS, entry_rows)
        Store.insert_rows(conn, schema.tree_nodes, NODE_COLUMNS, node_rows)
        bar.update(len(entry_rows))
        entry_rows.clear()
        node_rows.clear()
        hashes.clear()

    with tqdm(
        total=sizes[-1], unit=" entries", desc="import", file=sys.stderr, disable=not progress, mininterval=0.5
    ) as bar:
        for seq, leaf in _export_entries(path):
            env = parse_envelope(leaf)
            signer = None if seq == 0 else registry.signer(env, seq)
            registry.apply(seq, env)
            state.apply(seq, env, signer, registry)
            h = leaf_hash(leaf)
            height = bisect.bisect_right(sizes, seq)  # the first block whose tree holds seq
            entry_rows.append((seq, leaf, h, env.type, env.actor, env.ts, height))
            hashes.append(h)
            if len(entry_rows) == _CHUNK:
                flush(bar)
        flush(bar)
    vkey = VerifierKey.parse(log_key)
    block_rows: list[tuple[int, int, str, str]] = []
    for height, header, checkpoint in _export_blocks(path):
        block_rows.append(
            (
                height,
                int(header["tree_size"]),
                canonical_bytes(header).decode(),
                _log_checkpoint(checkpoint, origin, vkey),
            )
        )
        if len(block_rows) == _CHUNK:
            Store.insert_rows(conn, schema.blocks, BLOCK_COLUMNS, block_rows)
            block_rows.clear()
    Store.insert_rows(conn, schema.blocks, BLOCK_COLUMNS, block_rows)
    return state


def _write_index(conn: Connection, state: ConsentState) -> int:
    """The consent index rows, exactly as the sequencer's indexer leaves them after every commit."""
    rows = [consent_index.grant_values(state.grants[s]) for s in sorted(state.grants)]
    for i in range(0, len(rows), _CHUNK):
        Store.insert_rows(conn, consent_index.consent_index, consent_index.COLUMNS, rows[i : i + _CHUNK])
    return len(rows)
