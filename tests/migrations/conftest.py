"""Databases with no schema at all (``ledger_url`` and ``sqlite_url`` come already migrated)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def empty_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once on SQLite and once on PostgreSQL (a fresh schema)."""
    return str(request.getfixturevalue("empty_sqlite" if request.param == "sqlite" else "pg_url"))
