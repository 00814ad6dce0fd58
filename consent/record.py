"""Record fingerprints on the ledger (政务数据上链): the ``record.commit`` body.

The record itself stays off-chain, encrypted; the ledger holds its commitment (``commitment.py``), the
subject it is about, and its version: a new version names the commit it ``replaces``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consent import validate as v
from consent.catalogue import dataset_id
from ledger.tree import HASH_SIZE

RECORD_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
COMMIT_FIELDS = frozenset({"dataset", "record", "subject", "commitment", "version", "replaces"})
MAX_VERSION = 2**31


@dataclass(frozen=True, slots=True)
class RecordCommit:
    """A parsed ``record.commit`` body."""

    dataset: str
    record: str
    subject: str
    commitment: bytes
    version: int
    replaces: int | None


def record_id(value: object, where: str = "record") -> str:
    return v.matching(value, where, RECORD_ID_RE, "a record id (letters, digits, . _ : -; at most 128)")


def parse_record_commit(body: Mapping[str, Any]) -> RecordCommit:
    """Validate a ``record.commit`` body's shape (not the ledger state)."""
    what = "record.commit"
    v.fields_exactly(body, what, COMMIT_FIELDS)
    return RecordCommit(
        dataset=dataset_id(body["dataset"], f"{what} dataset"),
        record=record_id(body["record"], f"{what} record"),
        subject=v.name(body["subject"], f"{what} subject"),
        commitment=v.b64(body["commitment"], f"{what} commitment", HASH_SIZE),
        version=v.integer(body["version"], f"{what} version", minimum=1, maximum=MAX_VERSION),
        replaces=v.optional_seq(body["replaces"], f"{what} replaces"),
    )


def record_commit_body(
    *, dataset: str, record: str, subject: str, commitment: bytes, version: int = 1, replaces: int | None = None
) -> dict[str, Any]:
    """A ``record.commit`` body, checked by ``parse_record_commit``."""
    body: dict[str, Any] = {
        "dataset": dataset,
        "record": record,
        "subject": subject,
        "commitment": v.b64encode(commitment),
        "version": version,
        "replaces": replaces,
    }
    parse_record_commit(body)
    return body
