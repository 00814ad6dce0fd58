"""The records vault: record values and salts, encrypted at rest, one row per committed version."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from api import tables
from consent.catalogue import Dataset
from consent.commitment import OpenedLeaves, decode_salts, open_leaves
from keys import dek
from keys.errors import KeystoreError
from keys.keystore import load_secret, save_secret
from ledger.canonical import canonical_bytes
from ledger.errors import NotFoundError

# One record version's row, at the driver level (no statement building per read).
_READ = f"SELECT commit_seq, sealed FROM {tables.vault_records.name} WHERE dataset = ? AND record = ? AND version = ?"  # noqa: S608
_READ_SQLITE, _READ_PG = _READ, _READ.replace("?", "%s")

# Record versions kept opened in memory (the oldest dropped first): enough for a city's busy records.
OPENED_CACHE = 20_000


class Vault:
    """Seals record versions under per-dataset keys; the master key never leaves the keystore file."""

    def __init__(self, master_path: Path) -> None:
        self.master_path = master_path
        self._master: bytes | None = None
        self._deks: dict[str, bytes] = {}
        self._opened: dict[tuple[str, str, int, bytes], tuple[dict[str, Any], dict[str, list[str]]]] = {}
        self._leaves: dict[tuple[str, str, int, bytes], OpenedLeaves] = {}
        self._opening = threading.Lock()

    @property
    def master(self) -> bytes:
        if self._master is None:
            with self._opening:
                if self._master is None:
                    if not self.master_path.exists():
                        save_secret(self.master_path, dek.new_key())
                    self._master = load_secret(self.master_path)
        return self._master

    def _dek(self, conn: Connection, dataset: str, *, create: bool) -> bytes:
        """The dataset's key. Storing one always reads the table (a key remembered from a transaction
        that rolled back must not be taken as stored); reading may answer from memory."""
        if not create and dataset in self._deks:
            return self._deks[dataset]
        t = tables.vault_keys
        row = conn.execute(select(t.c.wrapped).where(t.c.dataset == dataset)).first()
        if row is not None:
            key = dek.unwrap(self.master, bytes(row[0]), dataset)
        elif create:
            key = dek.new_key()
            conn.execute(t.insert(), [{"dataset": dataset, "wrapped": dek.wrap(self.master, key, dataset)}])
        else:
            raise NotFoundError(f"the vault holds nothing for dataset {dataset}")
        self._deks[dataset] = key
        return key

    @staticmethod
    def _aad(dataset: str, record: str, version: int, commit_seq: int) -> bytes:
        return canonical_bytes({"dataset": dataset, "record": record, "version": version, "seq": commit_seq})

    def put(
        self,
        conn: Connection,
        *,
        dataset: str,
        record: str,
        version: int,
        commit_seq: int,
        values: dict[str, Any],
        salts: dict[str, list[str]],
    ) -> None:
        """Store a record version inside the caller's transaction (the one appending its record.commit)."""
        key = self._dek(conn, dataset, create=True)
        plain = canonical_bytes({"values": values, "salts": salts})
        sealed = dek.seal(key, plain, self._aad(dataset, record, version, commit_seq))
        conn.execute(
            tables.vault_records.insert(),
            [{"dataset": dataset, "record": record, "version": version, "commit_seq": commit_seq, "sealed": sealed}],
        )

    def get(
        self, conn: Connection, *, dataset: str, record: str, version: int, commitment: bytes | None = None
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The values and salts of one record version (callers must not change them).

        With ``commitment`` (the record commitment on the ledger that the version must open), the
        opened version is kept in memory under it and served from there next time: a commitment binds
        the values and salts, so a version stored by a transaction that rolled back, then stored again
        with other values, can never be answered from the cache.
        """
        if commitment is not None:
            cached = self._opened.get((dataset, record, version, commitment))
            if cached is not None:
                return cached
        opened = self._read(conn, dataset=dataset, record=record, version=version)
        if commitment is not None:
            self._remember(self._opened, (dataset, record, version, commitment), opened)
        return opened

    def leaves(
        self, conn: Connection, dataset: Dataset, *, record: str, version: int, commitment: bytes
    ) -> OpenedLeaves:
        """One record version ready to disclose (``consent.commitment.open_leaves``), kept in memory under
        its record commitment as ``get`` keeps opened versions: every commitment computed once."""
        key = (dataset.dataset, record, version, commitment)
        found = self._leaves.get(key)
        if found is not None:
            return found
        values, salts = self._read(conn, dataset=dataset.dataset, record=record, version=version)
        opened = open_leaves(dataset, values, decode_salts(salts))
        self._remember(self._leaves, key, opened)
        return opened

    def _remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        """Keep ``value`` under ``key``, dropping the oldest entry past ``OPENED_CACHE``."""
        with self._opening:
            cache[key] = value
            if len(cache) > OPENED_CACHE:
                cache.pop(next(iter(cache)))

    def has_leaves(self, dataset: str, record: str, version: int, commitment: bytes) -> bool:
        """Whether ``leaves`` would answer from memory."""
        return (dataset, record, version, commitment) in self._leaves

    def _read(
        self, conn: Connection, *, dataset: str, record: str, version: int
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        sql = _READ_SQLITE if conn.dialect.name == "sqlite" else _READ_PG
        row = conn.exec_driver_sql(sql, (dataset, record, version)).first()
        if row is None:
            raise NotFoundError(f"record {dataset}/{record} v{version} is not in the vault")
        aad = self._aad(dataset, record, version, row[0])
        try:
            plain = dek.open_sealed(self._dek(conn, dataset, create=False), bytes(row[1]), aad)
        except KeystoreError:  # a key remembered from a transaction that rolled back: read the stored one
            self._deks.pop(dataset, None)
            plain = dek.open_sealed(self._dek(conn, dataset, create=False), bytes(row[1]), aad)
        doc = json.loads(plain)
        return doc["values"], doc["salts"]
