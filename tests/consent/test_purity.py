"""consent/ is pure: it imports no database, web framework or storage, and does no file or network I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("sqlalchemy", "sqlmodel", "fastapi", "starlette", "uvicorn", "httpx", "psycopg", "ledger.store", "api")
FORBIDDEN_CALLS = {"open", "print"}


def test_consent_imports_nothing_impure() -> None:
    """Import every consent module in a fresh interpreter and look at what got loaded."""
    modules = sorted(f"consent.{p.stem}" for p in (ROOT / "consent").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if any(n == f or n.startswith(f + '.') for f in {FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"consent/ pulls in {out.stdout.strip()}"


def test_consent_sources_name_no_impure_module_or_io() -> None:
    for path in (ROOT / "consent").glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN), f"{path.name} imports {name}"
                assert name.split(".")[0] not in {"os", "socket", "pathlib", "io", "urllib", "requests"}, (
                    f"{path.name} imports {name}"
                )
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}()"
