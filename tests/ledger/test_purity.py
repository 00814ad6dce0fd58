"""The verification core is pure: importing it pulls in no database driver and no web framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PURE = [
    "ledger.canonical",
    "ledger.tree",
    "ledger.note",
    "ledger.envelope",
    "ledger.block",
    "ledger.timefmt",
    "ledger.errors",
    "keys.keyid",
    "keys.roles",
    "keys.registry",
]
FORBIDDEN = ["sqlalchemy", "sqlmodel", "psycopg", "sqlite3", "fastapi", "starlette", "uvicorn", "httpx"]


def test_pure_modules_import_no_io_frameworks() -> None:
    code = (
        "import sys\n"
        f"for m in {PURE!r}: __import__(m)\n"
        f"bad = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "", f"pure modules import {out}"
